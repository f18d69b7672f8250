"""Site lookup: the dense key table (small key ranges) and the binary search give the same rows."""

from __future__ import annotations

import pytest
import torch

from geomask.sparse import kernel_map
from geomask.sparse.kernel_map import _Level


@pytest.mark.parametrize("dense", [True, False])
def test_lookup_finds_every_site_and_nothing_else(monkeypatch, dense):
    monkeypatch.setattr(kernel_map, "_DENSE_LOOKUP", 10**9 if dense else 0)
    g = torch.Generator().manual_seed(0)
    flat = torch.randperm(2 * 6**3, generator=g)[:150]  # 150 distinct sites of 2 scenes on a 6^3 grid, shuffled
    coords = torch.stack([flat // 216, (flat // 36) % 6, (flat // 6) % 6, flat % 6], 1) * torch.tensor([1, 2, 2, 2])
    level = _Level(coords, (2, 2, 2))
    rows = level.lookup(level.batch, level.grid)
    assert torch.equal(rows, torch.arange(150))
    # absent sites, sites outside the range and batches that do not exist find -1
    taken = set(flat.tolist())
    absent = torch.tensor([f for f in range(2 * 216) if f not in taken][:20])
    q = torch.stack([absent // 216, (absent // 36) % 6, (absent // 6) % 6, absent % 6], 1)
    q = torch.cat([q, torch.tensor([[0, 7, 0, 0], [0, -1, 2, 2], [5, 1, 1, 1], [-1, 1, 1, 1]])])
    assert (level.lookup(q[:, 0], q[:, 1:]) == -1).all()
    assert (level.table((0, 0, 0)) is not None) == dense


@pytest.mark.parametrize(("kernel", "factor"), [((3, 3, 3), (2, 2, 2)), ((2, 2, 2), (2, 2, 2)), ((5, 3, 3), (2, 1, 2))])
def test_down_maps_by_table_and_by_search_are_the_same(monkeypatch, kernel, factor):
    g = torch.Generator().manual_seed(1)
    flat = torch.randperm(2 * 9**3, generator=g)[:300]
    coords = torch.stack([flat // 729, (flat // 81) % 9, (flat // 9) % 9, flat % 9], 1)
    maps = []
    for dense in (True, False):
        monkeypatch.setattr(kernel_map, "_DENSE_LOOKUP", 10**9 if dense else 0)
        cache = kernel_map.CoordinateCache()
        m = cache.downsample(coords, (1, 1, 1), kernel, factor, (1, 1, 1))
        maps.append(m)
    (ei_a, et_a), (ei_b, et_b) = maps[0].index.edges(), maps[1].index.edges()
    assert maps[0].index.ptr == maps[1].index.ptr
    assert torch.equal(ei_a, ei_b) and torch.equal(et_a, et_b)


def test_level_bounds_and_keys_match_the_torch_expressions():
    """The compiled one-pass level (grid = floor(coords / stride), bounds, batch count, packed keys) equals the
    plain torch expressions, negative coordinates and strides above 1 included."""

    g = torch.Generator().manual_seed(0)
    for stride in ((1, 1, 1), (2, 4, 2)):
        st = torch.tensor(stride)
        grid = torch.unique(torch.randint(-20, 20, (300, 3), generator=g), dim=0) * st
        batch = torch.randint(0, 3, (len(grid), 1), generator=g)
        coords = torch.cat([batch, grid], 1)
        lvl = _Level(coords, stride)
        expected_grid = torch.div(coords[:, 1:], st, rounding_mode="floor")
        assert torch.equal(lvl.grid, expected_grid)
        assert torch.equal(lvl.lo, expected_grid.min(0).values) and torch.equal(lvl.hi, expected_grid.max(0).values)
        assert lvl.num_batches == int(batch.max()) + 1
        keys, perm = lvl.keys((1, 1, 1))
        origin, mults = lvl.packing((1, 1, 1))
        raw = coords[:, 0] * lvl.span_total((1, 1, 1)) + ((expected_grid - origin) * mults).sum(1)
        assert torch.equal(keys, raw[perm]) and bool((keys[1:] > keys[:-1]).all())


@pytest.mark.parametrize("workers", [1, 2, 3])
def test_blocked_bounds_and_keys_equal_one_pass(monkeypatch, workers):
    """Grid units, bounds, the largest batch index and packed keys come out the same in blocks on several threads
    as in one pass, and a descent that falls exactly on a block boundary is still caught."""
    import numpy as np

    import geomask.sparse.kernel_map as km

    monkeypatch.setattr(km, "_MAP_BLOCK", 8)
    rng = np.random.default_rng(1)
    coords = np.concatenate([np.sort(rng.integers(0, 3, (100, 1)), 0), rng.integers(-20, 40, (100, 3)) * 2], 1)
    stride = np.array([2, 2, 2], dtype=np.int64)
    grid1, bounds1, top1 = km._grid_bounds(coords, stride, True, 1)
    grid, bounds, top = km._grid_bounds(coords, stride, True, workers)
    assert np.array_equal(grid, grid1) and np.array_equal(grid1, coords[:, 1:] // 2)
    assert np.array_equal(bounds, bounds1) and top == top1 == coords[:, 0].max()
    assert bounds.tolist() == [grid1.min(0).tolist(), grid1.max(0).tolist()]
    batch, origin = coords[:, 0].copy(), bounds1[0]
    mults = np.array([61 * 61, 61, 1], dtype=np.int64)
    key1, asc1 = km._pack_keys(batch, grid1, origin, mults, 61**3, 1)
    key, asc = km._pack_keys(batch, grid1, origin, mults, 61**3, workers)
    assert np.array_equal(key, key1) and asc == asc1
    assert np.array_equal(key1, batch * 61**3 + ((grid1 - origin) * mults).sum(1))  # the formula, in numpy
    assert asc1 == bool((np.diff(key1) > 0).all())
    # unit strides take a path of their own (no division, no grid written): the same bounds and batch index
    unit = np.concatenate([coords[:, :1], coords[:, 1:] // 2 - 5], 1)
    none, ubounds, utop = km._grid_bounds(unit, np.ones(3, dtype=np.int64), False, workers)
    assert none.shape[0] == 0 and utop == coords[:, 0].max()
    assert ubounds.tolist() == [unit[:, 1:].min(0).tolist(), unit[:, 1:].max(0).tolist()]
    ascending = np.arange(64, dtype=np.int64)[:, None].repeat(3, 1)
    zeros = np.zeros(64, dtype=np.int64)
    one = np.array([1, 1, 1], dtype=np.int64)
    assert km._pack_keys(zeros, ascending, zeros[:3], one, 200, workers)[1]
    cut = km._blocks(64, workers)[1] if workers > 1 else 32
    ascending[cut] = ascending[cut - 1]  # equal keys across the first block boundary: not strictly ascending
    assert not km._pack_keys(zeros, ascending, zeros[:3], one, 200, workers)[1]
    ascending[cut] += 1
    ascending[5] = ascending[3]  # a descent inside the first block
    assert not km._pack_keys(zeros, ascending, zeros[:3], one, 200, workers)[1]
