"""Balanced k-d buckets of point clouds: the spatial index under the CPU FPS and kNN kernels.

Every cloud of a batch is split ``depth`` times at the median of its widest axis (the axis of largest
extent of the segment), giving ``K = 2 ** depth`` contiguous buckets of ``N / K`` points.  Points are
stored reordered by bucket in structure-of-arrays form, with each bucket's axis-aligned bounding box.
A query ``c`` can then skip a whole bucket whenever the squared distance from ``c`` to its box,

.. math::
    \\mathrm{lb}(c, [\\mathbf{lo}, \\mathbf{hi}]) = \\sum_a \\max(lo_a - c_a,\\; c_a - hi_a,\\; 0)^2 ,

already rules every point of it out.  Because floating-point rounding is monotone, the computed
``lb`` never exceeds the computed distance of a point inside the box, so pruning is exact.

All clouds have the same ``N``, so the bucket boundaries ``bounds`` are shared by the batch.
"""

from __future__ import annotations

from typing import NamedTuple

import numba
import numpy as np

__all__ = ["KDBuckets", "build_buckets", "bucket_bounds"]


class KDBuckets(NamedTuple):
    """Points of a batch of clouds reordered into k-d buckets.

    Attributes:
        xyz: ``[B, 3, N]`` coordinates in bucket order (structure of arrays).
        order: ``[B, N]`` int64 original index of each reordered point.
        inverse: ``[B, N]`` int64 reordered position of each original index.
        bounds: ``[K + 1]`` int64 bucket ``k`` holds reordered positions ``bounds[k]:bounds[k+1]``.
        lo, hi: ``[B, K, 3]`` bounding box of every bucket.
    """

    xyz: np.ndarray
    order: np.ndarray
    inverse: np.ndarray
    bounds: np.ndarray
    lo: np.ndarray
    hi: np.ndarray


def bucket_bounds(n: int, depth: int) -> np.ndarray:
    """Boundaries of the ``2 ** depth`` buckets of ``n`` points (each split puts ``len // 2`` on the left)."""
    bounds = np.array([0, n], dtype=np.int64)
    for _ in range(depth):
        mid = bounds[:-1] + (bounds[1:] - bounds[:-1]) // 2
        bounds = np.sort(np.concatenate([bounds, mid]))
    return bounds


@numba.njit(cache=True)
def _select(perm, keys, lo, hi, kth):  # pragma: no cover
    """Quickselect on ``keys[lo:hi+1]`` (permuting ``perm`` alike): ``keys[kth]`` ends in sorted position,
    with no larger key before it and no smaller key after it."""
    while hi > lo:
        m = (lo + hi) // 2
        ka, kb, kc = keys[lo], keys[m], keys[hi]
        pv = max(min(ka, kb), min(max(ka, kb), kc))  # median of three
        i, j = lo, hi
        while i <= j:
            while keys[i] < pv:
                i += 1
            while keys[j] > pv:
                j -= 1
            if i <= j:
                keys[i], keys[j] = keys[j], keys[i]
                perm[i], perm[j] = perm[j], perm[i]
                i += 1
                j -= 1
        if kth <= j:
            hi = j
        elif kth >= i:
            lo = i
        else:
            return


@numba.njit(cache=True, parallel=True)
def _build(pos, depth, bounds, xyz, order, inverse, lo, hi):  # pragma: no cover
    b_size, n = pos.shape[0], pos.shape[1]
    k_total = bounds.shape[0] - 1
    for b in numba.prange(b_size):
        perm = np.arange(n)
        keys = np.empty(n, dtype=pos.dtype)
        for level in range(depth):
            step = k_total >> level  # leaf buckets per segment at this level
            for s in range(1 << level):
                a = bounds[s * step]
                e = bounds[(s + 1) * step]
                if e - a < 2:
                    continue
                best_axis = 0
                best_ext = -1.0
                for ax in range(3):
                    mn = np.inf
                    mx = -np.inf
                    for j in range(a, e):
                        v = pos[b, perm[j], ax]
                        mn = min(mn, v)
                        mx = max(mx, v)
                    if mx - mn > best_ext:
                        best_ext = mx - mn
                        best_axis = ax
                for j in range(a, e):
                    keys[j] = pos[b, perm[j], best_axis]
                _select(perm, keys, a, e - 1, a + (e - a) // 2)
        for j in range(n):
            p = perm[j]
            order[b, j] = p
            inverse[b, p] = j
            for ax in range(3):
                xyz[b, ax, j] = pos[b, p, ax]
        for k in range(k_total):
            for ax in range(3):
                mn = np.inf
                mx = -np.inf
                for j in range(bounds[k], bounds[k + 1]):
                    v = xyz[b, ax, j]
                    mn = min(mn, v)
                    mx = max(mx, v)
                lo[b, k, ax] = mn
                hi[b, k, ax] = mx


def build_buckets(pos: np.ndarray, leaf_size: int = 32) -> KDBuckets:
    """Split every cloud into balanced k-d buckets of about ``leaf_size`` points.

    Args:
        pos: ``[B, N, 3]`` float32 or float64 coordinates.
        leaf_size: target points per bucket; the depth is the largest with buckets of at least this size.

    Returns:
        The :class:`KDBuckets` (same float dtype as ``pos``).
    """
    if pos.ndim != 3 or pos.shape[-1] != 3:
        raise ValueError(f"pos must be [B, N, 3], got {pos.shape}")
    if leaf_size < 1:
        raise ValueError(f"leaf_size must be positive, got {leaf_size}")
    pos = np.ascontiguousarray(pos)
    b, n, _ = pos.shape
    depth = 0
    while n >> (depth + 1) >= leaf_size:
        depth += 1
    bounds = bucket_bounds(n, depth)
    k = bounds.shape[0] - 1
    xyz = np.empty((b, 3, n), dtype=pos.dtype)
    order = np.empty((b, n), dtype=np.int64)
    inverse = np.empty((b, n), dtype=np.int64)
    lo = np.empty((b, k, 3), dtype=pos.dtype)
    hi = np.empty((b, k, 3), dtype=pos.dtype)
    if b and n:
        _build(pos, depth, bounds, xyz, order, inverse, lo, hi)
    return KDBuckets(xyz, order, inverse, bounds, lo, hi)
