"""Evaluation metrics: QoR regression on per-design z-scores, recipe ranking, binary classification, seeds.

Conventions:

* **z-scores** are per design: ``z = (y - mean_d) / std_d`` with the design's statistics (population
  standard deviation, ``ddof = 0``; a constant design gets ``std = 1`` so its z-scores are 0).
* :func:`mape` is the ordinary mean absolute percentage error **in percent** on raw values (AND counts).
* :func:`legacy_mape` is what the OpenABC-D / HOGA code reports as "MAPE": scikit-learn's
  ``mean_absolute_percentage_error`` applied to **z-scores**, **not** multiplied by 100. It divides by
  ``max(|z|, eps)``, so recipes whose z-score is near 0 dominate it; it is reported only so numbers can
  be set beside those papers, clearly labelled ``legacy_mape``.
* :func:`topk_commonality` is the overlap, in percent, between the predicted best ``k`` % of recipes and
  the true best ``k`` % (best = smallest value: fewer ANDs), with ties counted so that recipe order never
  decides it.
* :func:`regret` is what a designer pays for trusting the model: the percent more ANDs of the recipe predicted
  best than of the truly best recipe (0 = the model picked a best recipe); a tie among the predicted best is
  a uniformly random pick among them, counted in expectation, so a constant predictor's regret is that of a
  random recipe.  :func:`label_stats` says how much recipes matter in a label set at all.
* Seeds are summarised by :func:`mean_std`: ``{"m": mean, "m_std": std, "m_seeds": [...]}`` (population std, 0 for
  one seed; the values per seed in the order of ``--seeds``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

__all__ = [
    "auc",
    "best_threshold",
    "design_stats",
    "legacy_mape",
    "mape",
    "mean_std",
    "precision_recall_f1",
    "label_stats",
    "qor_metrics",
    "regret",
    "topk_commonality",
    "z_mae",
    "z_mse",
    "zscore",
]

_EPS = float(np.finfo(np.float64).eps)


def _pair(pred: np.ndarray | Sequence[float], true: np.ndarray | Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    p = np.asarray(pred, dtype=np.float64).reshape(-1)
    t = np.asarray(true, dtype=np.float64).reshape(-1)
    if p.shape != t.shape:
        raise ValueError(f"pred and true must have the same length, got {p.shape[0]} and {t.shape[0]}")
    if p.size == 0:
        raise ValueError("metrics need at least one value")
    return p, t


def design_stats(values: np.ndarray | Sequence[float]) -> tuple[float, float]:
    """``(mean, std)`` of one design's values (population std; 1.0 when the values are constant)."""
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    if v.size == 0:
        raise ValueError("design statistics need at least one value")
    std = float(v.std())
    return float(v.mean()), std if std > 0 else 1.0


def zscore(values: np.ndarray | Sequence[float], mean: float, std: float) -> np.ndarray:
    """``(values - mean) / std`` as float64."""
    return (np.asarray(values, dtype=np.float64) - mean) / std


def z_mse(pred: np.ndarray | Sequence[float], true: np.ndarray | Sequence[float]) -> float:
    """Mean squared error (of z-scores): ``mean((pred - true) ** 2)``."""
    p, t = _pair(pred, true)
    return float(np.mean((p - t) ** 2))


def z_mae(pred: np.ndarray | Sequence[float], true: np.ndarray | Sequence[float]) -> float:
    """Mean absolute error (of z-scores): ``mean(|pred - true|)``."""
    p, t = _pair(pred, true)
    return float(np.mean(np.abs(p - t)))


def mape(pred: np.ndarray | Sequence[float], true: np.ndarray | Sequence[float]) -> float:
    """Mean absolute percentage error in percent on raw values: ``100 * mean(|pred - true| / |true|)``.

    Raises:
        ValueError: a true value is 0 (raw AND counts of a non-trivial design never are).
    """
    p, t = _pair(pred, true)
    if np.any(t == 0):
        raise ValueError("mape is undefined where a true value is 0")
    return float(100.0 * np.mean(np.abs(p - t) / np.abs(t)))


def legacy_mape(pred: np.ndarray | Sequence[float], true: np.ndarray | Sequence[float]) -> float:
    """LEGACY OpenABC-D / HOGA "MAPE": ``mean(|true - pred| / max(|true|, eps))`` on z-scores, no ``x100``.

    Bit-for-bit the formula of ``sklearn.metrics.mean_absolute_percentage_error`` (``eps`` is float64
    machine epsilon), reimplemented in numpy. Not a percentage, and unstable where true z-scores are near 0.
    """
    p, t = _pair(pred, true)
    return float(np.mean(np.abs(t - p) / np.maximum(np.abs(t), _EPS)))


def topk_commonality(pred: np.ndarray | Sequence[float], true: np.ndarray | Sequence[float], k: float) -> float:
    """Overlap in percent between the predicted and the true best ``k`` % of recipes (smaller is better).

    ``n = max(1, ceil(k / 100 * R))``. Ties are common (many recipes reach the same AND count), so neither
    side is decided by recipe order: a recipe is *truly best* when its true value is at most the ``n``-th
    smallest true value, and where predictions tie at the ``n``-th smallest prediction, the remaining slots
    are filled by a uniformly random pick among the tied recipes, counted in expectation.  The result is
    ``100 * E[truly best among the n predicted] / n``; a constant predictor scores the share of truly best
    recipes, whatever their order.

    Args:
        pred: ``[R]`` predicted values (z-scores or raw: only the order matters).
        true: ``[R]`` true values.
        k: percentage in ``(0, 100]``.
    """
    p, t = _pair(pred, true)
    if not 0 < k <= 100:
        raise ValueError(f"k must be a percentage in (0, 100], got {k}")
    n = max(1, math.ceil(k / 100.0 * p.size - 1e-9))
    good = t <= np.partition(t, n - 1)[n - 1]
    cut = np.partition(p, n - 1)[n - 1]
    below, at = p < cut, p == cut
    hits = np.count_nonzero(good & below) + (n - np.count_nonzero(below)) * np.count_nonzero(
        good & at
    ) / np.count_nonzero(at)
    return float(100.0 * hits / n)


def regret(pred: np.ndarray | Sequence[float], true: np.ndarray | Sequence[float]) -> float:
    """Percent more of ``true`` (AND count) at the recipe predicted best than at the truly best recipe.

    ``100 * (E[true[r]] / min(true) - 1)`` over the recipes ``r`` of smallest ``pred`` (ties: a uniform pick,
    in expectation).  A design whose best value is 0 gives 0 when the pick is also 0, else ``inf``.

    Args:
        pred: ``[R]`` predicted values (only their order matters: smaller is better).
        true: ``[R]`` true values.
    """
    p, t = _pair(pred, true)
    chosen = float(t[p == p.min()].mean())
    best = float(t.min())
    if best <= 0:
        return 0.0 if chosen <= best else math.inf
    return 100.0 * (chosen / best - 1.0)


def _ranks(row: np.ndarray) -> np.ndarray:
    """Ranks ``0 .. R-1`` of a row, ties sharing their mean rank (Spearman's convention)."""
    _, inv, counts = np.unique(row, return_inverse=True, return_counts=True)
    first = np.cumsum(counts) - counts
    return (first + (counts - 1) / 2.0)[inv]


def label_stats(values: np.ndarray) -> dict[str, float]:
    """How much recipes matter in a label set ``values [D, R]`` (AND counts of D designs under R recipes).

    Returns:
        ``designs``, ``recipes``; ``constant_designs`` (the same value under every recipe: nothing to rank);
        ``spread_median`` / ``spread_max``: the percent spread ``100 (max - min) / min`` per design; and
        ``rank_correlation``: the mean Spearman correlation of the recipes' values between every two
        non-constant designs (near 0: what is good for one design says nothing about another, so a model
        that sees only the recipe cannot beat the per-design mean).
    """
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 2:
        raise ValueError(f"values must be [designs, recipes], got shape {v.shape}")
    lo, hi = v.min(1), v.max(1)
    spread = 100.0 * (hi - lo) / np.maximum(lo, 1.0)
    varying = hi > lo
    corr = math.nan
    if varying.sum() >= 2:
        r = np.stack([_ranks(row) for row in v[varying]])  # one row per design
        r = (r - r.mean(1, keepdims=True)) / r.std(1, keepdims=True)
        c = r @ r.T / r.shape[1]
        iu = np.triu_indices(len(c), 1)
        corr = float(c[iu].mean())
    return {
        "designs": float(v.shape[0]),
        "recipes": float(v.shape[1]),
        "constant_designs": float((~varying).sum()),
        "spread_median": float(np.median(spread)) if len(spread) else math.nan,
        "spread_max": float(spread.max()) if len(spread) else math.nan,
        "rank_correlation": corr,
    }


def qor_metrics(
    pred_z: np.ndarray, true_z: np.ndarray, true_raw: np.ndarray, mean: float, std: float
) -> dict[str, float]:
    """All QoR metrics of one design's test recipes.

    Args:
        pred_z: ``[R]`` predicted z-scores.
        true_z: ``[R]`` true z-scores.
        true_raw: ``[R]`` true raw values (AND counts) for :func:`mape`.
        mean, std: the statistics that de-normalise ``pred_z`` into raw predictions.

    Returns:
        ``z_mse``, ``z_mae``, ``mape`` (percent), ``legacy_mape``, ``top1``, ``top5``, ``top10``, ``regret``
        (percent, :func:`regret` on the raw values).
    """
    pred_raw = np.asarray(pred_z, dtype=np.float64) * std + mean
    return {
        "z_mse": z_mse(pred_z, true_z),
        "z_mae": z_mae(pred_z, true_z),
        "mape": mape(pred_raw, true_raw),
        "legacy_mape": legacy_mape(pred_z, true_z),
        "top1": topk_commonality(pred_z, true_z, 1),
        "top5": topk_commonality(pred_z, true_z, 5),
        "top10": topk_commonality(pred_z, true_z, 10),
        "regret": regret(pred_z, true_raw),
    }


# -- binary classification -------------------------------------------------------------------------


def _binary(scores: np.ndarray | Sequence[float], labels: np.ndarray | Sequence[bool]) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    y = np.asarray(labels).reshape(-1).astype(bool)
    if s.shape != y.shape:
        raise ValueError(f"scores and labels must have the same length, got {s.shape[0]} and {y.shape[0]}")
    return s, y


def auc(scores: np.ndarray | Sequence[float], labels: np.ndarray | Sequence[bool]) -> float:
    """Area under the ROC curve: the probability that a random positive scores above a random negative
    (ties count one half), from average ranks (Mann-Whitney U).

    Raises:
        ValueError: the labels hold only one class.
    """
    s, y = _binary(scores, labels)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError("auc needs both positive and negative labels")
    order = np.argsort(s, kind="stable")
    sorted_s = s[order]
    # average rank (1-based) of each tie group
    _, start, counts = np.unique(sorted_s, return_index=True, return_counts=True)
    group_rank = start + (counts + 1) / 2.0
    ranks = np.empty_like(s)
    ranks[order] = np.repeat(group_rank, counts)
    u = ranks[y].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def precision_recall_f1(pred: np.ndarray | Sequence[bool], labels: np.ndarray | Sequence[bool]) -> dict[str, float]:
    """``precision``, ``recall`` and ``f1`` of boolean predictions (0 where a denominator is 0)."""
    p = np.asarray(pred).reshape(-1).astype(bool)
    y = np.asarray(labels).reshape(-1).astype(bool)
    if p.shape != y.shape:
        raise ValueError(f"pred and labels must have the same length, got {p.shape[0]} and {y.shape[0]}")
    tp = float(np.sum(p & y))
    precision = tp / p.sum() if p.sum() else 0.0
    recall = tp / y.sum() if y.sum() else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": float(precision), "recall": float(recall), "f1": float(f1)}


def best_threshold(scores: np.ndarray | Sequence[float], labels: np.ndarray | Sequence[bool]) -> float:
    """The threshold ``t`` maximising F1 of ``scores >= t`` (ties: the largest such ``t``).

    Used to calibrate zero-shot similarity scores on training pairs before scoring test pairs.
    """
    s, y = _binary(scores, labels)
    order = np.argsort(-s, kind="stable")
    ss, yy = s[order], y[order]
    tp = np.cumsum(yy)
    k = np.arange(1, s.size + 1)
    last = np.r_[ss[1:] != ss[:-1], True]  # predicting the first k rows positive is a threshold at ss[k-1]
    f1 = np.where(last, 2 * tp / (k + max(int(y.sum()), 1)), -1.0)
    return float(ss[int(np.argmax(f1))])


# -- seeds ------------------------------------------------------------------------------------------


def mean_std(runs: Sequence[Mapping[str, float]]) -> dict[str, float | list[float]]:
    """Mean and standard deviation of each metric over runs (seeds).

    Args:
        runs: one ``{metric: value}`` per seed; every run must have the same keys.

    Returns:
        ``{metric: mean, metric + "_std": std, metric + "_seeds": [value per run]}`` for each metric, in the runs'
        key order (population std, so one seed gives 0; the per-seed values in the runs' order).
    """
    if not runs:
        raise ValueError("mean_std needs at least one run")
    keys = list(runs[0])
    if any(set(r) != set(keys) for r in runs):
        raise ValueError("every run must report the same metrics")
    out: dict[str, float] = {}
    for k in keys:
        v = np.asarray([r[k] for r in runs], dtype=np.float64)
        out[k] = float(v.mean())
        out[f"{k}_std"] = float(v.std())
        out[f"{k}_seeds"] = v.tolist()  # type: ignore[assignment]
    return out
