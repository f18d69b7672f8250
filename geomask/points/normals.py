"""Surface normals of a point cloud: PCA over each point's k nearest neighbours.

.. math::
    C_i = \\frac{1}{k} \\sum_{j \\in \\mathcal{N}_k(i)} (p_j - \\bar p_i)(p_j - \\bar p_i)^\\top, \\qquad
    n_i = \\text{eigenvector of } C_i \\text{ with the smallest eigenvalue}

oriented so that ``n_i · (viewpoint - p_i) >= 0``.  open3d computes it when installed (the ``scans``
extra); the torch fallback finds neighbours by blockwise exact distances (O(N^2) time, O(block·N) memory),
fine up to some 10^5 points.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

__all__ = ["estimate_normals", "knn"]

_BACKENDS = ("auto", "open3d", "torch")


def knn(points: torch.Tensor, k: int, block: int = 2048) -> torch.Tensor:
    """Indices of the ``k`` nearest neighbours of every point (itself included), exact, blockwise.

    Shapes:
        points ``[N, D]`` → ``[N, k]`` int64.
    """
    n = len(points)
    if not 0 < k <= n:
        raise ValueError(f"k must be in 1..{n}, got {k}")
    out = torch.empty(n, k, dtype=torch.int64)
    sq = points.pow(2).sum(1)
    for s in range(0, n, block):  # blocks of queries, each one batched distance matrix
        q = points[s : s + block]
        d = sq[s : s + block, None] - 2 * q @ points.T + sq[None, :]
        out[s : s + block] = torch.topk(d, k, dim=1, largest=False).indices
    return out


def _pca_normals(points: torch.Tensor, k: int) -> torch.Tensor:
    nbr = points[knn(points, k)]  # [N, k, 3]
    centred = nbr - nbr.mean(1, keepdim=True)
    cov = centred.transpose(1, 2) @ centred / k
    _, vecs = torch.linalg.eigh(cov)  # ascending eigenvalues
    return vecs[:, :, 0]


def _open3d_normals(points: np.ndarray, k: int) -> np.ndarray:
    import open3d as o3d

    cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(points.astype(np.float64)))
    cloud.estimate_normals(o3d.geometry.KDTreeSearchParamKNN(knn=k))
    return np.asarray(cloud.normals)


def estimate_normals(
    points: np.ndarray | torch.Tensor,
    k: int = 16,
    viewpoint: Sequence[float] = (0.0, 0.0, 0.0),
    backend: str = "auto",
) -> np.ndarray:
    """Unit normals by PCA over k nearest neighbours, oriented towards ``viewpoint``.

    Args:
        points: ``[N, 3]`` coordinates.
        k: neighbours per point (itself included), at least 3.
        viewpoint: normals point to this side (a scanner position; the origin for LiDAR frames).
        backend: ``"open3d"``, ``"torch"``, or ``"auto"`` (open3d when it imports, else torch).

    Returns:
        ``[N, 3]`` float32 unit normals.
    """
    if backend not in _BACKENDS:
        raise ValueError(f"backend must be one of {_BACKENDS}, got {backend!r}")
    pts = np.asarray(points.detach().cpu() if isinstance(points, torch.Tensor) else points, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] != 3:
        raise ValueError(f"points must be [N, 3], got shape {pts.shape}")
    if k < 3 or k > len(pts):
        raise ValueError(f"k must be in 3..{len(pts)} (number of points), got {k}")
    normals = None
    if backend in ("auto", "open3d"):
        try:
            normals = _open3d_normals(pts, k)
        except ImportError:
            if backend == "open3d":
                raise
    if normals is None:
        t = torch.from_numpy(pts - pts.mean(0)).to(torch.float32)
        normals = _pca_normals(t, k).double().numpy()
    normals = normals / np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)
    flip = ((np.asarray(viewpoint, dtype=np.float64)[None] - pts) * normals).sum(1) < 0
    normals[flip] *= -1
    return normals.astype(np.float32)
