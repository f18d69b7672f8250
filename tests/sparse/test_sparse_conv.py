from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F

from geomask.sparse import SparseConv, SparseTensor, sparse_collate, sparse_conv

DENSE = {1: (F.conv1d, F.conv_transpose1d), 2: (F.conv2d, F.conv_transpose2d), 3: (F.conv3d, F.conv_transpose3d)}


def _dense_weight(conv: SparseConv, transposed: bool = False) -> torch.Tensor:
    """[K, C_in, C_out] → torch's [C_out, C_in, *k] (or [C_in, C_out, *k] for a transposed conv)."""
    w = conv.weight.reshape(*conv.kernel_size, conv.in_channels, conv.out_channels)
    d = conv.dim
    return w.permute(d, d + 1, *range(d)) if transposed else w.permute(d + 1, d, *range(d))


def _grid(dim: int, gen: torch.Generator, channels: int = 3) -> torch.Tensor:
    shape = {1: (10,), 2: (6, 8), 3: (4, 6, 4)}[dim]
    return torch.randn(2, channels, *shape, generator=gen, dtype=torch.float64)


@pytest.mark.parametrize("dim", [1, 2, 3])
@pytest.mark.parametrize(("kernel", "dilation"), [(3, 1), (3, 2), (5, 1)])
def test_submanifold_equals_dense_on_full_grid(dim, kernel, dilation):
    gen = torch.Generator().manual_seed(dim * 10 + kernel)
    x = _grid(dim, gen)
    conv = SparseConv(3, 4, kernel, dilation=dilation, dim=dim).double()
    y = conv(SparseTensor.from_dense(x))
    ref = DENSE[dim][0](x, _dense_weight(conv), conv.bias, padding=dilation * (kernel // 2), dilation=dilation)
    assert y.stride == (1,) * dim
    torch.testing.assert_close(y.to_dense(), ref)


@pytest.mark.parametrize("dim", [1, 2, 3])
@pytest.mark.parametrize("kernel", [2, 3])
def test_strided_equals_dense_and_transposed_inverts(dim, kernel):
    gen = torch.Generator().manual_seed(dim + kernel)
    x = _grid(dim, gen)
    st = SparseTensor.from_dense(x)
    down = SparseConv(3, 5, kernel, stride=2, dim=dim).double()
    y = down(st)
    pad = kernel // 2 if kernel % 2 else 0
    ref = DENSE[dim][0](x, _dense_weight(down), down.bias, stride=2, padding=pad)
    assert y.stride == (2,) * dim
    assert bool((y.coords[:, 1:] % 2 == 0).all())
    torch.testing.assert_close(y.to_dense(), ref)
    up = SparseConv(5, 3, kernel, stride=2, transposed=True, dim=dim).double()
    z = up(y)
    assert z.stride == (1,) * dim and torch.equal(z.coords, st.coords)
    ref_up = DENSE[dim][1](y.to_dense(), _dense_weight(up, True), up.bias, stride=2, padding=pad, output_padding=pad)
    torch.testing.assert_close(z.to_dense(), ref_up)


def _random_sites(gen: torch.Generator, n: int, dim: int, extent: int) -> torch.Tensor:
    c = torch.randint(-extent, extent, (n, dim), generator=gen)
    b = torch.randint(0, 2, (n, 1), generator=gen)
    return torch.cat([b, c], 1).unique(dim=0)


@pytest.mark.parametrize(("dim", "kernel", "dilation"), [(3, 3, 1), (3, 3, 2), (2, 5, 1), (4, 3, 1), (3, 4, 1)])
def test_sparse_map_matches_brute_force(dim, kernel, dilation):
    gen = torch.Generator().manual_seed(7)
    coords = _random_sites(gen, 150, dim, 4)
    coords = coords[torch.randperm(len(coords), generator=gen)]  # unsorted input order
    st = SparseTensor(coords, torch.zeros(len(coords), 1))
    if kernel % 2 == 0:
        from geomask.sparse.kernel_map import CoordinateCache

        kmap = CoordinateCache().downsample(st.coords, st.stride, (kernel,) * dim, (1,) * dim, (dilation,) * dim)
    else:
        kmap = st.kernel_map(kernel, dilation)
    edge_index, edge_type = kmap.edges()
    got = set(zip(edge_index[0].tolist(), edge_index[1].tolist(), edge_type.tolist()))
    where = {tuple(c): i for i, c in enumerate(coords.tolist())}
    axis = [(v - kernel // 2 if kernel % 2 else v) * dilation for v in range(kernel)]
    expected = set()
    for i, c in enumerate(coords.tolist()):
        for k, off in enumerate(itertools.product(axis, repeat=dim)):
            j = where.get((c[0], *(a + o for a, o in zip(c[1:], off))))
            if j is not None:
                expected.add((j, i, k))
    assert got == expected
    ptr = kmap.index.ptr
    assert all(a <= b for a, b in zip(ptr[:-1], ptr[1:]))


def test_gradcheck_submanifold_strided_transposed():
    gen = torch.Generator().manual_seed(3)
    coords = _random_sites(gen, 40, 3, 3)
    feats = torch.randn(len(coords), 2, generator=gen, dtype=torch.float64, requires_grad=True)
    params = tuple(
        torch.randn(27, a, b, generator=gen, dtype=torch.float64, requires_grad=True)
        for a, b in ((2, 3), (3, 2), (2, 2))
    )

    cache = SparseTensor(coords, feats).cache  # maps built once, reused by every evaluation

    def f(x, w1, w2, w3):
        st = SparseTensor(coords, x, cache=cache)
        y = sparse_conv(st, w1, None, 3)
        y = sparse_conv(y, w2, None, 3, stride=2)
        return sparse_conv(y, w3, None, 3, stride=2, transposed=True).feats

    assert torch.autograd.gradcheck(f, (feats, *params))


def test_maps_are_cached_and_shared():
    gen = torch.Generator().manual_seed(4)
    coords = _random_sites(gen, 60, 3, 5)
    st = SparseTensor(coords, torch.randn(len(coords), 4, generator=gen))
    a, b = SparseConv(4, 4), SparseConv(4, 4)
    y = a(st)
    assert y.cache is st.cache and y.coords is st.coords
    b(y)
    assert len([k for k in st.cache.maps if k[0] == "sub"]) == 1
    assert st.kernel_map(3) is y.kernel_map(3)


def test_collate_and_pyg_view():
    gen = torch.Generator().manual_seed(5)
    c0 = torch.tensor([[0, 0], [0, 1], [1, 1]])
    c1 = torch.tensor([[0, 0], [5, 5]])
    st = sparse_collate([c0, c1], [torch.randn(3, 2, generator=gen), torch.randn(2, 2, generator=gen)])
    assert st.coords[:, 0].tolist() == [0, 0, 0, 1, 1] and st.batch_size == 2
    data = st.to_pyg(3)
    # neighbours never cross samples: the only non-self edges are within sample 0
    cross = data.batch[data.edge_index[0]] != data.batch[data.edge_index[1]]
    assert not bool(cross.any())
    non_self = data.edge_index[0] != data.edge_index[1]
    assert int(non_self.sum()) == 6  # (0,0)-(0,1), (0,0)-(1,1), (0,1)-(1,1), both directions
    assert int((data.edge_type == 4).sum()) == 5  # the centre offset of a 3x3 window


def test_bad_input_raises_value_error():
    with pytest.raises(ValueError, match="coords must be"):
        SparseTensor(torch.zeros(3, 7, dtype=torch.long), torch.zeros(3, 1))
    with pytest.raises(ValueError, match="integers"):
        SparseTensor(torch.zeros(3, 4), torch.zeros(3, 1))
    with pytest.raises(ValueError, match="duplicate"):
        SparseTensor(torch.zeros(3, 4, dtype=torch.long), torch.zeros(3, 1)).kernel_map()
    with pytest.raises(ValueError, match="multiples"):
        SparseTensor(torch.ones(2, 4, dtype=torch.long), torch.zeros(2, 1), stride=2)
    with pytest.raises(ValueError, match="odd"):
        SparseConv(2, 2, kernel_size=2)
    st = SparseTensor(torch.tensor([[0, 2, 2, 2]]), torch.zeros(1, 2), stride=2)
    with pytest.raises(ValueError, match="stride"):
        SparseConv(2, 2, 2, stride=2, transposed=True)(st)


def _threads(n: int):
    import contextlib

    @contextlib.contextmanager
    def ctx():
        before = torch.get_num_threads()
        torch.set_num_threads(n)
        try:
            yield
        finally:
            torch.set_num_threads(before)

    return ctx()


def test_threads_give_the_same_map_forward_and_gradients(monkeypatch):
    """The parallel kernel (map joined in blocks, forward tiles and the reversed-edge grad_x shared by worker
    threads, grad_w split by relation) gives bit-identical results with 1 and 2 threads, and equals the
    float64 reference; tiny blocks and tiles force many of each."""
    import geomask.ops.relational_kernel as rel
    import geomask.sparse.kernel_map as km

    monkeypatch.setattr(km, "_MAP_BLOCK", 16)
    monkeypatch.setattr(rel, "_MIN_ROWS", 8)
    monkeypatch.setattr(rel, "_TILE_MESSAGE_BYTES", 64)
    monkeypatch.setattr(rel, "_PARALLEL_MACS", 1)
    monkeypatch.setattr(rel, "_PARALLEL_MACS_FUSED", 1)
    g = torch.Generator().manual_seed(0)
    grid = torch.unique(torch.randint(0, 9, (400, 3), generator=g), dim=0)  # sorted sites, as voxelizers emit
    coords = torch.cat([torch.zeros(len(grid), 1, dtype=torch.long), grid], 1)
    feats = torch.randn(len(grid), 5, generator=g)
    weight = torch.randn(27, 5, 4, generator=g)
    results = []
    for n in (1, 2):
        with _threads(n):
            x = SparseTensor(coords, feats.clone().requires_grad_(True))
            w = weight.clone().requires_grad_(True)
            index = x.kernel_map(3).index
            y = sparse_conv(x, w, None, 3)
            y.feats.square().sum().backward()
            results.append((index.src, index.dst, index.ptr, y.feats.detach(), x.feats.grad, w.grad))
    for a, b in zip(*results):
        assert a == b if isinstance(a, tuple) else torch.equal(a, b)
    x64 = SparseTensor(coords, feats.double().requires_grad_(True))
    w64 = weight.double().requires_grad_(True)
    sparse_conv(x64, w64, None, 3).feats.square().sum().backward()
    _, _, _, y1, gx1, gw1 = results[0]
    ref = sparse_conv(SparseTensor(coords, feats.double()), weight.double(), None, 3).feats
    torch.testing.assert_close(y1.double(), ref, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(gx1.double(), x64.feats.grad, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(gw1.double(), w64.grad, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("bounds", [(0, 1), (0, 300), (37, 211), (299, 300)])
def test_three_wide_join_equals_the_general_join(bounds):
    """The 3×3×3 join (branch-free steps over sentinel-padded keys, taps unrolled) writes the same pairs, in the
    same slots, with the same counts as the general row-tap join, for whole and partial key blocks (the map's
    worker blocks), and nothing outside its block's columns (blocks are joined by parallel threads)."""
    import numpy as np

    import geomask.sparse.kernel_map as km

    rng = np.random.default_rng(0)
    keys = np.unique(rng.integers(0, 900, 400)).astype(np.int64)[:300]  # dense enough for every tap to occur
    bases = np.array([-110, -100, -90, -10, 0], dtype=np.int64)  # rows of a 3-wide window; the last is the centre
    i0, i1 = bounds
    out = []
    for fn in ("general", "r1"):
        ii = np.full((13, len(keys)), -1, np.int32)
        jj = np.full((13, len(keys)), -1, np.int32)
        cnt = np.zeros(13, np.int64)
        if fn == "general":
            km._row_taps_block(keys, bases, 1, 27, i0, i1, ii, jj, cnt)
        else:
            padded = np.concatenate([keys, np.full(km._PAD, np.iinfo(np.int64).max)])
            km._row_taps_block_r1(padded, bases, i0, i1, ii, jj, cnt)
        out.append((ii, jj, cnt))
    assert np.array_equal(out[0][2], out[1][2])
    for rel, c in enumerate(out[0][2].tolist()):
        for a, b in zip(out[0][:2], out[1][:2]):
            assert np.array_equal(a[rel, i0 : i0 + c], b[rel, i0 : i0 + c])  # the pairs the emitter reads
    for arr in out[1][:2]:  # the r1 join also stores misses (overwritten or never read), only in [i0, i1)
        assert (arr[:, :i0] == -1).all() and (arr[:, i1:] == -1).all()
    if i1 - i0 > 100:
        assert (out[0][2] > 0).all()  # every relation, the centre row's t = -1 included, has pairs
