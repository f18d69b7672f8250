"""Plots of evaluation results (matplotlib, Agg backend, PNG files).

* :func:`qor_scatter` -- predicted against true AND-count z-scores, one panel per design;
* :func:`method_bars` -- one bar per method for each metric of a split, error bars = std over seeds, the
  constant baseline (where the result has one) as a dashed reference line;
* :func:`write_plots` -- all plots of a result dict into a folder, returning the written paths;
* :func:`pyplot` and :func:`save_figure` -- the Agg ``pyplot`` module, and writing a figure (folders made,
  figure closed), for every plot of the evaluations.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["method_bars", "pyplot", "qor_scatter", "save_figure", "write_plots"]


def pyplot():
    """``matplotlib.pyplot`` on the Agg backend (no screen needed)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig: Any, path: str | Path, dpi: int = 100) -> Path:
    """Write ``fig`` as a PNG (making its folder) and close it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    pyplot().close(fig)
    return path


def qor_scatter(per_design: Mapping[str, Mapping[str, Sequence[float]]], path: str | Path, title: str = "") -> Path:
    """Scatter of predicted (y) against true (x) z-scores, one panel per design (at most 25 shown).

    Args:
        per_design: ``{design: {"true": [...], "pred": [...]}}``.
        path: the PNG to write.
        title: figure title.
    """
    plt = pyplot()
    names = sorted(per_design)[:25]
    cols = min(5, max(1, len(names)))
    rows = max(1, math.ceil(len(names) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3 * cols, 3 * rows), squeeze=False)
    for ax in axes.ravel()[len(names) :]:
        ax.axis("off")
    for ax, name in zip(axes.ravel(), names):
        t, p = per_design[name]["true"], per_design[name]["pred"]
        ax.scatter(t, p, s=8, alpha=0.7)
        lo, hi = min(min(t), min(p)), max(max(t), max(p))
        ax.plot([lo, hi], [lo, hi], color="grey", lw=0.8, ls="--")
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("true z", fontsize=8)
        ax.set_ylabel("predicted z", fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return save_figure(fig, path)


def method_bars(
    methods: Mapping[str, Mapping[str, Mapping[str, float]]],
    split: str,
    metrics: Sequence[str],
    path: str | Path,
    baseline: Mapping[str, float] | None = None,
) -> Path:
    """Bars of ``metrics`` per method for one split, with ``metric_std`` error bars.

    Args:
        methods: ``result["methods"]`` (``{name: {split: {metric: value, metric_std: std}}}``).
        split: which split to draw.
        metrics: metric names (missing ones are skipped).
        path: the PNG to write.
        baseline: ``result["baseline"][split]`` (``{metric: value}``): each of its metrics is drawn as a
            horizontal dashed line, the level a method must beat.
    """
    plt = pyplot()
    names = [n for n in methods if split in methods[n]]
    shown = [m for m in metrics if any(m in methods[n][split] for n in names)]
    fig, axes = plt.subplots(1, max(1, len(shown)), figsize=(3.2 * max(1, len(shown)), 3.2), squeeze=False)
    for ax, m in zip(axes.ravel(), shown):
        vals = [methods[n][split].get(m, float("nan")) for n in names]
        errs = [methods[n][split].get(f"{m}_std", 0.0) for n in names]
        ax.bar(range(len(names)), vals, yerr=errs, capsize=3, color="tab:blue")
        ax.set_xticks(range(len(names)), names, rotation=45, ha="right", fontsize=8)
        ax.set_title(m, fontsize=9)
        ref = (baseline or {}).get(m)
        if ref is not None and math.isfinite(ref):
            ax.axhline(ref, color="tab:red", ls="--", lw=1.2, label="constant baseline")
            if not any(a.get_legend() for a in axes.ravel()):  # one legend is enough
                ax.legend(fontsize=7, loc="lower left")
    fig.suptitle(split)
    fig.tight_layout()
    return save_figure(fig, path)


_BAR_METRICS = {
    "qor": ("z_mae", "z_mse", "mape", "top10"),
    "equivalence": ("auc", "f1"),
    "probability": ("mae", "mae_and"),
}


def write_plots(result: Mapping[str, Any], out_dir: str | Path, task: str) -> list[Path]:
    """Write every plot of a result of ``task`` (``"qor"``, ``"equivalence"`` or ``"probability"``).

    Files: ``{task}_{split}_bars.png`` per split (``result["baseline"][split]``, where given, as reference
    lines); for QoR also ``qor_{split}_{method}_scatter.png`` from ``result["details"]``.
    """
    if task not in _BAR_METRICS:
        raise ValueError(f"unknown task {task!r}; valid: {', '.join(_BAR_METRICS)}")
    out = Path(out_dir)
    methods = result["methods"]
    splits = sorted({s for m in methods.values() for s in m})
    base = result.get("baseline", {})
    paths = [
        method_bars(methods, s, _BAR_METRICS[task], out / f"{task}_{s}_bars.png", baseline=base.get(s)) for s in splits
    ]
    for name, per_split in result.get("details", {}).items():
        for split, per_design in per_split.items():
            if per_design:
                paths.append(qor_scatter(per_design, out / f"qor_{split}_{name}_scatter.png", f"{name} — {split}"))
    return paths
