"""Every shipped CPU config runs as shipped from a fresh clone (issue #10): ``geomask pretrain configs/X_cpu.yaml``
with nothing prepared by hand, its data embedded, built from the embedded corpus on first use, or generated on first
use (the scene configs' ``scenes``: generated rooms, not real scans).  A new ``*_cpu.yaml`` must be added to
``RUNS``: a config that needs data prepared by hand does not ship."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from geomask.cli import main
from geomask.train.config import load_config

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
RUNS = {
    "mgm_cpu",
    "graphmae_cpu",
    "mgvga_cpu",
    "pointmae_cpu",
    "pointbert_cpu",
    "msm_cpu",
    "cpcm_cpu",
    "mae_cpu",
    "simmim_cpu",
    "simmim_cnn_cpu",
    "spark_cpu",
    "mlm_cpu",
    "drbert_cpu",  # issue 13
    "ernie_gram_cpu",
    "clm_cpu",
    "biphasic_cpu",
    "pepmlm_cpu",
    "diffpalm_cpu",  # issue 13
    "mfm_cpu",
    "hpm_cpu",
    "graphmae2_cpu",
    "selective_mae_cpu",
    "uni4eye_cpu",
    "dmjd_cpu",
}
SCENES = {"msm_cpu", "cpcm_cpu"}  # trained on generated scenes by default, on real scans with data.roots set
SMALL = ["data.corpus.designs=6", "data.scenes.scenes=2", "data.shapes.images=200"]  # first builds take seconds


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cache")  # shared: the corpus kinds are built once for the module


def _pretrain(name: str, out: Path, monkeypatch, cache: Path) -> int:
    monkeypatch.setenv("GEOMASK_CACHE", str(cache))
    monkeypatch.chdir(out.parent)  # a folder with no out/ in it, as in a fresh clone
    overrides = ["trainer.max_steps=2", f"trainer.out_dir={out}", "trainer.progress_bar=false", *SMALL]
    return main(["pretrain", str(CONFIGS / f"{name}.yaml"), "--set", *overrides])


def test_every_cpu_config_is_classified():
    shipped = {p.stem for p in CONFIGS.glob("*_cpu.yaml")}
    assert shipped == RUNS


@pytest.mark.parametrize("name", sorted(RUNS))
def test_cpu_config_runs_with_no_prepared_data(name, tmp_path, monkeypatch, capsys, cache):
    assert _pretrain(name, tmp_path / "run", monkeypatch, cache) == 0
    out = capsys.readouterr().out
    assert "trained 2 steps" in out
    losses = {k: float(v) for k, v in (line.split() for line in out.splitlines() if line.startswith("train/"))}
    assert "train/loss" in losses and all(math.isfinite(v) for v in losses.values())
    assert (tmp_path / "run" / "checkpoints" / "last.ckpt").is_file()


@pytest.mark.parametrize("name", sorted(SCENES))
def test_scene_configs_read_generated_scenes_or_the_scans_named(name):
    assert load_config(CONFIGS / f"{name}.yaml").data.kind == "scenes"
    real = load_config(CONFIGS / f"{name}.yaml", ["data.roots=[out/scans]"]).data
    assert (real.kind, real.roots) == ("auto", ["out/scans"])  # a prep scans folder instead, by its manifest
    assert "not real scans" in (CONFIGS / f"{name}.yaml").read_text()
