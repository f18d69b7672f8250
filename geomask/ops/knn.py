"""Batched exact k-nearest neighbours between query points and reference clouds.

For every query ``q`` of cloud ``b`` the ``k`` reference points of the same cloud with the smallest squared
distance, ascending.  Two backends:

* ``"torch"``: blocked squared distances ``|q|^2 + |r|^2 - 2 q r^T`` (one batched matmul per block of
  queries, capping memory at ``block_bytes``) followed by ``topk``; the returned distances are recomputed
  exactly for the chosen indices.  Any device.
* ``"numba"``: the k-d buckets of :mod:`geomask.ops.kdbuckets` and a bounded max-heap per query: buckets
  are scanned in increasing order of their box distance until the next box is farther than the current
  k-th distance.  Exact, ordered by ``(distance, index)``; CPU only, the default there.
"""

from __future__ import annotations

import numba
import numpy as np
import torch
from torch import Tensor

from geomask.ops.kdbuckets import KDBuckets, build_buckets

__all__ = ["knn", "knn_buckets"]

_BACKENDS = ("auto", "torch", "numba")
_LEAF = 32


@numba.njit(cache=True, inline="always")
def _less(d1, i1, d2, i2):  # pragma: no cover
    return d1 < d2 or (d1 == d2 and i1 < i2)


@numba.njit(cache=True)
def _sift_down(hd, hi, size):  # pragma: no cover
    """Restore the max-heap on ``(hd, hi)`` after its root changed."""
    p = 0
    while True:
        c = 2 * p + 1
        if c >= size:
            return
        if c + 1 < size and _less(hd[c], hi[c], hd[c + 1], hi[c + 1]):
            c += 1
        if _less(hd[p], hi[p], hd[c], hi[c]):
            hd[p], hd[c] = hd[c], hd[p]
            hi[p], hi[c] = hi[c], hi[p]
            p = c
        else:
            return


@numba.njit(cache=True)
def _sift_up(hd, hi, p):  # pragma: no cover
    while p > 0:
        q = (p - 1) // 2
        if _less(hd[q], hi[q], hd[p], hi[p]):
            hd[p], hd[q] = hd[q], hd[p]
            hi[p], hi[q] = hi[q], hi[p]
            p = q
        else:
            return


@numba.njit(cache=True)
def _scan(x, y, z, org, a, e, cx, cy, cz, hd, hi, size, k):  # pragma: no cover
    for j in range(a, e):
        dx = x[j] - cx
        dy = y[j] - cy
        dz = z[j] - cz
        d = dx * dx + dy * dy + dz * dz
        oj = org[j]
        if size < k:
            hd[size] = d
            hi[size] = oj
            _sift_up(hd, hi, size)
            size += 1
        elif _less(d, oj, hd[0], hi[0]):
            hd[0] = d
            hi[0] = oj
            _sift_down(hd, hi, size)
    return size


@numba.njit(cache=True, parallel=True)
def _knn_kernel(query, xyz, order, bounds, lo, hi, k, out_idx, out_d2):  # pragma: no cover
    b_size, m = query.shape[0], query.shape[1]
    k_total = bounds.shape[0] - 1
    for t in numba.prange(b_size * m):
        b = t // m
        q = t % m
        cx, cy, cz = query[b, q, 0], query[b, q, 1], query[b, q, 2]
        x = xyz[b, 0]
        y = xyz[b, 1]
        z = xyz[b, 2]
        org = order[b]
        lb = np.empty(k_total, dtype=xyz.dtype)
        for c in range(k_total):
            gx = max(lo[b, c, 0] - cx, cx - hi[b, c, 0], 0.0)
            gy = max(lo[b, c, 1] - cy, cy - hi[b, c, 1], 0.0)
            gz = max(lo[b, c, 2] - cz, cz - hi[b, c, 2], 0.0)
            lb[c] = gx * gx + gy * gy + gz * gz
        hd = np.empty(k, dtype=xyz.dtype)
        hix = np.empty(k, dtype=np.int64)
        size = 0
        for _ in range(k_total):
            # visit buckets nearest box first; stop once no box is closer than the k-th distance
            first = 0
            for c in range(1, k_total):
                if lb[c] < lb[first]:
                    first = c
            if lb[first] == np.inf or (size == k and lb[first] > hd[0]):
                break
            lb[first] = np.inf
            size = _scan(x, y, z, org, bounds[first], bounds[first + 1], cx, cy, cz, hd, hix, size, k)
        # heap → ascending (distance, index)
        for s in range(size - 1, -1, -1):
            out_d2[b, q, s] = hd[0]
            out_idx[b, q, s] = hix[0]
            hd[0] = hd[s]
            hix[0] = hix[s]
            _sift_down(hd, hix, s)


def knn_buckets(query: np.ndarray, buckets: KDBuckets, k: int) -> tuple[np.ndarray, np.ndarray]:
    """kNN of ``query [B, M, 3]`` in prebuilt buckets → ``(idx [B, M, k] int64, d2 [B, M, k])``."""
    b, m = query.shape[0], query.shape[1]
    idx = np.empty((b, m, k), dtype=np.int64)
    d2 = np.empty((b, m, k), dtype=buckets.xyz.dtype)
    if b and m and k:
        q = np.ascontiguousarray(query, dtype=buckets.xyz.dtype)
        _knn_kernel(q, buckets.xyz, buckets.order, buckets.bounds, buckets.lo, buckets.hi, k, idx, d2)
    return idx, d2


def _knn_torch(query: Tensor, ref: Tensor, k: int, block_bytes: int) -> tuple[Tensor, Tensor]:
    b, m, _ = query.shape
    n = ref.size(1)
    rows = max(1, block_bytes // max(1, b * n * query.element_size()))
    r2 = ref.pow(2).sum(-1).unsqueeze(1)  # [B, 1, N]
    out = []
    for a in range(0, m, rows):
        q = query[:, a : a + rows]
        d2 = torch.baddbmm(r2 + q.pow(2).sum(-1, keepdim=True), q, ref.transpose(1, 2), alpha=-2.0)
        out.append(d2.topk(k, dim=-1, largest=False, sorted=True).indices)
    idx = torch.cat(out, dim=1)
    nb = torch.gather(ref.unsqueeze(1).expand(b, m, n, 3), 2, idx.unsqueeze(-1).expand(b, m, k, 3))
    diff = nb - query.unsqueeze(2)
    d2 = diff.mul_(diff).sum(-1)
    d2, o = d2.sort(dim=-1, stable=True)
    return torch.gather(idx, 2, o), d2


def knn(
    query: Tensor, ref: Tensor, k: int, backend: str = "auto", block_bytes: int = 64 << 20
) -> tuple[Tensor, Tensor]:
    """Exact k nearest neighbours of every query among the points of its own cloud.

    Args:
        query: ``[B, M, 3]`` query points.
        ref: ``[B, N, 3]`` reference points, ``k <= N``.
        k: neighbours per query.
        backend: ``"torch"``, ``"numba"`` (CPU only) or ``"auto"`` (numba on CPU, torch elsewhere).
        block_bytes: memory cap of one block of the torch backend's distance matrix.

    Returns:
        ``(idx, dist2)``: ``[B, M, k]`` int64 indices into ``N`` and their squared distances, ascending.

    Shapes:
        query ``[B, M, 3]``, ref ``[B, N, 3]`` → ``[B, M, k]``, ``[B, M, k]``.
    """
    if query.dim() != 3 or query.size(-1) != 3 or ref.dim() != 3 or ref.size(-1) != 3:
        raise ValueError(f"query and ref must be [B, *, 3], got {tuple(query.shape)} and {tuple(ref.shape)}")
    if query.size(0) != ref.size(0):
        raise ValueError(f"query and ref batch sizes differ: {query.size(0)} != {ref.size(0)}")
    if not 0 <= k <= ref.size(1):
        raise ValueError(f"k must be in [0, N={ref.size(1)}], got {k}")
    if backend not in _BACKENDS:
        raise ValueError(f"unknown kNN backend {backend!r}; valid: {', '.join(_BACKENDS)}")
    on_cpu = query.device.type == "cpu" and ref.device.type == "cpu"
    if backend == "numba" and not on_cpu:
        raise ValueError("the numba kNN backend needs CPU tensors")
    query, ref = query.detach(), ref.detach()
    if backend == "torch" or (backend == "auto" and not on_cpu):
        if k == 0 or query.size(1) == 0:
            shape = (query.size(0), query.size(1), k)
            return torch.empty(shape, dtype=torch.long, device=query.device), query.new_empty(shape)
        return _knn_torch(query, ref.to(query.dtype), k, block_bytes)
    dtype = ref.dtype if ref.dtype in (torch.float32, torch.float64) else torch.float32
    buckets = build_buckets(ref.to(dtype).numpy(), _LEAF)
    idx, d2 = knn_buckets(query.to(dtype).numpy(), buckets, k)
    return torch.from_numpy(idx), torch.from_numpy(d2)
