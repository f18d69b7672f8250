"""Point patches: farthest-point-sampled centres and their k nearest neighbours, re-centred.

The grouping of Point-BERT / Point-MAE: ``G`` centres by FPS, the ``K`` nearest points of each centre (the
centre itself included, at distance 0), expressed relative to their centre.  On CPU both steps share one
k-d bucket index (:mod:`geomask.ops.kdbuckets`), built once per batch.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor

from geomask.ops.fps import buckets_of, farthest_point_sampling, fps_buckets
from geomask.ops.knn import knn, knn_buckets

__all__ = ["PointPatches", "as_point_batch", "group_points"]


class PointPatches(NamedTuple):
    """Result of :func:`group_points`.

    Attributes:
        centers: ``[B, G, 3]`` patch centres (points of the cloud).
        neighborhood: ``[B, G, K, 3]`` the patches' points minus their centre, nearest first.
        index: ``[B, G, K]`` int64 indices of the patches' points in the cloud.
        center_index: ``[B, G]`` int64 indices of the centres.
    """

    centers: Tensor
    neighborhood: Tensor
    index: Tensor
    center_index: Tensor


def as_point_batch(batch: Any) -> Tensor:
    """The ``[B, N, 3]`` point tensor of a batch of equal-size clouds.

    Accepts a ``[B, N, 3]`` tensor, or an object with ``pos`` (``[B, N, 3]``, or ``[B * N, 3]`` with a
    ``batch`` vector of B equal-size clouds sorted by cloud, as a PyG ``Batch``).
    """
    if isinstance(batch, Tensor):
        pos = batch
    else:
        pos = getattr(batch, "pos", None)
        if pos is None:
            raise ValueError(f"expected a [B, N, 3] tensor or a batch with 'pos', got {type(batch).__name__}")
        if pos.dim() == 2:
            vec = getattr(batch, "batch", None)
            b = 1 if vec is None or vec.numel() == 0 else int(vec.max()) + 1
            if pos.size(0) % b:
                raise ValueError(f"clouds of a batch must have equal sizes ({pos.size(0)} points in {b} clouds)")
            pos = pos.reshape(b, pos.size(0) // b, pos.size(-1))
    if pos.dim() != 3 or pos.size(-1) != 3:
        raise ValueError(f"points must be [B, N, 3], got {tuple(pos.shape)}")
    return pos if pos.is_floating_point() else pos.float()


def group_points(
    pos: Tensor,
    num_groups: int,
    group_size: int,
    generator: torch.Generator | None = None,
    backend: str = "auto",
) -> PointPatches:
    """Split every cloud into ``G`` patches of ``K`` points.

    Args:
        pos: ``[B, N, 3]`` points.
        num_groups: G (FPS centres), at most N.
        group_size: K (neighbours per centre), at most N.
        generator: draws the FPS start of every cloud (index 0 when ``None``).
        backend: ``"auto"``, ``"numba"`` or ``"torch"`` (see :func:`~geomask.ops.fps.farthest_point_sampling`).

    Returns:
        The :class:`PointPatches`; gradients flow from ``neighborhood``/``centers`` back to ``pos``.
    """
    if pos.dim() != 3 or pos.size(-1) != 3:
        raise ValueError(f"pos must be [B, N, 3], got {tuple(pos.shape)}")
    b, n, _ = pos.shape
    if not 1 <= num_groups <= n or not 1 <= group_size <= n:
        raise ValueError(f"need 1 <= num_groups, group_size <= N={n}, got {num_groups}, {group_size}")
    if generator is None:
        start = torch.zeros(b, dtype=torch.long)
    else:
        start = torch.randint(n, (b,), generator=generator, device=generator.device).cpu()
    use_numba = backend == "numba" or (backend == "auto" and pos.device.type == "cpu")
    if use_numba:
        buckets = buckets_of(pos)
        cidx = fps_buckets(buckets, start.numpy(), num_groups)
        centers_np = np.take_along_axis(_as_numpy(pos, buckets.xyz.dtype), cidx[..., None], axis=1)
        idx_np, _ = knn_buckets(centers_np, buckets, group_size)
        center_index = torch.from_numpy(cidx).to(pos.device)
        index = torch.from_numpy(idx_np).to(pos.device)
    else:
        center_index = farthest_point_sampling(pos, num_groups, start=start.to(pos.device), backend=backend)
        ctr = torch.gather(pos.detach(), 1, center_index.unsqueeze(-1).expand(b, num_groups, 3))
        index, _ = knn(ctr, pos.detach(), group_size, backend=backend)
    centers = torch.gather(pos, 1, center_index.unsqueeze(-1).expand(b, num_groups, 3))
    flat = index.reshape(b, num_groups * group_size, 1).expand(-1, -1, 3)
    pts = torch.gather(pos, 1, flat).reshape(b, num_groups, group_size, 3)
    return PointPatches(centers, pts - centers.unsqueeze(2), index, center_index)


def _as_numpy(pos: Tensor, dtype: np.dtype) -> np.ndarray:
    """``pos`` as a contiguous NumPy array of the buckets' dtype."""
    return np.ascontiguousarray(pos.detach().cpu().numpy(), dtype=dtype)
