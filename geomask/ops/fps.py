"""Batched farthest point sampling (FPS).

Greedy FPS picks a start point, then repeatedly the point farthest from everything picked so far:

.. math::
    s_{i+1} = \\arg\\max_{p} \\min_{j \\le i} \\lVert \\mathbf{x}_p - \\mathbf{x}_{s_j} \\rVert^2

The loop over the ``S`` samples is inherently sequential; each step is one pass over the ``N`` points of
every cloud.  Two interchangeable backends compute the same indices:

* ``"torch"``: one vectorised step over ``[B, N]`` per sample (any device, any float dtype);
* ``"numba"``: a compiled kernel, parallel over the batch, on the k-d buckets of
  :mod:`geomask.ops.kdbuckets` (CPU only, the default there).  Each bucket keeps the largest running
  distance of its points; a new sample revisits only the buckets whose bounding box is closer to it than
  that maximum (the others cannot change), and the argmax runs over the bucket maxima.  The result is
  exactly that of the plain algorithm, with far fewer distance evaluations once samples are dense.

Ties in the argmax go to the lowest index in both backends (as ``torch.argmax``).
"""

from __future__ import annotations

import numba
import numpy as np
import torch
from torch import Tensor

from geomask.ops.kdbuckets import KDBuckets, build_buckets

__all__ = ["buckets_of", "farthest_point_sampling", "fps_buckets"]

_LEAF = 32  # points per k-d bucket

_BACKENDS = ("auto", "torch", "numba")


@numba.njit(cache=True, parallel=True)
def _fps_kernel(xyz, order, inverse, bounds, lo, hi, start, num_samples, out):  # pragma: no cover
    b_size, n = xyz.shape[0], xyz.shape[2]
    k_total = bounds.shape[0] - 1
    for b in numba.prange(b_size):
        x = xyz[b, 0]
        y = xyz[b, 1]
        z = xyz[b, 2]
        org = order[b]
        dist = np.full(n, np.inf, dtype=xyz.dtype)
        bmax = np.full(k_total, np.inf, dtype=xyz.dtype)
        barg = np.zeros(k_total, dtype=np.int64)
        cur = inverse[b, start[b]]
        for i in range(num_samples):
            out[b, i] = org[cur]
            cx, cy, cz = x[cur], y[cur], z[cur]
            g_best = -1.0
            g_pos = 0
            for k in range(k_total):
                # squared distance from the centre to the bucket's box: a lower bound for its points
                gx = max(lo[b, k, 0] - cx, cx - hi[b, k, 0], 0.0)
                gy = max(lo[b, k, 1] - cy, cy - hi[b, k, 1], 0.0)
                gz = max(lo[b, k, 2] - cz, cz - hi[b, k, 2], 0.0)
                if gx * gx + gy * gy + gz * gz < bmax[k]:
                    m = -1.0
                    mp = bounds[k]
                    for j in range(bounds[k], bounds[k + 1]):
                        dx = x[j] - cx
                        dy = y[j] - cy
                        dz = z[j] - cz
                        d = dx * dx + dy * dy + dz * dz
                        if d < dist[j]:
                            dist[j] = d
                        else:
                            d = dist[j]
                        if d > m or (d == m and org[j] < org[mp]):
                            m = d
                            mp = j
                    bmax[k] = m
                    barg[k] = mp
                if bmax[k] > g_best or (bmax[k] == g_best and org[barg[k]] < org[g_pos]):
                    g_best = bmax[k]
                    g_pos = barg[k]
            cur = g_pos


def _fps_torch(pos: Tensor, start: Tensor, num_samples: int) -> Tensor:
    b, n, _ = pos.shape
    out = torch.empty(b, num_samples, dtype=torch.long, device=pos.device)
    dist = torch.full((b, n), float("inf"), dtype=pos.dtype, device=pos.device)
    rows = torch.arange(b, device=pos.device)
    cur = start
    for i in range(num_samples):
        out[:, i] = cur
        diff = pos - pos[rows, cur].unsqueeze(1)
        torch.minimum(dist, diff.mul_(diff).sum(-1), out=dist)
        cur = dist.argmax(dim=1)
    return out


def farthest_point_sampling(
    pos: Tensor,
    num_samples: int,
    start: Tensor | int | None = None,
    generator: torch.Generator | None = None,
    backend: str = "auto",
) -> Tensor:
    """Farthest point sampling of every cloud of a batch.

    Args:
        pos: ``[B, N, 3]`` point coordinates (float).
        num_samples: S, at most N.
        start: the first index of every cloud: an int, a ``[B]`` int64 tensor, or ``None`` for a uniform
            random start drawn from ``generator`` (index 0 when ``generator`` is ``None`` too).
        generator: source of the random start indices.
        backend: ``"torch"``, ``"numba"`` (CPU tensors only) or ``"auto"`` (numba on CPU, torch elsewhere).

    Returns:
        ``[B, S]`` int64 indices into ``N``; column 0 is the start.

    Shapes:
        pos ``[B, N, 3]`` → ``[B, S]``.
    """
    if pos.dim() != 3 or pos.size(-1) != 3:
        raise ValueError(f"pos must be [B, N, 3], got {tuple(pos.shape)}")
    if not pos.is_floating_point():
        raise ValueError(f"pos must be floating point, got {pos.dtype}")
    b, n, _ = pos.shape
    if not 0 <= num_samples <= n:
        raise ValueError(f"num_samples must be in [0, N={n}], got {num_samples}")
    if backend not in _BACKENDS:
        raise ValueError(f"unknown FPS backend {backend!r}; valid: {', '.join(_BACKENDS)}")
    if start is None:
        if generator is None:
            start_t = torch.zeros(b, dtype=torch.long)
        else:
            start_t = torch.randint(n, (b,), generator=generator, device=generator.device)
    elif isinstance(start, int):
        start_t = torch.full((b,), start, dtype=torch.long)
    else:
        start_t = start.long().reshape(-1)
        if start_t.numel() != b:
            raise ValueError(f"start must have B={b} entries, got {start_t.numel()}")
    if start_t.numel() and (int(start_t.min()) < 0 or int(start_t.max()) >= n):
        raise ValueError(f"start indices must lie in [0, N={n})")
    if num_samples == 0 or b == 0:
        return torch.empty(b, num_samples, dtype=torch.long, device=pos.device)
    if backend == "numba" and pos.device.type != "cpu":
        raise ValueError("the numba FPS backend needs CPU tensors")
    if backend == "torch" or (backend == "auto" and pos.device.type != "cpu"):
        return _fps_torch(pos.detach(), start_t.to(pos.device), num_samples)
    return torch.from_numpy(fps_buckets(buckets_of(pos), start_t.cpu().numpy(), num_samples))


def buckets_of(pos: Tensor, leaf_size: int = _LEAF) -> KDBuckets:
    """The :class:`~geomask.ops.kdbuckets.KDBuckets` of a CPU ``[B, N, 3]`` tensor (float32 or float64)."""
    p = pos.detach()
    if p.dtype not in (torch.float32, torch.float64):
        p = p.float()
    return build_buckets(p.cpu().numpy(), leaf_size)


def fps_buckets(buckets: KDBuckets, start: np.ndarray, num_samples: int) -> np.ndarray:
    """FPS on prebuilt buckets (reusable by a following kNN): ``[B]`` start indices → ``[B, S]`` int64."""
    b = buckets.xyz.shape[0]
    out = np.empty((b, num_samples), dtype=np.int64)
    start = np.ascontiguousarray(start, dtype=np.int64)
    _fps_kernel(
        buckets.xyz, buckets.order, buckets.inverse, buckets.bounds, buckets.lo, buckets.hi, start, num_samples, out
    )
    return out
