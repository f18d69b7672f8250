"""Normals by PCA over kNN: torch fallback on known surfaces, and against open3d where installed."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from geomask.points.normals import estimate_normals, knn


def plane(n=400, seed=0):
    rng = np.random.default_rng(seed)
    pts = np.zeros((n, 3))
    pts[:, :2] = rng.uniform(-1, 1, size=(n, 2))
    pts[:, 2] = 2.0
    return pts


def test_plane_normals_point_to_viewpoint():
    n = estimate_normals(plane(), k=10, backend="torch")
    np.testing.assert_allclose(n, np.tile([0, 0, -1.0], (400, 1)), atol=1e-5)  # towards the origin below
    n = estimate_normals(plane(), k=10, viewpoint=(0, 0, 5), backend="torch")
    np.testing.assert_allclose(n[:, 2], 1.0, atol=1e-5)


def test_sphere_normals_are_radial():
    rng = np.random.default_rng(1)
    pts = rng.normal(size=(2000, 3))
    pts /= np.linalg.norm(pts, axis=1, keepdims=True)
    n = estimate_normals(pts, k=12, viewpoint=(0, 0, 0), backend="torch")
    cos = (n * -pts).sum(1)  # oriented towards the centre
    assert np.percentile(cos, 5) > 0.98


def test_knn_exact():
    pts = torch.tensor([[0.0, 0], [1, 0], [3, 0], [3.5, 0]])
    idx = knn(pts, 2, block=3)
    assert idx[:, 0].tolist() == [0, 1, 2, 3]
    assert idx[:, 1].tolist() == [1, 0, 3, 2]


def test_open3d_agrees_with_torch():
    pytest.importorskip("open3d", reason="open3d (the scans extra) is not installed")
    rng = np.random.default_rng(2)
    pts = rng.normal(size=(1500, 3)) * [3, 2, 0.05]  # a noisy slab
    a = estimate_normals(pts, k=16, backend="open3d")
    b = estimate_normals(pts, k=16, backend="torch")
    assert np.median((a * b).sum(1)) > 0.999


def test_bad_arguments():
    with pytest.raises(ValueError, match="k must"):
        estimate_normals(plane(5), k=8)
    with pytest.raises(ValueError, match="backend"):
        estimate_normals(plane(), backend="pcl")
