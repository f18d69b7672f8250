"""Voxelization against numpy.unique of the quantized coordinates, and the reductions."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from geomask.points.voxelize import quantize, voxel_majority, voxelize


def cloud(n=2000, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(n, 3)) * 2).astype(np.float32), rng.integers(0, 3, size=n)


@pytest.mark.parametrize("size", [0.1, 0.5, (0.2, 0.3, 1.0)])
def test_matches_numpy_unique(size):
    pts, batch = cloud()
    q = np.floor(pts.astype(np.float64) / np.asarray(size, dtype=np.float64)).astype(np.int64)
    keys = np.concatenate([batch[:, None], q], 1)
    uniq, inv, counts = np.unique(keys, axis=0, return_inverse=True, return_counts=True)
    vox = voxelize(pts, size, batch=batch)
    assert vox.coords.shape == (len(uniq), 4)
    np.testing.assert_array_equal(vox.coords.numpy(), uniq)  # lexicographic order, batch first
    np.testing.assert_array_equal(vox.counts.numpy(), counts)
    np.testing.assert_array_equal(vox.inverse.numpy(), inv.reshape(-1))
    np.testing.assert_array_equal(vox.coords[vox.inverse].numpy(), keys)


def test_wide_coordinates_fall_back_to_rowwise_unique():
    pts = np.array([[0, 0, 0], [1e12, -1e12, 5], [1e12, -1e12, 5], [-1e12, 3, 1e12]], dtype=np.float64)
    vox = voxelize(pts, 1.0)
    assert len(vox.coords) == 3
    np.testing.assert_array_equal(vox.counts.numpy(), [1, 1, 2])
    np.testing.assert_array_equal(vox.coords[vox.inverse, 1:].numpy(), np.floor(pts).astype(np.int64))


def test_reductions():
    pts = torch.tensor([[0.1, 0, 0], [0.2, 0, 0], [5.0, 0, 0], [0.3, 0, 0]])
    feats = torch.tensor([[1.0], [2.0], [7.0], [6.0]])
    mean = voxelize(pts, 1.0, features=feats, reduce="mean")
    np.testing.assert_allclose(mean.features.numpy(), [[3.0], [7.0]])
    first = voxelize(pts, 1.0, features=feats, reduce="first")
    np.testing.assert_array_equal(first.index.numpy(), [0, 2])
    np.testing.assert_array_equal(first.features.numpy(), [[1.0], [7.0]])
    picks = set()
    for seed in range(30):
        r = voxelize(pts, 1.0, features=feats, reduce="random", generator=torch.Generator().manual_seed(seed))
        assert r.index[1] == 2 and int(r.index[0]) in (0, 1, 3)
        picks.add(int(r.index[0]))
    assert picks == {0, 1, 3}
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    a = voxelize(pts, 1.0, reduce="random", generator=g1).index
    assert torch.equal(a, voxelize(pts, 1.0, reduce="random", generator=g2).index)


def test_negative_coordinates_floor():
    np.testing.assert_array_equal(quantize(np.array([[-0.1, 0.0, 0.99]]), 1.0).numpy(), [[-1, 0, 0]])


def test_bad_arguments():
    pts, _ = cloud(10)
    with pytest.raises(ValueError, match="reduce"):
        voxelize(pts, 0.1, reduce="max")
    with pytest.raises(ValueError, match="voxel_size"):
        voxelize(pts, 0.0)
    with pytest.raises(ValueError, match="batch"):
        voxelize(pts, 0.1, batch=np.zeros(3))
    bad = pts.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        voxelize(bad, 0.1)
    empty = voxelize(np.zeros((0, 3), np.float32), 0.1)
    assert empty.coords.shape == (0, 4) and len(empty.inverse) == 0


def test_voxel_majority():
    inverse = torch.tensor([0, 0, 0, 1, 1, 2, 2, 3])
    labels = torch.tensor([4, 4, 2, 7, -1, -1, -1, 3])
    np.testing.assert_array_equal(voxel_majority(labels, inverse, 4).numpy(), [4, 7, -1, 3])
    tie = voxel_majority(torch.tensor([5, 2]), torch.tensor([0, 0]), 1)
    assert tie.tolist() == [2]
