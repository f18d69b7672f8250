from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from geomask.sparse import (
    SparseAvgPool,
    SparseBatchNorm,
    SparseInstanceNorm,
    SparseLayerNorm,
    SparseMaxPool,
    SparseTensor,
    global_pool,
    sparse_collate,
)


def _sites(gen: torch.Generator) -> SparseTensor:
    c0 = torch.randint(0, 8, (40, 3), generator=gen).unique(dim=0)
    c1 = torch.randint(0, 8, (25, 3), generator=gen).unique(dim=0)
    f0 = torch.randn(len(c0), 3, generator=gen, dtype=torch.float64) * 2 + 1
    f1 = torch.randn(len(c1), 3, generator=gen, dtype=torch.float64) - 3
    return sparse_collate([c0, c1], [f0, f1])


def test_batch_norm_uses_active_sites_only():
    x = _sites(torch.Generator().manual_seed(0))
    y = SparseBatchNorm(3).double().train()(x).feats
    # over the active sites: zero mean, unit (biased) variance; a dense grid's zeros would shift both
    torch.testing.assert_close(y.mean(0), torch.zeros(3, dtype=torch.float64), atol=1e-9, rtol=0)
    torch.testing.assert_close(y.var(0, unbiased=False), torch.ones(3, dtype=torch.float64), atol=1e-4, rtol=0)


def test_layer_and_instance_norm():
    x = _sites(torch.Generator().manual_seed(1))
    y = SparseLayerNorm(3).double()(x).feats
    torch.testing.assert_close(y.mean(1), torch.zeros(len(x), dtype=torch.float64), atol=1e-9, rtol=0)
    z = SparseInstanceNorm(3).double()(x).feats
    for b in (0, 1):
        rows = z[x.coords[:, 0] == b]
        torch.testing.assert_close(rows.mean(0), torch.zeros(3, dtype=torch.float64), atol=1e-9, rtol=0)
        torch.testing.assert_close(rows.var(0, unbiased=False), torch.ones(3, dtype=torch.float64), atol=1e-4, rtol=0)


@pytest.mark.parametrize("dim", [2, 3])
def test_max_pool_matches_dense_on_full_grid(dim):
    gen = torch.Generator().manual_seed(dim)
    x = torch.randn(2, 3, *(6,) * dim, generator=gen)
    y = SparseMaxPool(2, dim=dim)(SparseTensor.from_dense(x))
    ref = (F.max_pool2d if dim == 2 else F.max_pool3d)(x, 2)
    assert y.stride == (2,) * dim
    torch.testing.assert_close(y.to_dense(), ref)
    avg = SparseAvgPool(2, dim=dim)(SparseTensor.from_dense(x))
    torch.testing.assert_close(avg.to_dense(), (F.avg_pool2d if dim == 2 else F.avg_pool3d)(x, 2))


def test_pooling_on_sparse_sites_ignores_empty_space():
    coords = torch.tensor([[0, 0, 0, 0], [0, 1, 1, 1], [0, 2, 0, 0], [1, 0, 0, 1]])
    feats = torch.tensor([[-1.0], [-3.0], [5.0], [-2.0]])
    st = SparseTensor(coords, feats)
    mx = SparseMaxPool(2)(st)
    got = {tuple(c): v for c, v in zip(mx.coords.tolist(), mx.feats[:, 0].tolist())}
    assert got == {(0, 0, 0, 0): -1.0, (0, 2, 0, 0): 5.0, (1, 0, 0, 0): -2.0}  # a dense max would see 0
    av = SparseAvgPool(2)(st)
    assert sorted(av.feats[:, 0].tolist()) == [-2.0, -2.0, 5.0]
    torch.testing.assert_close(global_pool(st, "max"), torch.tensor([[5.0], [-2.0]]))
    torch.testing.assert_close(global_pool(st, "avg"), torch.tensor([[1 / 3], [-2.0]]))
    torch.testing.assert_close(global_pool(st, "sum"), torch.tensor([[1.0], [-2.0]]))
    with pytest.raises(ValueError, match="mode"):
        global_pool(st, "median")
