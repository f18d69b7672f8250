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
    "override, key",
    [
        ("trainer.max_steps=many", "max_steps"),
        ("trainer.max_steps=2.5", "max_steps"),
        ("trainer.resume=maybe", "resume"),
        ("trainer.nope=1", "nope"),
        ("data.kind=images", "kind"),
        ("trainer.devices=0", "devices"),
        ("data.val_fraction=1.5", "val_fraction"),
        ("trainer.loggers=[csv, wandb]", "loggers"),
        ("no_equals_sign", "no_equals_sign"),
    ],
)
def test_bad_override_is_a_config_error_naming_the_key(override, key):
    with pytest.raises(ConfigError) as e:
        load_config(_cfg(), [override])
    assert e.value.key == key
    assert f"'{key}'" in str(e.value)


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
    with pytest.raises(ConfigError, match=r"hiden.*section 'method'"):
        build_method_from_config(cfg)
    with pytest.raises(ConfigError, match=r"nosuch.*section 'method'"):
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
