"""Every file geomask writes honours the umask (0644 under umask 022), so collaborators can read shared
datasets and runs: circuits and scan datasets, ABC labels, a pretraining run, an evaluation's JSON."""

from __future__ import annotations

import os
import stat

import numpy as np
import pytest

from geomask.cli import main
from geomask.io.aig import AIG
from geomask.io.aiger import write_aiger


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def _modes(root) -> dict[str, int]:
    return {str(p.relative_to(root)): stat.S_IMODE(p.stat().st_mode) for p in root.rglob("*") if p.is_file()}


def test_outputs_are_world_readable(tmp_path, umask_022, one_thread, capsys):
    aag = tmp_path / "in" / "xor.aag"
    aag.parent.mkdir()
    write_aiger(AIG(num_inputs=2, ands=[[2, 4], [3, 5], [7, 9]], outputs=[10], output_names=["y"]), aag)
    rng = np.random.default_rng(0)
    np.save(tmp_path / "in" / "cloud.npy", rng.random((50, 3)).astype(np.float32))

    circuits, scans, run = tmp_path / "circuits", tmp_path / "scans", tmp_path / "run"
    assert main(["prep", "circuits", str(aag), "--out", str(circuits), "--recipes", "2", "--quiet"]) == 0
    assert main(["convert", str(aag), str(tmp_path / "converted" / "xor.aig")]) == 0
    assert main(["prep", "scans", str(tmp_path / "in" / "cloud.npy"), "--out", str(scans), "--voxel-size", "0.2"]) == 0
    overrides = [
        "data.kind=synthetic",
        "data.synthetic.graphs=4",
        "trainer.max_steps=2",
        "trainer.progress_bar=false",
        "trainer.summary=false",
        "method.hidden=8",
        "method.layers=1",
    ]
    assert main(["pretrain", "mgm_cpu", "--out", str(run), "--set", *overrides]) == 0, capsys.readouterr().err

    written = {}
    for root in (circuits, scans, run, tmp_path / "converted"):
        written.update({f"{root.name}/{k}": v for k, v in _modes(root).items()})
    for must in (
        "circuits/manifest.json",
        "circuits/qor.csv",
        "circuits/aig/xor.aig",
        "scans/manifest.json",
        "run/model.pt",
        "run/config.yaml",
        "run/checkpoints/last.ckpt",
        "converted/xor.aig",
    ):
        assert must in written, sorted(written)
    assert any(k.startswith("circuits/shards/") for k in written)
    private = {k: oct(v) for k, v in written.items() if v != 0o644}
    assert not private, private
