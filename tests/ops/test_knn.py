"""kNN: equality with brute force on both backends, distances, self neighbours, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from geomask.ops.knn import knn


def brute(q: np.ndarray, r: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    d = ((q[:, :, None, :] - r[:, None, :, :]) ** 2).sum(-1)
    idx = np.argsort(d, axis=-1, kind="stable")[..., :k]
    return idx, np.take_along_axis(d, idx, -1)


@pytest.mark.parametrize("backend", ["numba", "torch"])
@pytest.mark.parametrize(("m", "n", "k"), [(1, 1, 1), (17, 50, 5), (64, 1000, 32), (30, 40, 40)])
def test_equals_brute_force(backend, m, n, k):
    rng = np.random.default_rng(m * n + k)
    q = rng.standard_normal((2, m, 3))
    r = rng.standard_normal((2, n, 3))
    r[1] *= np.array([1.0, 1.0, 0.0])  # a flat cloud: degenerate boxes
    idx, d2 = knn(torch.from_numpy(q), torch.from_numpy(r), k, backend=backend)
    ref_idx, ref_d2 = brute(q, r, k)
    np.testing.assert_array_equal(idx.numpy(), ref_idx)
    np.testing.assert_allclose(d2.numpy(), ref_d2, rtol=1e-12, atol=1e-12)


def test_float32_cloud_queries_find_themselves():
    pos = torch.rand(3, 800, 3, generator=torch.Generator().manual_seed(0))
    idx, d2 = knn(pos[:, :100], pos, 8)
    assert torch.equal(idx[..., 0], torch.arange(100).expand(3, 100))
    assert (d2[..., 0] == 0).all() and (d2.diff(dim=-1) >= 0).all()


def test_bad_arguments():
    with pytest.raises(ValueError):
        knn(torch.rand(2, 5, 3), torch.rand(3, 5, 3), 2)
    with pytest.raises(ValueError):
        knn(torch.rand(2, 5, 3), torch.rand(2, 5, 3), 6)
