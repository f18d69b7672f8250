"""The training engine: a run's files, weights-only checkpoints, exact resume after a stop or a crash."""

from __future__ import annotations

import csv
import logging
import math
import re
from pathlib import Path

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


def _snapshot(folder) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_changed_config_is_refused_naming_the_keys_and_out_dir_stays_as_it_was(tiny_config):
    from geomask.train.engine import RunConflictError

    cfg = tiny_config("run", trainer={"max_steps": 4})
    train(cfg)
    before = _snapshot(train(cfg).out_dir)  # (the second call finds it complete and writes nothing)
    with pytest.raises(RunConflictError) as e:
        train(cfg, ["method.hidden=32", "data.batch_size=4", "trainer.max_steps=6"])
    msg = str(e.value)
    assert "\n" not in msg
    assert "method.hidden 16 → 32" in msg and "data.batch_size 3 → 4" in msg
    assert "max_steps" not in msg  # growing max_steps on a fixed schedule is no difference
    assert "--out DIR" in msg and "--resume" in msg
    assert set(e.value.differences) == {"method.hidden", "data.batch_size"}
    assert _snapshot(e.value.out_dir) == before


def test_keys_that_cannot_change_results_do_not_block_resuming(tiny_config):
    """An equal config resumes: out_dir, logging, checkpoint cadence, threads and a larger max_steps may change."""
    cfg = tiny_config("run", trainer={"max_steps": 3})
    train(cfg)
    moved = dict(cfg["trainer"], loggers=["csv", "tensorboard"], log_every=2, checkpoint_every=5, threads=2)
    r = train(
        dict(cfg, trainer=dict(moved, max_steps=5, keep_checkpoints=1, summary=True, val_every=2)),
        ["method.decoder_layers=1", "method.mgm_ratio=0.3"],  # the builder's defaults, now written out
    )
    assert r.status == "resumed" and r.resumed_from == 3 and r.steps == 5


def test_schedule_following_max_steps_makes_a_longer_run_a_different_one(tiny_config):
    from geomask.train.engine import RunConflictError

    cfg = tiny_config("run", trainer={"max_steps": 3}, optim={"schedule_steps": 0})
    train(cfg)
    with pytest.raises(RunConflictError, match=r"optim\.schedule_steps.* 3 → 5.*set optim\.schedule_steps=3$"):
        train(cfg, ["trainer.max_steps=5"])
    r = train(cfg, ["trainer.max_steps=5", "optim.schedule_steps=3"])  # the same schedule, written out
    assert r.status == "resumed" and r.resumed_from == 3


def test_complete_run_is_not_run_again(tiny_config, capsys):
    cfg = tiny_config("run", trainer={"max_steps": 3})
    first = train(cfg)
    ckpt = first.checkpoint.stat().st_mtime_ns
    versions = sorted(p.name for p in (first.out_dir / "logs" / "csv").iterdir())
    capsys.readouterr()
    for max_steps in (3, 2):  # at or past max_steps: nothing to do
        again = train(cfg, [f"trainer.max_steps={max_steps}"])
        assert again.status == "complete" and again.steps == 3 and again.resumed_from is None
        assert again.metrics["train/loss"] == first.metrics["train/loss"]
    assert first.checkpoint.stat().st_mtime_ns == ckpt
    assert sorted(p.name for p in (first.out_dir / "logs" / "csv").iterdir()) == versions
    assert "Trainer" not in capsys.readouterr().out
    trained = first.method.state_dict()
    assert all(torch.equal(trained[k], v) for k, v in again.method.state_dict().items())


def test_resume_anyway_with_other_sizes_is_one_line_naming_the_parameter(tiny_config):
    from geomask.train.engine import RunConflictError

    cfg = tiny_config("run", trainer={"max_steps": 3})
    out = train(cfg).out_dir
    before = _snapshot(out)
    with pytest.raises(RunConflictError) as e:
        train(cfg, ["method.hidden=32", "trainer.max_steps=5", "trainer.resume=true"])
    msg = str(e.value)
    assert "\n" not in msg
    assert re.search(r"parameter '[\w.]+' is \[(16|.*, 16)\] in the checkpoint, \[(32|.*, 32)\] in the method", msg)
    assert _snapshot(out) == before


def test_resume_anyway_continues_a_changed_config_where_the_weights_fit(tiny_config, capsys):
    from geomask.train.engine import RunConflictError

    cfg = tiny_config("run", trainer={"max_steps": 3})
    train(cfg)
    with pytest.raises(RunConflictError, match=r"optim\.lr 0\.001 → 0\.002"):
        train(cfg, ["optim.lr=2e-3", "trainer.max_steps=5"])
    capsys.readouterr()
    r = train(cfg, ["optim.lr=2e-3", "trainer.max_steps=5", "trainer.resume=true"])
    assert r.status == "resumed" and r.resumed_from == 3 and r.steps == 5
    assert "resuming from step 3 although the config differs (optim.lr 0.001 → 0.002)" in capsys.readouterr().out
    assert "lr: 0.002" in (r.out_dir / "config.yaml").read_text()  # the stored config is the run's latest


def test_resume_false_starts_over_without_the_old_checkpoints(tiny_config):
    cfg = tiny_config("run", trainer={"max_steps": 4})
    out = train(cfg).out_dir
    assert (out / "checkpoints" / "step00000003.ckpt").is_file()
    r = train(cfg, ["trainer.resume=false", "trainer.max_steps=2", "method.hidden=8"])
    assert r.status == "new" and r.steps == 2
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["last.ckpt"]


def test_config_yaml_is_there_whenever_a_checkpoint_is(tiny_config):
    """config.yaml is written at fit start, and again with any checkpoint that finds it gone."""

    class Remove(pl.Callback):
        def on_train_start(self, trainer, pl_module):
            (Path(trainer.default_root_dir) / "config.yaml").unlink()

    cfg = tiny_config("run")
    with pytest.raises(RuntimeError, match="simulated kill"):
        train(cfg, callbacks=[Remove(), _Crash(4)])
    out = Path(cfg["trainer"]["out_dir"])
    assert (out / "checkpoints" / "last.ckpt").is_file() and (out / "config.yaml").is_file()
    assert train(cfg).resumed_from == 3


def test_checkpoint_config_stands_in_for_a_lost_config_yaml(tiny_config):
    from geomask.train.engine import RunConflictError

    cfg = tiny_config("run", trainer={"max_steps": 3})
    out = train(cfg).out_dir
    (out / "config.yaml").unlink()
    assert train(cfg).status == "complete"
    with pytest.raises(RunConflictError, match="method.hidden 16 → 8"):
        train(cfg, ["method.hidden=8"])


def test_data_kind_is_checked_before_anything_is_built(tmp_path, tiny_config):
    import numpy as np

    from geomask.datasets.scans import prep_scans
    from geomask.train.config import ConfigError

    np.save(tmp_path / "s.npy", np.random.default_rng(0).uniform(0, 1, size=(200, 6)).astype(np.float32))
    prep_scans([tmp_path / "s.npy"], tmp_path / "scans", voxel_size=0.1, progress=False)
    cfg = tiny_config("run", data={"kind": "auto", "roots": [str(tmp_path / "scans")]})
    with pytest.raises(ConfigError) as e:
        train(cfg)
    assert str(e.value) == (
        "data.kind: method 'mgvga' trains on circuits, pairs, synthetic, corpus or corpus_pairs data, "
        f"but {tmp_path / 'scans'} is a scans dataset"
    )
    with pytest.raises(
        ConfigError, match=r"^data\.kind: method 'pointmae' trains on objects or scan_objects data, but data\.kind"
    ):
        train(tiny_config("run", method={"name": "pointmae"}))
    with pytest.raises(ConfigError, match=r"^data\.roots: no such folder: .*nowhere$"):
        train(cfg, [f"data.roots=[{tmp_path / 'nowhere'}]"])
    assert not (tmp_path / "run").exists()


def test_one_last_ckpt_with_validation_and_after_resuming(tiny_config):
    """ModelCheckpoint's save_last and the run's own last.ckpt share one file (no last-v1.ckpt)."""
    cfg = tiny_config("run", trainer={"max_steps": 4, "checkpoint_every": 100}, data={"val_fraction": 0.2})
    out = train(cfg).out_dir
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["last.ckpt"]
    assert train(cfg, ["trainer.max_steps=6"]).resumed_from == 4
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["last.ckpt"]
    assert torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 6


def test_result_repr_is_short_and_the_summary_names_the_registry_method(tiny_config, capfd, caplog):
    caplog.set_level(logging.INFO)
    r = train(tiny_config("run", trainer={"max_steps": 2, "summary": True}))
    out, err = capfd.readouterr()
    assert re.search(r"^model: mgvga \(MGVGA\), [\d,]+ parameters \([\d,]+ trainable\)$", out, re.M)
    assert "Total params" not in out + err  # Lightning's table, which says MGVGA only
    logged = caplog.text + out + err
    assert "GPU available" in logged  # Lightning's own lines still come through
    assert "💡" not in logged and "litlogger" not in logged
    text = repr(r)
    assert text.startswith(f"TrainResult(method=mgvga, status=new, steps=2, out_dir={r.out_dir}, metrics={{")
    assert "train/loss=" in text and "\n" not in text and len(text) < 400
    assert "Linear" not in text and "DeepGCN" not in text
