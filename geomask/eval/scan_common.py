"""What ``geomask eval probe`` and ``geomask eval weak`` share: scans as :class:`ScenePoints`, the eval
config, an in-process training loop over random crops, JSON and the per-class IoU plot.

Config (YAML; every key optional, defaults below)::

    seed: 0
    method: {name: msm | cpcm, ...builder keywords}     # build_msm / build_cpcm
    optim: {lr: 2.0e-3, weight_decay: 1.0e-4, grad_clip: 1.0}
    trainer: {max_steps: 150, threads: 0}
    scan_eval: {crop_points: 20000, probe_epochs: 300, knn_k: 20, knn_bank: 20000, sample_mode: nearest,
                label_map: null}
"""

from __future__ import annotations

import copy
import inspect
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from torch import nn

from geomask.datasets.scans import load_scan_item, parse_source
from geomask.datasets.store import DatasetReader
from geomask.errors import FormatError, UsageError
from geomask.io.atomic import atomic_write_text
from geomask.io.scans import read_scan
from geomask.points.augment import ScenePoints, crop_scenes
from geomask.points.labelmaps import LabelMap, load_label_map, map_labels
from geomask.train.config import ScanEvalConfig

__all__ = [
    "EvalConfig",
    "LoadedScan",
    "apply_overrides",
    "class_info",
    "frozen_copy",
    "load_eval_config",
    "load_scans",
    "method_kwargs",
    "plot_iou",
    "train_steps",
    "write_json",
]


@dataclass
class EvalConfig:
    """The resolved eval config (see the module doc)."""

    seed: int = 0
    method: dict[str, Any] = field(default_factory=dict)
    lr: float = 2e-3
    weight_decay: float = 1e-4
    grad_clip: float = 1.0
    steps: int = 150
    threads: int = 0
    # the scan_eval section: defaults live in one place, the training config's ScanEvalConfig
    crop_points: int = ScanEvalConfig.crop_points
    probe_epochs: int = ScanEvalConfig.probe_epochs
    knn_k: int = ScanEvalConfig.knn_k
    knn_bank: int = ScanEvalConfig.knn_bank
    sample_mode: str = ScanEvalConfig.sample_mode
    label_map: str | None = ScanEvalConfig.label_map


_SECTIONS = {
    "optim": {"lr": "lr", "weight_decay": "weight_decay", "grad_clip": "grad_clip"},
    "trainer": {"max_steps": "steps", "threads": "threads"},
    "scan_eval": {k: k for k in ("crop_points", "probe_epochs", "knn_k", "knn_bank", "sample_mode", "label_map")},
}


def load_eval_config(path: str | Path | None, default_method: str) -> EvalConfig:
    """Read an eval config (``None``: all defaults with ``method.name = default_method``).

    Raises:
        FormatError: unreadable YAML, an unknown section or key.
    """
    cfg = EvalConfig(method={"name": default_method})
    if path is None:
        return cfg
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as e:
        raise FormatError(path, f"cannot read the config ({type(e).__name__})") from None
    if not isinstance(raw, dict):
        raise FormatError(path, "the config must be a mapping of sections")
    for key, value in raw.items():
        if key == "seed":
            cfg.seed = int(value)
        elif key == "method":
            if not isinstance(value, dict):
                raise FormatError(path, "method must be a mapping (name and builder keywords)")
            cfg.method = {"name": default_method, **value}
        elif key in _SECTIONS:
            for k, v in (value or {}).items():
                if k not in _SECTIONS[key]:
                    raise FormatError(path, f"unknown key {key}.{k} (known: {', '.join(_SECTIONS[key])})")
                setattr(cfg, _SECTIONS[key][k], v)
        elif key not in ("data",):
            raise FormatError(path, f"unknown section {key!r}")
    return cfg


@dataclass
class LoadedScan:
    """One scan as model input: its name, the :class:`ScenePoints` (one scene) and the class count."""

    name: str
    scene: ScenePoints
    num_classes: int
    class_names: tuple[str, ...]


def _scene(points: torch.Tensor, colors: torch.Tensor | None, labels: torch.Tensor | None) -> ScenePoints:
    feats = colors if colors is not None else torch.ones(len(points), 1)
    return ScenePoints(points, feats.float(), torch.zeros(len(points), dtype=torch.long), labels)


def _classes(labels: torch.Tensor | None, lmap: LabelMap | None) -> tuple[int, tuple[str, ...]]:
    if lmap is not None:
        return lmap.num_classes, tuple(lmap.class_names)
    k = int(labels.max()) + 1 if labels is not None and len(labels) else 0
    return k, tuple(str(i) for i in range(k))


def _load_prepared(folder: Path, label_map: str | None, need_labels: bool) -> list[LoadedScan]:
    """Every scan of a ``geomask prep scans`` folder, its labels already through the folder's label map."""
    reader = DatasetReader(folder, kind="scan")
    applied = reader.options.get("label_map")
    if label_map is not None and applied is not None and label_map != applied:
        raise UsageError(f"{folder}: prepared with --label-map {applied}; --label-map {label_map} does not apply")
    if label_map is not None and applied is None:
        raise UsageError(f"{folder}: prepared without a label map; prepare it again with --label-map {label_map}")
    lmap = load_label_map(applied) if applied is not None else None
    out = []
    for i, key in enumerate(reader.keys()):
        item = load_scan_item(reader.load(i), folder / reader.items[i]["shard"])
        if item.labels is None and need_labels:
            raise FormatError(folder / reader.items[i]["shard"], "scan has no labels (prepare it with labels)")
        k, names = _classes(item.labels, lmap)
        out.append(LoadedScan(key, _scene(item.points, item.colors, item.labels), k, names))
    if not out:
        raise FormatError(folder, "the prepared scans folder holds no scans")
    return out


def load_scans(sources: Sequence[str], label_map: str | None, need_labels: bool = True) -> list[LoadedScan]:
    """Read scans: ``POINTS[:LABELS]`` files, or ``geomask prep scans`` folders (every scan in them).

    Features are the colours, or a constant 1 without colours.  A prepared folder's labels went through its
    own label map already; ``label_map`` must then be that map or ``None``.

    Raises:
        FormatError: a missing or unreadable scan, or one without labels when ``need_labels``.
        UsageError: a label map that does not fit a prepared folder, or an unknown label map.
    """
    lmap = load_label_map(label_map) if label_map is not None else None
    out = []
    for src in sources:
        pts_path, lab_path = parse_source(src)
        if pts_path.is_dir() and lab_path is None:
            if not (pts_path / "manifest.json").is_file():
                raise FormatError(pts_path, "is a folder but not a 'geomask prep scans' dataset (no manifest.json)")
            out.extend(_load_prepared(pts_path, label_map, need_labels))
            continue
        scan = read_scan(pts_path, labels=lab_path)
        if scan.labels is None and need_labels:
            raise FormatError(pts_path, "no labels: pass POINTS:LABELS or a format that carries labels")
        labels = None
        if scan.labels is not None:
            labels = scan.labels
            if lmap is not None:
                try:
                    labels = map_labels(labels, label_map)
                except ValueError as e:
                    raise FormatError(lab_path or pts_path, str(e)) from None
            labels = torch.from_numpy(np.asarray(labels, dtype=np.int64))
        colors = torch.from_numpy(scan.colors) if scan.colors is not None else None
        k, names = _classes(labels, lmap)
        out.append(LoadedScan(pts_path.stem, _scene(torch.from_numpy(scan.points), colors, labels), k, names))
    return out


def train_steps(
    method: nn.Module,
    scenes: Sequence[ScenePoints],
    cfg: EvalConfig,
    seed: int,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """``cfg.steps`` AdamW steps; step ``t`` trains on a random crop of scene ``t mod S`` (seeded).

    Returns:
        ``{"steps", "seconds", "first_loss", "last_loss"}`` (losses averaged over the first/last 10 %).
    """
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW([p for p in method.parameters() if p.requires_grad], cfg.lr, weight_decay=cfg.weight_decay)
    total = max(cfg.steps, 1)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda t: 0.5 * (1 + math.cos(math.pi * min(t / total, 1))))
    method.train()
    losses, t0 = [], time.perf_counter()
    for step in range(cfg.steps):
        scene = scenes[step % len(scenes)]
        keep = crop_scenes(scene.batch, scene.points, cfg.crop_points, gen)
        crop = scene.select(keep)
        out = method(crop, gen)
        opt.zero_grad(set_to_none=True)
        out["loss"].backward()
        if cfg.grad_clip > 0:
            nn.utils.clip_grad_norm_(method.parameters(), cfg.grad_clip)
        opt.step()
        sched.step()
        hook = getattr(method, "on_train_step_end", None)
        if hook is not None:  # EMA teachers, counters and schedules (never inside forward)
            hook(step)
        losses.append(float(out["loss"].detach()))
        if log is not None and (step % 10 == 0 or step == cfg.steps - 1):
            parts = " ".join(f"{k}={float(v.detach()):.4f}" for k, v in out.items())
            log(f"step {step + 1}/{cfg.steps} {parts} ({time.perf_counter() - t0:.0f} s)")
    method.eval()
    tail = max(1, len(losses) // 10)
    return {
        "steps": cfg.steps,
        "seconds": round(time.perf_counter() - t0, 1),
        "first_loss": float(np.mean(losses[:tail])) if losses else None,
        "last_loss": float(np.mean(losses[-tail:])) if losses else None,
    }


def frozen_copy(net: nn.Module) -> nn.Module:
    """A copy for feature extraction: BatchNorm normalises with each scene's own statistics (train mode,
    run under ``no_grad``), so trained and random networks are read the same way; the original is untouched."""
    return copy.deepcopy(net).train().requires_grad_(False)


def write_json(path: str | Path, obj: dict[str, Any]) -> None:
    atomic_write_text(Path(path), json.dumps(obj, indent=2, sort_keys=False) + "\n")


def plot_iou(path: str | Path, results: dict[str, dict], class_names: Sequence[str], title: str) -> None:
    """Grouped bars of per-class IoU: one group per class, one bar per ``method/protocol``.

    Args:
        results: ``{label: metrics}`` with ``metrics["iou"]`` a per-class list (``None`` where absent).
    """
    from geomask.eval.plots import pyplot, save_figure

    plt = pyplot()
    k = len(class_names)
    present = [c for c in range(k) if any(r["iou"][c] is not None for r in results.values())]
    fig, ax = plt.subplots(figsize=(max(6.0, 0.6 * len(present) + 2), 4))
    width = 0.8 / max(len(results), 1)
    for i, (label, r) in enumerate(results.items()):
        vals = [r["iou"][c] or 0.0 for c in present]
        ax.bar(np.arange(len(present)) + i * width, vals, width, label=f"{label} ({r['miou']:.3f})")
    ax.set_xticks(np.arange(len(present)) + 0.4 - width / 2)
    ax.set_xticklabels([class_names[c] for c in present], rotation=60, ha="right", fontsize=8)
    ax.set_ylabel("IoU")
    ax.set_ylim(0, 1)
    ax.set_title(title)
    ax.legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, path, dpi=120)


def apply_overrides(cfg: EvalConfig, **values: Any) -> None:
    """Command-line values over the config (``None`` keeps the config's)."""
    for key in ("label_map", "seed"):
        if values.get(key) is not None:
            setattr(cfg, key, values[key])
    if values.get("steps") is not None:
        cfg.steps = int(values["steps"])
    if values.get("voxel_size") is not None:
        cfg.method["voxel_size"] = float(values["voxel_size"])


def class_info(scans: Sequence[LoadedScan]) -> tuple[int, tuple[str, ...]]:
    """Class count and names: those of the scan with the most classes (the label map's when one is used)."""
    best = max(scans, key=lambda s: s.num_classes)
    return best.num_classes, best.class_names


def method_kwargs(cfg: EvalConfig, scene: ScenePoints, builder: Callable[..., Any]) -> dict[str, Any]:
    """Builder keywords: the config's, with the input width and colour channels taken from the data.

    Raises:
        ValueError: a keyword the builder does not take (the message lists the valid ones).
    """
    kw = {k: v for k, v in cfg.method.items() if k != "name"}
    valid = [p.name for p in inspect.signature(builder).parameters.values() if p.kind is p.KEYWORD_ONLY]
    unknown = sorted(set(kw) - set(valid))
    if unknown:
        raise UsageError(f"unknown method keyword(s) {', '.join(unknown)}; valid: {', '.join(valid)}")
    kw["in_channels"] = scene.feats.size(1)
    if scene.feats.size(1) < 3:
        kw["color_channels"] = 0
    return kw


@dataclass
class ScanRun:
    """What every scan evaluation starts from (:func:`prepare_run`)."""

    cfg: EvalConfig
    train: list[LoadedScan]
    test: list[LoadedScan]
    num_classes: int
    class_names: tuple[str, ...]
    kwargs: dict[str, Any]
    started: float
    sources: tuple[list[str], list[str]]


def prepare_run(
    train: Sequence[str],
    test: Sequence[str],
    config: str | Path | None,
    method: str,
    builder: Callable[..., Any],
    **overrides: Any,
) -> ScanRun:
    """Load the config (``method`` by default) with the command-line ``overrides``, set the thread count,
    read the train and test scans and derive the classes and the builder keywords."""
    cfg = load_eval_config(config, method)
    apply_overrides(cfg, **overrides)
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    started = time.perf_counter()
    tr = load_scans(train, cfg.label_map)
    te = load_scans(test, cfg.label_map)
    k, names = class_info(tr + te)
    kwargs = method_kwargs(cfg, tr[0].scene, builder)
    return ScanRun(cfg, tr, te, k, names, kwargs, started, (list(train), list(test)))


def finish_run(
    run: ScanRun,
    body: dict[str, Any],
    json_path: str | Path,
    plot: str | Path | None,
    bars: dict[str, dict],
    title: str,
) -> dict[str, Any]:
    """``body`` plus the scans, classes, config and seconds, written to ``json_path``; the per-class IoU
    ``bars`` plotted to ``plot`` (default: ``json_path`` with ``.png``)."""
    out = {
        **body,
        "train": run.sources[0],
        "test": run.sources[1],
        "classes": list(run.class_names),
        "config": {**asdict(run.cfg), "method": run.kwargs},
        "seconds": round(time.perf_counter() - run.started, 1),
    }
    write_json(json_path, out)
    plot_iou(Path(plot) if plot is not None else Path(json_path).with_suffix(".png"), bars, run.class_names, title)
    return out
