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
    assert (level._table is not None) == dense
