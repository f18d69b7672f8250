"""The ``pretrain`` subcommand: overrides from --set, what it prints, errors naming the bad key."""

from __future__ import annotations

import argparse

import pytest
import yaml

import geomask.train
from geomask.train import ConfigError
from geomask.train.command import add_pretrain_parser


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="geomask")
    add_pretrain_parser(parser.add_subparsers(dest="command", required=True))
    return parser


def test_pretrain_prints_checkpoints_logs_and_losses(tmp_path, tiny_config, capsys):
    cfg = tiny_config("cli")
    cfg["trainer"]["max_steps"] = 50  # overridden below
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    out = tmp_path / "elsewhere"
    args = _parser().parse_args(
        ["pretrain", str(path), "--set", "trainer.max_steps=3", "data.batch_size=2", "--out", str(out)]
    )
    assert args.func(args) == 0
    text = capsys.readouterr().out
    assert "trained 3 steps on 1 process(es)" in text
    assert f"checkpoint: {out / 'checkpoints' / 'last.ckpt'}" in text
    assert f"logs:       {out / 'logs' / 'csv'}" in text
    losses = dict(line.split() for line in text.splitlines() if line.startswith("train/"))
    assert {"train/loss", "train/mgm_type"} <= set(losses)
    assert all(float(v) > 0 for v in losses.values())
    assert (out / "checkpoints" / "last.ckpt").is_file() and not (tmp_path / "cli").exists()
    # geomask.pretrain(config) continues the same run
    again = geomask.pretrain(path, [f"trainer.out_dir={out}", "trainer.max_steps=4", "data.batch_size=2"])
    assert again.resumed_from == 3 and again.steps == 4


def test_pretrain_unknown_key_is_a_one_line_config_error(tmp_path, tiny_config):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(tiny_config("x")))
    args = _parser().parse_args(["pretrain", str(path), "--set", "trainer.max_stepz=3"])
    with pytest.raises(ConfigError) as e:
        args.func(args)
    assert "'max_stepz'" in str(e.value) and "section 'trainer'" in str(e.value)
    assert "\n" not in str(e.value)


def test_config_after_set_is_the_config_and_missing_or_two_configs_are_usage_errors():
    from geomask.errors import UsageError
    from geomask.train.command import split_config_and_overrides

    args = _parser().parse_args(["pretrain", "--set", "trainer.max_steps=3", "data.roots=[a=b]", "c.yaml"])
    assert args.config is None
    words = [w for group in args.overrides for w in group]
    assert split_config_and_overrides(args.config, words) == ("c.yaml", ["trainer.max_steps=3", "data.roots=[a=b]"])
    assert split_config_and_overrides("c.yaml", ["seed=1"]) == ("c.yaml", ["seed=1"])
    with pytest.raises(UsageError, match=r"^pretrain needs a CONFIG: a YAML file or a shipped config name \(.*mgm_cpu"):
        split_config_and_overrides(None, ["seed=1"])
    with pytest.raises(UsageError, match=r"^pretrain takes one CONFIG, got 'c\.yaml' and 'foo' \(an override reads"):
        split_config_and_overrides("c.yaml", ["foo"])


def test_pretrain_says_resuming_and_nothing_to_do(tmp_path, tiny_config, capsys):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(tiny_config("run", trainer={"max_steps": 2})))
    out = tmp_path / "run"
    # CONFIG after --set: not swallowed as an override any more
    args = _parser().parse_args(["pretrain", "--set", "data.batch_size=2", str(path)])
    assert args.func(args) == 0
    assert "trained 2 steps on 1 process(es)" in capsys.readouterr().out
    args = _parser().parse_args(["pretrain", str(path), "--set", "data.batch_size=2"])
    assert args.func(args) == 0
    text = capsys.readouterr().out
    assert text.startswith(f"nothing to do: {out} is complete at step 2\n") and "trained" not in text
    args = _parser().parse_args(["pretrain", str(path), "--set", "data.batch_size=2", "trainer.max_steps=3"])
    assert args.func(args) == 0
    text = capsys.readouterr().out
    assert "resuming from step 2\n" in text and "trained 1 steps (step 2 → 3) on 1 process(es)" in text


def test_resume_flag_and_out_become_overrides(monkeypatch):
    import geomask.train.engine as engine

    seen = {}

    def fake_train(config, overrides):
        seen.update(config=config, overrides=list(overrides))
        raise ConfigError("", "", "stop here")

    monkeypatch.setattr(engine, "train", fake_train)
    args = _parser().parse_args(["pretrain", "mgm_cpu", "--resume", "--out", "runs/x", "--set", "seed=2"])
    with pytest.raises(ConfigError, match="stop here"):
        args.func(args)
    assert seen == {"config": "mgm_cpu", "overrides": ["seed=2", "trainer.out_dir=runs/x", "trainer.resume=true"]}
    args = _parser().parse_args(["pretrain", "mgm_cpu"])
    with pytest.raises(ConfigError, match="stop here"):
        args.func(args)
    assert seen["overrides"] == []


def test_pretrain_help_has_examples_and_defaults():
    parser = _parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices["pretrain"]
    text = sub.format_help()
    assert "examples:\n  geomask pretrain mgm_cpu" in text
    assert "--resume" in text and "(default: the config's trainer.out_dir)" in " ".join(text.split())
