"""The training engine: a run's files, weights-only checkpoints, exact resume after a stop or a crash."""

from __future__ import annotations

import csv
import math

import lightning.pytorch as pl
import pytest
import torch

from geomask.train import train
from geomask.train.checkpoint import load_method, load_weights


def _read_csv(log_dir) -> list[dict[str, str]]:
    with open(log_dir / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_run_writes_checkpoints_logs_and_weights(tiny_config):
    cfg = tiny_config("run", trainer={"max_steps": 7, "loggers": ["csv", "tensorboard"]}, data={"val_fraction": 0.2})
    r = train(cfg)
    out = r.out_dir
    assert r.steps == 7 and r.rank == 0 and r.world_size == 1 and r.resumed_from is None
    ckpts = sorted(p.name for p in (out / "checkpoints").glob("*.ckpt"))
    assert ckpts == ["last.ckpt", "step00000003.ckpt", "step00000006.ckpt"]
    rows = _read_csv(r.log_dir)
    steps = sorted({int(row["step"]) for row in rows if row.get("train/loss")})
    assert steps == list(range(7))
    assert any(row.get("val/loss") for row in rows)
    assert list((out / "logs" / "tensorboard").rglob("events.out.tfevents.*"))
    for key in ("train/loss", "train/mgm_type", "val/loss"):
        assert math.isfinite(r.metrics[key])
    assert (out / "config.yaml").is_file() and (out / "metrics.json").is_file()
    assert r.encoder_path is not None and r.encoder_path.is_file()
    # every file loads weights-only
    for path in [*(out / "checkpoints").glob("*.ckpt"), r.model_path, r.encoder_path]:
        assert isinstance(torch.load(path, map_location="cpu", weights_only=True), dict)
    ckpt = torch.load(r.checkpoint, weights_only=True)
    assert ckpt["global_step"] == 7
    assert ckpt["hyper_parameters"]["method"]["name"] == "mgvga"
    assert ckpt["optimizer_states"] and ckpt["lr_schedulers"]
    # the exported weights are the trained method's, and the run folder rebuilds it
    trained = r.method.state_dict()
    assert all(torch.equal(trained[k], v) for k, v in load_weights(r.model_path).items())
    assert all(torch.equal(trained[k], v) for k, v in load_weights(r.checkpoint).items())
    rebuilt = load_method(out)
    assert all(torch.equal(trained[k], v) for k, v in rebuilt.state_dict().items())


class _Crash(pl.Callback):
    """Raise in the middle of training, as a kill would stop it (after the periodic checkpoint)."""

    def __init__(self, at_step: int) -> None:
        self.at_step = at_step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_step == self.at_step:
            raise RuntimeError("simulated kill")


def _max_diff(a, b) -> float:
    wa, wb = load_weights(a), load_weights(b)
    assert wa.keys() == wb.keys()
    return max((wa[k] - wb[k]).abs().max().item() for k in wa)


def test_resume_after_crash_and_after_stop_equals_uninterrupted_run(tiny_config):
    """8 steps in one go == crash at step 5 (resume from the step-3 checkpoint) → stop at 6 → resume to 8."""
    full = train(tiny_config("full"))
    interrupted = tiny_config("parts")
    with pytest.raises(RuntimeError, match="simulated kill"):
        train(interrupted, callbacks=[_Crash(5)])
    assert (
        torch.load(full.checkpoint.parent.parent.parent / "parts/checkpoints/last.ckpt", weights_only=True)[
            "global_step"
        ]
        == 3
    )
    part = train(interrupted, ["trainer.max_steps=6"])
    assert part.resumed_from == 3 and part.steps == 6
    assert _max_diff(full.model_path, part.model_path) > 1e-4  # not trivially equal: training moved on
    end = train(interrupted)
    assert end.resumed_from == 6 and end.steps == 8
    assert _max_diff(full.model_path, end.model_path) < 1e-6
    assert end.metrics["train/loss"] == pytest.approx(full.metrics["train/loss"], abs=1e-6)


def test_resume_false_starts_over_and_the_seed_matters(tiny_config):
    cfg = tiny_config("again", trainer={"max_steps": 2})
    first = load_weights(train(cfg).model_path)
    r = train(cfg, ["trainer.resume=false", "seed=4"])
    assert r.resumed_from is None and r.steps == 2
    second = load_weights(r.model_path)
    assert max((first[k] - second[k]).abs().max().item() for k in first) > 1e-4


def test_point_method_trains_on_object_clouds(tmp_path):
    """data.kind objects: Point-MAE pretrains through the same engine, batches [B, N, 3], weights-only ckpt."""
    cfg = {
        "seed": 0,
        "method": {
            "name": "pointmae",
            "num_groups": 8,
            "group_size": 16,
            "dim": 32,
            "depth": 1,
            "decoder_depth": 1,
            "heads": 2,
            "mask_ratio": 0.6,
            "embed_hidden": 16,
        },
        "data": {"kind": "objects", "batch_size": 4, "objects": {"num_objects": 16, "num_points": 128}},
        "optim": {"lr": 1e-3},
        "trainer": {
            "max_steps": 3,
            "out_dir": str(tmp_path / "run"),
            "progress_bar": False,
            "threads": 1,
            "loggers": ["csv"],
        },
    }
    result = train(cfg)
    assert result.steps == 3
    assert torch.isfinite(torch.tensor(result.metrics["train/loss"]))
    torch.load(result.checkpoint, weights_only=True)


def test_scene_method_trains_on_prepared_scans(tmp_path):
    """data.kind scans: MSM pretrains on a `prep scans` folder through the same engine."""
    import numpy as np

    from geomask.datasets.scans import prep_scans

    rng = np.random.default_rng(0)
    srcs = []
    for k in range(2):
        pts = rng.uniform(0, 2, size=(3000, 3)).astype(np.float32)
        rgb = rng.uniform(0, 255, size=(3000, 3)).astype(np.float32)
        np.save(tmp_path / f"s{k}.npy", np.concatenate([pts, rgb], 1))
        srcs.append(tmp_path / f"s{k}.npy")
    _, failures = prep_scans(srcs, tmp_path / "scans", voxel_size=0.1, progress=False)
    assert not failures
    cfg = {
        "seed": 0,
        "method": {"name": "msm", "backbone": "Res16UNetTiny", "voxel_size": 0.1, "stem_kernel": 3},
        "data": {"kind": "scans", "roots": [str(tmp_path / "scans")], "batch_size": 2},
        "trainer": {
            "max_steps": 2,
            "out_dir": str(tmp_path / "run"),
            "progress_bar": False,
            "threads": 1,
            "loggers": ["csv"],
        },
    }
    result = train(cfg)
    assert result.steps == 2 and torch.isfinite(torch.tensor(result.metrics["train/loss"]))
