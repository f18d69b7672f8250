"""The config on OmegaConf: interpolation (``${optim.lr}``, ``runs/${method.name}``, ``${oc.env:VAR,default}``)
across sections and into the method's keywords, resolved once at load, and the module's own coercion rules and
one-line messages where OmegaConf's differ."""

from __future__ import annotations

import pytest

from geomask.train.config import ConfigError, config_to_dict, dump_config, load_config


def _cfg(**sections) -> dict:
    base = {"method": {"name": "mgm"}, "data": {"kind": "synthetic"}}
    base.update(sections)
    return base


def test_interpolation_across_sections_converts_to_the_field_type():
    cfg = load_config(
        _cfg(
            seed=5,
            optim={"lr": 2e-3, "min_lr": "${optim.lr}", "schedule_steps": "${trainer.max_steps}"},
            trainer={"max_steps": 40, "out_dir": "runs/${method.name}/seed${seed}", "val_every": "${.log_every}"},
            data={"kind": "synthetic", "synthetic": {"graphs": 12, "inputs": "${data.synthetic.outputs}"}},
        )
    )
    assert cfg.optim.min_lr == 2e-3
    assert cfg.optim.schedule_steps == 40 and isinstance(cfg.optim.schedule_steps, int)
    assert cfg.trainer.out_dir == "runs/mgm/seed5"
    assert cfg.trainer.val_every == cfg.trainer.log_every == 10  # ``.key``: the same section
    assert cfg.data.synthetic.inputs == [1, 4]  # a whole interpolation may stand for a list
    int_to_float = load_config(_cfg(optim={"lr": "${trainer.max_steps}"}), ["trainer.max_steps=3"])
    assert int_to_float.optim.lr == 3.0 and isinstance(int_to_float.optim.lr, float)


def test_interpolation_reaches_into_the_open_method_section():
    raw = _cfg(method={"name": "mgm", "hidden": 16, "layers": "${.hidden}", "masker": {"ratio": "${optim.min_lr}"}})
    cfg = load_config(raw, ["optim.min_lr=0.25"])
    assert cfg.method.kwargs == {"hidden": 16, "layers": 16, "masker": {"ratio": 0.25}}
    named = load_config(_cfg(method={"name": "mgm", "tag": "${method.name}-${trainer.max_steps}"}))
    assert named.method.kwargs["tag"] == "mgm-1000"


def test_overrides_are_merged_before_interpolations_resolve():
    raw = _cfg(optim={"scheduler": "cosine", "schedule_steps": "${trainer.max_steps}"})
    assert load_config(raw, ["trainer.max_steps=60"]).optim.schedule_steps == 60
    cfg = load_config(_cfg(), ["optim.lr=0.5", "optim.min_lr=${optim.lr}", "trainer.out_dir=runs/${seed}"])
    assert (cfg.optim.min_lr, cfg.trainer.out_dir) == (0.5, "runs/0")


def test_environment_resolver_and_escape(monkeypatch):
    monkeypatch.setenv("GEOMASK_TEST_STEPS", "7")
    raw = _cfg(trainer={"max_steps": "${oc.env:GEOMASK_TEST_STEPS}", "out_dir": "${oc.env:GEOMASK_NO_SUCH_VAR,runs/x}"})
    cfg = load_config(raw)
    assert cfg.trainer.max_steps == 7 and cfg.trainer.out_dir == "runs/x"
    assert load_config(_cfg(trainer={"out_dir": r"runs/\${seed}"})).trainer.out_dir == "runs/${seed}"


def test_a_dumped_config_holds_the_resolved_values(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("method: {name: mgm, hidden: 8, layers: '${.hidden}'}\ndata: {kind: synthetic}\n")
    cfg = load_config(p, ["optim.min_lr=${optim.lr}"])
    text = dump_config(cfg)
    assert "${" not in text
    (tmp_path / "again.yaml").write_text(text)
    assert load_config(tmp_path / "again.yaml") == cfg
    assert config_to_dict(cfg)["method"] == {"name": "mgm", "hidden": 8, "layers": 8}


@pytest.mark.parametrize(
    "raw, overrides, text",
    [
        (_cfg(optim={"min_lr": "${optim.lrr}"}), [], "optim.min_lr: cannot resolve: interpolation key 'optim.lrr'"),
        (_cfg(method={"name": "mgm", "x": "${nope}"}), [], "method.x: cannot resolve: interpolation key 'nope' not"),
        (_cfg(method={"name": "mgm", "x": "a"}), ["optim.lr=${method.x}"], "optim.lr: expected a number, got 'a'"),
        (_cfg(), ["trainer.out_dir=${oops"], "trainer.out_dir: cannot resolve: "),
        (_cfg(), ["trainer.max_steps=???"], "trainer.max_steps: no value given ('???')"),
        (_cfg(method={"name": "mgm", "masker": {"ratio": "???"}}), [], "method.masker.ratio: no value given ('???')"),
    ],
)
def test_interpolation_errors_are_one_line_naming_the_key(raw, overrides, text):
    with pytest.raises(ConfigError) as e:
        load_config(raw, overrides)
    assert str(e.value).startswith(text) and "\n" not in str(e.value)
    assert "full_key" not in str(e.value) and "object_type" not in str(e.value)


def test_interpolation_error_in_a_file_names_the_file(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("method: {name: mgm}\ndata: {kind: synthetic}\noptim: {min_lr: '${optim.nope}'}\n")
    with pytest.raises(ConfigError, match=r"^.*bad\.yaml: optim\.min_lr: cannot resolve: ") as e:
        load_config(p)
    assert (e.value.section, e.value.key) == ("optim", "min_lr")


@pytest.mark.parametrize(
    "override, text",
    [
        ("trainer.strategy=off", "trainer.strategy: expected a string, got False"),  # a YAML boolean is no string
        ("trainer.loggers=[csv, false]", "trainer.loggers: expected a string, got False"),
        ("trainer.loggers=[csv, {a: 1}]", "trainer.loggers: expected a string, got {'a': 1}"),
        ("trainer.loggers={a: 1}", "trainer.loggers: expected a string, got {'a': 1}"),
        ("trainer.progress_bar=2", "trainer.progress_bar: expected true or false, got 2"),
        ("trainer.max_steps=[3]", "trainer.max_steps: expected an integer, got [3]"),
        ("optim.lr=true", "optim.lr: expected a number, got True"),
        ("data.synthetic.inputs=[1, x]", "data.synthetic.inputs: expected an integer, got 'x'"),
        ("data.synthetic=3", "data.synthetic: expected a mapping of keys, got 3"),
        ("trainer=~", "trainer: expected a mapping of keys, got None"),
        ("method=3", "method: expected a mapping of keys, got 3"),
        ("method.name=[a]", "method.name: expected a string, got ['a']"),
        ("trainer.devices=true", "trainer.devices: expected an integer, got True"),
        ("seed=x", "seed: expected an integer, got 'x'"),
    ],
)
def test_coercion_errors_keep_the_module_wording(override, text):
    with pytest.raises(ConfigError) as e:
        load_config(_cfg(), [override])
    assert str(e.value) == text


def test_coercions_omegaconf_lacks_are_kept():
    cfg = load_config(
        _cfg(),
        ["trainer.max_steps=20.0", "trainer.loggers=csv", "trainer.progress_bar=1", "method.name=7", "optim.lr=1e-2"],
    )
    assert cfg.trainer.max_steps == 20 and isinstance(cfg.trainer.max_steps, int)
    assert cfg.trainer.loggers == ["csv"] and cfg.trainer.progress_bar is True
    assert cfg.method.name == "7" and cfg.optim.lr == 0.01
    assert load_config(_cfg(data={"kind": "circuits", "roots": "some/dir"})).data.roots == ["some/dir"]
    assert load_config(_cfg(optim={"betas": ["0.8", 1]})).optim.betas == [0.8, 1.0]


def test_the_method_section_stays_open_and_needs_a_name():
    raw = _cfg(method={"name": "mgm", "masker": {"name": "uniform", "ratio": 0.3}, "loss": {"name": "cross_entropy"}})
    cfg = load_config(raw, ["method.target.kind=x", "method.anything=[1, 2]"])
    assert cfg.method.kwargs == {
        "masker": {"name": "uniform", "ratio": 0.3},
        "loss": {"name": "cross_entropy"},
        "target": {"kind": "x"},
        "anything": [1, 2],
    }
    with pytest.raises(ConfigError, match=r"^method\.name: the method needs a name$"):
        load_config(_cfg(method={"hidden": 8}))
    assert load_config({"data": {"kind": "synthetic"}}).method.name == "mgvga"  # no method section: the default


def test_a_value_omegaconf_cannot_hold_is_named():
    class Opaque:
        pass

    with pytest.raises(ConfigError, match=r"^method\.x: value 'Opaque' is not a supported primitive type$"):
        load_config(_cfg(method={"name": "mgm", "x": Opaque()}))
