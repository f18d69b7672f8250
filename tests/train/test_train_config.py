"""Training config: strict keys naming key and section, --set overrides with type coercion, the shipped YAMLs."""

from __future__ import annotations

from pathlib import Path

import pytest

from geomask.errors import GeomaskError
from geomask.train.config import ConfigError, config_to_dict, dump_config, load_config

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def _cfg(**sections) -> dict:
    base = {"method": {"name": "mgm"}, "data": {"kind": "synthetic"}}
    base.update(sections)
    return base


@pytest.mark.parametrize(
    "raw, key, section",
    [
        ({"bogus": 1}, "bogus", "the top level"),
        ({"trainer": {"max_step": 10}}, "max_step", "section 'trainer'"),
        ({"data": {"kind": "synthetic", "batchsize": 4}}, "batchsize", "section 'data'"),
        ({"data": {"kind": "synthetic", "synthetic": {"nodes": 4}}}, "nodes", "section 'data.synthetic'"),
        ({"optim": {"learning_rate": 0.1}}, "learning_rate", "section 'optim'"),
    ],
)
def test_unknown_key_names_key_and_section(raw, key, section):
    with pytest.raises(ConfigError) as e:
        load_config(_cfg(**raw))
    msg = str(e.value)
    assert f"'{key}'" in msg and section in msg
    assert "\n" not in msg
    assert isinstance(e.value, GeomaskError)
    assert e.value.key == key


def test_unknown_key_in_yaml_file_names_the_file(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("method: {name: mgm}\ndata: {kind: synthetic}\ntrainer:\n  max_steps: 3\n  devcies: 2\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml: .*'devcies'.*section 'trainer'"):
        load_config(p)


def test_overrides_are_coerced_to_field_types():
    cfg = load_config(
        _cfg(),
        [
            "trainer.max_steps=25",
            "optim.lr=1",
            "optim.betas=[0.8, 0.95]",
            "data.roots=some/dir",
            "trainer.resume=false",
            "trainer.devices=auto",
            "data.synthetic.graphs=7",
            "method.hidden=32",
            "method.encoder=gin",
            "seed=11",
        ],
    )
    assert cfg.trainer.max_steps == 25 and isinstance(cfg.trainer.max_steps, int)
    assert cfg.optim.lr == 1.0 and isinstance(cfg.optim.lr, float)
    assert cfg.optim.betas == [0.8, 0.95]
    assert cfg.data.roots == ["some/dir"]
    assert cfg.trainer.resume is False
    assert cfg.trainer.devices == "auto"
    assert cfg.data.synthetic.graphs == 7
    assert cfg.method.kwargs == {"hidden": 32, "encoder": "gin"}
    assert cfg.seed == 11


@pytest.mark.parametrize(
    "override, key, text",
    [
        ("trainer.max_steps=many", "max_steps", "trainer.max_steps: expected an integer, got 'many'"),
        ("trainer.max_steps=2.5", "max_steps", "trainer.max_steps: expected an integer, got 2.5"),
        ("trainer.resume=maybe", "resume", "trainer.resume: must be auto, true or false, got 'maybe'"),
        ("trainer.nope=1", "nope", "unknown key 'nope' in section 'trainer'; valid keys: max_steps, out_dir,"),
        (
            "data.kind=meshes",
            "kind",
            "data.kind: must be one of auto, circuits, pairs, scans, synthetic, objects, corpus, corpus_pairs, ",
        ),
        ("trainer.devices=0", "devices", "trainer.devices: must be >= 1, got 0"),
        ("data.val_fraction=1.5", "val_fraction", "data.val_fraction: must be in [0, 1), got 1.5"),
        ("trainer.loggers=[csv, wandb]", "loggers", "trainer.loggers: must be one of csv, tensorboard, got 'wandb'"),
        ("no_equals_sign", "no_equals_sign", "override 'no_equals_sign' is not KEY=VALUE (e.g. trainer.max_steps=100)"),
        ("=3", "", "override '=3' has no key before '='"),
        ("method.name.x=3", "name", "override 'method.name.x=3': method.name is a value, not a section"),
    ],
)
def test_bad_override_is_a_one_line_sentence_naming_the_key(override, key, text):
    with pytest.raises(ConfigError) as e:
        load_config(_cfg(), [override])
    assert e.value.key == key
    assert str(e.value).startswith(text)
    assert "\n" not in str(e.value) and "(key '" not in str(e.value)


def test_roots_required_for_dataset_kinds():
    with pytest.raises(ConfigError, match="roots"):
        load_config({"method": {"name": "mgm"}, "data": {"kind": "circuits"}})


def test_dump_and_load_round_trip(tmp_path):
    cfg = load_config(_cfg(), ["method.hidden=8", "optim.scheduler=cosine", "trainer.loggers=[csv]"])
    p = tmp_path / "c.yaml"
    p.write_text(dump_config(cfg))
    again = load_config(p)
    assert again == cfg
    assert config_to_dict(again)["method"] == {"name": "mgm", "hidden": 8}


def test_unknown_method_keyword_is_a_config_error():
    from geomask.train.engine import build_method_from_config

    cfg = load_config(_cfg(method={"name": "mgm", "hiden": 8}))
    with pytest.raises(ConfigError, match=r"^unknown keyword\(s\) hiden for method 'mgm'; valid: encoder,") as e:
        build_method_from_config(cfg)
    assert (e.value.section, e.value.key) == ("method", "hiden")
    with pytest.raises(
        ConfigError, match=r"^unknown method 'nosuch'; valid: ([a-z0-9_]+, )*cpcm, ([a-z0-9_]+, )*mgm, "
    ):
        build_method_from_config(load_config(_cfg(method={"name": "nosuch"})))


@pytest.mark.parametrize("name", ["mgvga.yaml", "mgvga_cpu.yaml", "mgm_cpu.yaml", "graphmae_cpu.yaml"])
def test_shipped_configs_load_and_build(name):
    from geomask.train.engine import build_method_from_config

    cfg = load_config(CONFIGS / name)
    method = build_method_from_config(cfg)
    assert sum(p.numel() for p in method.parameters()) > 0
    assert cfg.method.name == name.removesuffix(".yaml").removesuffix("_cpu")


def test_every_shipped_config_loads():
    from pathlib import Path

    from geomask.train.config import load_config

    configs = sorted((Path(__file__).resolve().parents[2] / "configs").glob("*.yaml"))
    assert len(configs) >= 12
    for path in configs:
        load_config(path)  # raises ConfigError naming the key on any unknown or bad entry


def test_shipped_configs_are_listed_with_descriptions():
    from geomask.train.config import available_configs, config_descriptions

    configs = available_configs()
    assert list(configs) == sorted(configs) and {"mgm_cpu", "mgvga", "pointmae_cpu", "msm_cpu"} <= set(configs)
    assert set(configs) == {p.stem for p in CONFIGS.glob("*.yaml")}
    assert all(p.is_file() and p.read_bytes() == (CONFIGS / p.name).read_bytes() for p in configs.values())
    described = config_descriptions()
    assert list(described) == list(configs)
    assert described["mgm_cpu"].startswith("MGM only (masked gate modeling, no Verilog)")
    assert all(text and "\n" not in text and not text.startswith("#") for text in described.values())


def test_package_data_covers_the_shipped_configs():
    """pyproject's package-data globs (as setuptools expands them under geomask/) take in every config."""
    from setuptools import glob as st_glob

    import geomask

    tomllib = pytest.importorskip("tomllib")  # Python 3.11+

    patterns = tomllib.loads((CONFIGS.parent / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    package = Path(geomask.__file__).parent
    matched = {
        Path(m).name
        for pattern in patterns["geomask"]
        for m in st_glob.glob(str(package / pattern), recursive=True)
        if Path(m).parent.name == "configs"
    }
    assert matched == {p.name for p in CONFIGS.glob("*.yaml")}


def test_config_by_name_from_any_folder(tmp_path, monkeypatch):
    from geomask.train.config import available_configs, resolve_config

    monkeypatch.chdir(tmp_path)
    shipped = available_configs()["mgm_cpu"]
    assert resolve_config("mgm_cpu") == shipped
    assert resolve_config("mgm_cpu.yaml") == shipped
    assert resolve_config("configs/mgm_cpu.yaml") == shipped
    assert load_config("mgm_cpu").method.name == "mgm"
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "mgm_cpu.yaml").write_text("method: {name: graphmae}\ndata: {kind: synthetic}\n")
    assert load_config("configs/mgm_cpu.yaml").method.name == "graphmae"  # a local file wins
    with pytest.raises(ConfigError) as e:
        load_config("mgm_gpu")
    names = str(e.value).removeprefix("unknown config 'mgm_gpu': not a file, nor one of ").split(", ")
    assert names == sorted(names) and {"cpcm", "cpcm_cpu", "mgm_cpu", "mgvga"} <= set(names)
    assert "mgm_cpu" in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(
        ConfigError, match=r"^no such config file: elsewhere/x\.yaml \(shipped configs: ([a-z0-9_]+, )*cpcm, "
    ):
        load_config("elsewhere/x.yaml")


def test_config_differences_ignore_keys_that_cannot_change_results():
    from geomask.train.config import RUN_ONLY_KEYS, config_differences

    base = load_config(_cfg(optim={"scheduler": "cosine", "schedule_steps": 50}), ["trainer.max_steps=50"])
    moved = load_config(
        config_to_dict(base),
        [f"{k}={v}" for k, v in [("trainer.out_dir", "elsewhere"), ("trainer.resume", "true"), ("trainer.threads", 1)]]
        + ["trainer.loggers=[csv]", "trainer.log_every=1", "trainer.max_steps=80", "data.num_workers=2"],
    )
    assert config_differences(base, moved) == {}
    assert {"trainer.out_dir", "trainer.max_steps", "data.num_workers"} <= RUN_ONLY_KEYS
    assert "trainer.devices" not in RUN_ONLY_KEYS and "seed" not in RUN_ONLY_KEYS
    other = load_config(config_to_dict(base), ["seed=1", "method.hidden=8", "optim.schedule_steps=0"])
    assert config_differences(base, other) == {"seed": (0, 1), "method.hidden": ("(unset)", 8)}
    assert config_differences(base, other, {"hidden": 8}) == {"seed": (0, 1)}  # 0 means max_steps = 50
    longer = load_config(config_to_dict(other), ["trainer.max_steps=60"])
    assert config_differences(other, longer) == {"optim.schedule_steps": (50, 60)}
    flat = load_config(config_to_dict(longer), ["optim.scheduler=none"])
    flatter = load_config(config_to_dict(flat), ["trainer.max_steps=90"])
    assert config_differences(flat, flatter) == {}


@pytest.mark.parametrize(
    ("override", "text"),
    [
        ("data.images.normalize=per_image", "data.images.normalize: must be one of dataset, imagenet, none"),
        ("data.images.crop_scale=[0.5, 1.5]", "data.images.crop_scale: must be two numbers [low, high] with 0 <"),
        ("data.images.crop_ratio=[2, 1]", "data.images.crop_ratio: must be two numbers [low, high] with 0 <"),
        ("data.images.patch_size=0", "data.images.patch_size: must be"),
        ("data.shapes.size=4", "data.shapes.size: must be >= 8, got 4"),
        ("data.scenes.points=0", "data.scenes.points: must be"),
    ],
)
def test_generated_and_image_sections_are_checked(override, text):
    with pytest.raises(ConfigError) as e:
        load_config(_cfg(), [override])
    assert str(e.value).startswith(text)


def test_image_normalisations_match_the_reader():
    from geomask.datasets.images import NORMALIZE
    from geomask.train.config import IMAGE_NORMALIZE

    assert tuple(NORMALIZE) == IMAGE_NORMALIZE
