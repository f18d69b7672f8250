"""Weakly supervised segmentation (CPCM's protocol): a seeded fraction of labelled points per scene, saved
as index files, and CPCM against the same network trained without the masked branch.

Label sampling: per scene, ``max(1, round(fraction * L))`` of its ``L`` labelled points (label not
``ignore_index``), uniformly without replacement from ``torch.Generator().manual_seed(seed)``; the sorted
point indices are written to ``<labels_dir>/<scan>_f<fraction>_s<seed>.npy`` (int64) and read back when
the file exists, so both methods and later runs use the very same points.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from geomask.errors import FormatError
from geomask.eval.probe import segmentation_metrics
from geomask.eval.scan_common import (
    finish_run,
    prepare_run,
    train_steps,
)
from geomask.io.atomic import atomic_write_bytes
from geomask.points.augment import ScenePoints

__all__ = ["load_weak_indices", "run_weak", "sample_weak_labels", "save_weak_indices", "weak_label_path"]


def sample_weak_labels(
    labels: Tensor, fraction: float, generator: torch.Generator | None = None, ignore_index: int = -1
) -> Tensor:
    """Sorted indices of ``max(1, round(fraction * L))`` labelled points drawn without replacement.

    Shapes:
        labels ``[N]`` → ``[K]`` int64.
    """
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"label fraction must be in (0, 1], got {fraction}")
    valid = torch.nonzero(labels != ignore_index).squeeze(1)
    if len(valid) == 0:
        raise ValueError("the scene has no labelled points to sample from")
    k = max(1, int(fraction * len(valid) + 0.5))
    g = generator if generator is not None else torch.Generator().manual_seed(0)
    pick = valid[torch.randperm(len(valid), generator=g)[:k]]
    return torch.sort(pick).values


def weak_label_path(labels_dir: str | Path, scan: str, fraction: float, seed: int) -> Path:
    return Path(labels_dir) / f"{scan}_f{fraction:g}_s{seed}.npy"


def save_weak_indices(path: str | Path, index: Tensor) -> None:
    """Write the indices as an int64 ``.npy`` (atomically)."""
    import io

    buf = io.BytesIO()
    np.save(buf, index.numpy().astype(np.int64))
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(Path(path), buf.getvalue())


def load_weak_indices(path: str | Path, num_points: int) -> Tensor:
    """Read an index file written by :func:`save_weak_indices` (``FormatError`` on a bad one)."""
    try:
        arr = np.load(Path(path), allow_pickle=False)
    except (OSError, ValueError) as e:
        raise FormatError(path, f"not a label index file ({type(e).__name__})") from None
    if arr.ndim != 1 or not np.issubdtype(arr.dtype, np.integer):
        raise FormatError(path, f"label indices must be a 1-D integer array, got {arr.dtype} {arr.shape}")
    if len(arr) and (arr.min() < 0 or arr.max() >= num_points):
        raise FormatError(path, f"label indices fall outside the scan's {num_points} points")
    return torch.from_numpy(arr.astype(np.int64))


def weak_scene(scene: ScenePoints, index: Tensor, ignore_index: int = -1) -> ScenePoints:
    """The scene with labels only at ``index`` (``ignore_index`` elsewhere)."""
    labels = torch.full_like(scene.labels, ignore_index)
    labels[index] = scene.labels[index]
    return ScenePoints(scene.points, scene.feats, scene.batch, labels)


def run_weak(
    train: Sequence[str],
    test: Sequence[str],
    json_path: str | Path,
    label_fraction: float,
    config: str | Path | None = None,
    labels_dir: str | Path | None = None,
    label_map: str | None = None,
    voxel_size: float | None = None,
    steps: int | None = None,
    seed: int | None = None,
    plot: str | Path | None = None,
    log: Callable[[str], None] | None = print,
) -> dict[str, Any]:
    """Train ``cpcm`` and ``no_mask`` (same network, initialisation, labelled points, crops and steps) on the
    training scans with ``label_fraction`` of their labels; score both on the test scans (``test``) and on
    every labelled point of the training scans (``train_all``). Writes ``json_path`` and a per-class plot."""
    from geomask.methods.cpcm import build_cpcm

    run = prepare_run(
        train, test, config, "cpcm", build_cpcm, label_map=label_map, voxel_size=voxel_size, steps=steps, seed=seed
    )
    cfg, tr, te, k = run.cfg, run.train, run.test, run.num_classes
    kwargs = run.kwargs
    kwargs["num_classes"] = k
    kwargs.pop("mask", None)
    ldir = Path(labels_dir) if labels_dir is not None else Path(json_path).with_suffix("").parent / "weak_labels"
    weak, files = [], []
    for s in tr:
        path = weak_label_path(ldir, s.name, label_fraction, cfg.seed)
        if path.is_file():
            idx = load_weak_indices(path, len(s.scene.points))
        else:
            idx = sample_weak_labels(s.scene.labels, label_fraction, torch.Generator().manual_seed(cfg.seed))
            save_weak_indices(path, idx)
        weak.append(weak_scene(s.scene, idx))
        files.append({"scan": s.name, "file": str(path), "labelled_points": len(idx)})
    with torch.random.fork_rng():
        torch.manual_seed(cfg.seed)
        cpcm = build_cpcm(mask=True, **kwargs)
    baseline = build_cpcm(mask=False, **kwargs)
    baseline.backbone.load_state_dict(copy.deepcopy(cpcm.backbone.state_dict()))
    results: dict[str, Any] = {}
    training: dict[str, Any] = {}
    for name, model in (("cpcm", cpcm), ("no_mask", baseline)):
        if log is not None:
            log(f"training {name}")
        training[name] = train_steps(model, weak, cfg, cfg.seed, log)
        model.eval()
        res = {}
        for split, scans in (("test", te), ("train_all", tr)):
            pred = torch.cat([model.predict(s.scene).argmax(1) for s in scans])
            res[split] = segmentation_metrics(pred, torch.cat([s.scene.labels for s in scans]), k)
        results[name] = res
        if log is not None:
            log(
                f"{name}: test mIoU {res['test']['miou']:.4f} OA {res['test']['oa']:.4f} | "
                f"train-scan mIoU {res['train_all']['miou']:.4f}"
            )
    body = {"methods": results, "label_fraction": label_fraction, "weak_labels": files, "training": training}
    bars = {m: results[m]["test"] for m in results}
    return finish_run(run, body, json_path, plot, bars, f"weak labels {label_fraction:g}: test IoU")
