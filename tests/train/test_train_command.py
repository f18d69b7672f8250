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
    # the package itself is callable: geomask.train(config) continues the same run
    again = geomask.train(path, [f"trainer.out_dir={out}", "trainer.max_steps=4", "data.batch_size=2"])
    assert again.resumed_from == 3 and again.steps == 4


def test_pretrain_unknown_key_is_a_one_line_config_error(tmp_path, tiny_config):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(tiny_config("x")))
    args = _parser().parse_args(["pretrain", str(path), "--set", "trainer.max_stepz=3"])
    with pytest.raises(ConfigError) as e:
        args.func(args)
    assert "'max_stepz'" in str(e.value) and "section 'trainer'" in str(e.value)
    assert "\n" not in str(e.value)
