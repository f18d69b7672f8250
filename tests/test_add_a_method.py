"""The README's "Add a method" section runs as written, so the example can never rot.

Its code blocks (each introduced by a line naming its file, e.g. `` `dgm.py`: ``) are written to a temporary
folder and run there: ``dgm.py`` is imported (registering a masker, a loss and a method in this process), then
``train_dgm.py`` runs as it stands, its ``geomask pretrain`` cut to two steps by one more ``--set``.  The new
method is then held to the contract every registered method meets (``tests/methods/test_contract.py``).  Every
registration is undone after each test, so the rest of the suite sees the registries it expects.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import math
import re
import runpy
import sys
from pathlib import Path

import pytest
import torch

import geomask.cli
from geomask.losses.modules import LOSSES
from geomask.masking import registry as masking_registry
from geomask.methods.registry import METHODS

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
SECTION = README[README.index("\n## Add a method\n") : README.index("\n## Benchmarks\n")]
BLOCKS = re.findall(r"^`([\w.]+)`[^\n]*:\n\n```(?:python|yaml)\n(.*?)```", SECTION, flags=re.S | re.M)

_spec = importlib.util.spec_from_file_location("_contract_of_readme_method", ROOT / "tests/methods/test_contract.py")
contract = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(contract)


@pytest.fixture
def example(tmp_path, monkeypatch):
    """The section's files in ``tmp_path`` (the working folder), ``dgm`` imported; registrations undone after."""
    for name, text in BLOCKS:
        (tmp_path / name).write_text(text, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    registries = [masking_registry._MASKERS, LOSSES._entries, METHODS]
    saved = [dict(r) for r in registries]
    try:
        yield importlib.import_module("dgm")
    finally:
        for registry, before in zip(registries, saved):
            registry.clear()
            registry.update(before)
        sys.modules.pop("dgm", None)


def test_the_section_has_the_example_files_in_under_60_lines():
    names = [name for name, _ in BLOCKS]
    assert names == ["dgm.py", "dgm.yaml", "train_dgm.py"]
    parts = {name: text for name, text in BLOCKS}
    lines = len(parts["dgm.py"].splitlines()) + len(parts["dgm.yaml"].splitlines())
    assert lines < 60, f"masker + loss + method + config take {lines} lines"
    assert f"take {lines} lines" in SECTION  # the count the prose gives


def test_registration_adds_the_masker_loss_and_method(example):
    from geomask.losses import available_losses
    from geomask.masking import available_maskers
    from geomask.methods.registry import method_data_kinds

    assert "high_fanout" in available_maskers() and "focal" in available_losses() and "dgm" in METHODS
    assert method_data_kinds("dgm") == ("circuits", "pairs", "synthetic", "corpus", "corpus_pairs")


def test_pretrain_and_evaluation_run_as_written(example, monkeypatch, capsys):
    real_main = geomask.cli.main
    calls = []

    def two_steps(argv):  # the README's command, two steps long
        calls.append(list(argv))
        return real_main([*argv, "--set", "trainer.max_steps=2"])

    monkeypatch.setattr(geomask.cli, "main", two_steps)
    runpy.run_path("train_dgm.py", run_name="__main__")
    out = capsys.readouterr().out
    assert calls == [["pretrain", "dgm.yaml"]]
    assert "trained 2 steps" in out
    metrics = json.loads(Path("runs/dgm/metrics.json").read_text())
    assert math.isfinite(metrics["train/loss"]) and metrics["train/loss"] > 0
    acc, majority = re.search(r"masked-type accuracy ([\d.]+), majority type ([\d.]+)", out).groups()
    assert 0 <= float(acc) <= 1 and 0 < float(majority) <= 1
    loss, rows, width = re.search(r"loss ([\d.]+), node features \((\d+), (\d+)\)", out).groups()
    assert math.isfinite(float(loss)) and float(loss) > 0 and int(rows) > 0 and int(width) == 32


@pytest.fixture
def masks(monkeypatch) -> list[torch.Tensor]:
    """Every mask a masker draws while the test runs (as ``test_contract.masks`` records them)."""
    seen: list[torch.Tensor] = []
    call = contract.Masker.__call__

    def recording(self, layout, generator=None, *args, **kwargs):
        out = call(self, layout, generator, *args, **kwargs)
        if isinstance(layout, contract.Layout):
            seen.append(out.detach().clone())
        return out

    monkeypatch.setattr(contract.Masker, "__call__", recording)
    return seen


@pytest.mark.usefixtures("one_thread")
@pytest.mark.parametrize(
    "check",
    [
        "test_interface",
        "test_losses_finite_and_gradients_reach_every_trainable_parameter",
        "test_same_seed_same_masks_and_losses_another_seed_other_masks",
        "test_forward_twice_same_result_and_no_side_effects[train]",
        "test_forward_twice_same_result_and_no_side_effects[eval]",
        "test_features_in_eval_mode",
        "test_checkpoint_round_trip_weights_only",
    ],
)
def test_the_new_method_meets_the_method_contract(example, masks, check):
    name, _, mode = check.partition("[")
    fn = getattr(contract, name)
    if name.startswith("test_same_seed"):
        fn("dgm", masks)
        assert masks, "the contract check recorded no mask"
    elif mode:
        fn("dgm", mode == "train]")
    else:
        fn("dgm")


def test_the_shell_command_trains_it_in_a_fresh_process(tmp_path):
    """`geomask pretrain dgm.yaml --import dgm.py`: a new process, where only --import registers the method."""
    import subprocess

    for name, text in BLOCKS:
        (tmp_path / name).write_text(text, encoding="utf-8")
    argv = [sys.executable, "-m", "geomask.cli", "pretrain", "dgm.yaml", "--import", "dgm.py"]
    r = subprocess.run([*argv, "--set", "trainer.max_steps=2"], cwd=tmp_path, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "trained 2 steps" in r.stdout and (tmp_path / "runs" / "dgm" / "model.pt").is_file()
    r = subprocess.run(argv[:-2], cwd=tmp_path, capture_output=True, text=True)  # without --import: one line
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "'dgm'" in r.stderr
