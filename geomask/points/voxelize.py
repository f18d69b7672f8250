"""Voxelization: points → unique integer grid coordinates (batch index first) and the maps between them.

A point ``p`` falls in voxel ``floor(p / voxel_size)``.  Voxels are found with one ``torch.unique`` over
a packed int64 key (batch, then each axis in mixed radix), so they come out sorted lexicographically by
``(batch, x, y, z)``; the inverse map sends every point to its voxel so that voxel predictions map back
to points as ``pred[inverse]``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import torch

from geomask.errors import UsageError

__all__ = ["Voxelization", "quantize", "voxelize", "voxel_majority"]

_REDUCE = ("mean", "first", "random")


class Voxelization(NamedTuple):
    """Result of :func:`voxelize`.

    Attributes:
        coords: ``[V, 1 + D]`` int64 voxel coordinates, batch index first, sorted by ``(batch, x, ...)``.
        inverse: ``[N]`` int64 voxel of each point (``coords[inverse]`` are the points' coordinates).
        counts: ``[V]`` int64 points per voxel.
        index: ``[V]`` int64 one representative point per voxel: the first (lowest index) for
            ``"first"`` and ``"mean"``, a uniformly drawn one for ``"random"``.
        features: ``[V, C]`` reduced features (mean, or those of ``index``), or ``None`` without features.
    """

    coords: torch.Tensor
    inverse: torch.Tensor
    counts: torch.Tensor
    index: torch.Tensor
    features: torch.Tensor | None


def quantize(points: torch.Tensor | np.ndarray, voxel_size: float | Sequence[float]) -> torch.Tensor:
    """``floor(points / voxel_size)`` as int64.

    Shapes:
        points ``[N, D]`` → ``[N, D]``.
    """
    pts = torch.as_tensor(points)
    if pts.ndim != 2:
        raise ValueError(f"points must be [N, D], got shape {tuple(pts.shape)}")
    size = torch.as_tensor(voxel_size, dtype=torch.float64)
    if (size <= 0).any() or not torch.isfinite(size).all():
        raise UsageError(f"voxel_size must be positive and finite, got {voxel_size}")
    q = torch.floor(pts.to(torch.float64) / size)
    if not torch.isfinite(q).all():
        raise ValueError("points have NaN or infinite coordinates")
    return q.to(torch.int64)


def _unique_rows(rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Unique rows of an int64 ``[N, K]`` matrix via one packed key (rows sorted lexicographically)."""
    lo = rows.min(dim=0).values
    span = rows.max(dim=0).values - lo + 1
    bits = [int(s).bit_length() for s in span.tolist()]
    if sum(bits) > 62:  # cannot pack: fall back to the row-wise unique
        return torch.unique(rows, dim=0, return_inverse=True, return_counts=True)
    key = torch.zeros(len(rows), dtype=torch.int64)
    for j in range(rows.shape[1]):  # loop over the K (<= 5) columns, not over points
        key = (key << bits[j]) | (rows[:, j] - lo[j])
    ukey, inverse, counts = torch.unique(key, sorted=True, return_inverse=True, return_counts=True)
    out = torch.empty(len(ukey), rows.shape[1], dtype=torch.int64)
    for j in reversed(range(rows.shape[1])):
        out[:, j] = (ukey & ((1 << bits[j]) - 1)) + lo[j]
        ukey = ukey >> bits[j]
    return out, inverse, counts


def voxelize(
    points: torch.Tensor | np.ndarray,
    voxel_size: float | Sequence[float],
    batch: torch.Tensor | np.ndarray | None = None,
    features: torch.Tensor | np.ndarray | None = None,
    reduce: str = "mean",
    generator: torch.Generator | None = None,
) -> Voxelization:
    """Voxelize a batch of point clouds.

    .. math::
        c_i = \\lfloor p_i / s \\rfloor, \\qquad
        f_v = \\frac{1}{|\\{i : c_i = v\\}|} \\sum_{i : c_i = v} f_i \\quad (\\text{reduce} = \\text{mean})

    Args:
        points: ``[N, D]`` coordinates.
        voxel_size: edge length ``s`` (one value, or one per axis).
        batch: ``[N]`` cloud index of each point (all zero when ``None``).
        features: ``[N, C]`` per-point features to reduce per voxel (``None``: only the maps).
        reduce: ``"mean"`` averages features; ``"first"`` keeps the lowest-index point's; ``"random"``
            keeps a uniformly drawn point's (drawn with ``generator``).
        generator: the ``torch.Generator`` for ``"random"``.

    Returns:
        :class:`Voxelization` ``(coords, inverse, counts, index, features)``.

    Shapes:
        points ``[N, D]``, batch ``[N]``, features ``[N, C]`` → coords ``[V, 1 + D]``, inverse ``[N]``,
        counts ``[V]``, index ``[V]``, features ``[V, C]``.
    """
    if reduce not in _REDUCE:
        raise ValueError(f"reduce must be one of {_REDUCE}, got {reduce!r}")
    q = quantize(points, voxel_size)
    n = len(q)
    if batch is None:
        b = torch.zeros(n, dtype=torch.int64)
    else:
        b = torch.as_tensor(batch).to(torch.int64).reshape(-1)
        if len(b) != n:
            raise ValueError(f"batch has {len(b)} entries for {n} points")
    feats = None if features is None else torch.as_tensor(features)
    if feats is not None and len(feats) != n:
        raise ValueError(f"features have {len(feats)} rows for {n} points")
    if n == 0:
        empty = torch.zeros(0, dtype=torch.int64)
        return Voxelization(
            torch.zeros(0, 1 + q.shape[1], dtype=torch.int64),
            empty,
            empty,
            empty,
            None if feats is None else feats[:0],
        )
    coords, inverse, counts = _unique_rows(torch.cat([b[:, None], q], dim=1))
    v = len(coords)
    if reduce == "random":
        perm = torch.randperm(n, generator=generator)
        order = perm[torch.sort(inverse[perm], stable=True).indices]
    else:
        order = torch.sort(inverse, stable=True).indices
    starts = torch.cumsum(counts, 0) - counts
    index = order[starts]
    out = None
    if feats is not None:
        if reduce == "mean":
            acc = feats.to(torch.float64 if feats.dtype == torch.float64 else torch.float32)
            total = torch.zeros((v, *acc.shape[1:]), dtype=acc.dtype).index_add_(0, inverse, acc)
            out = (total / counts.reshape(-1, *([1] * (acc.ndim - 1))).to(acc.dtype)).to(
                feats.dtype if feats.is_floating_point() else acc.dtype
            )
        else:
            out = feats[index]
    return Voxelization(coords, inverse, counts, index, out)


def voxel_majority(
    labels: torch.Tensor | np.ndarray, inverse: torch.Tensor, num_voxels: int, ignore_index: int = -1
) -> torch.Tensor:
    """The most frequent label of each voxel, ignoring ``ignore_index`` unless a voxel has nothing else.

    Ties go to the smaller label.

    Shapes:
        labels ``[N]``, inverse ``[N]`` → ``[V]`` int64.
    """
    lab = torch.as_tensor(labels).to(torch.int64).reshape(-1)
    inv = torch.as_tensor(inverse).to(torch.int64)
    out = torch.full((num_voxels,), ignore_index, dtype=torch.int64)
    valid = lab != ignore_index
    if not valid.any():
        return out
    pairs, pair_counts = _unique_rows(torch.stack([inv[valid], lab[valid]], dim=1))[::2]
    # sort by (voxel asc, count desc, label asc): the first row of each voxel wins
    order = torch.argsort(pairs[:, 1], stable=True)
    order = order[torch.argsort(-pair_counts[order], stable=True)]
    order = order[torch.argsort(pairs[order, 0], stable=True)]
    vox = pairs[order, 0]
    first = torch.ones(len(vox), dtype=torch.bool)
    first[1:] = vox[1:] != vox[:-1]
    out[vox[first]] = pairs[order[first], 1]
    return out
