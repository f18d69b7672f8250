"""MSM voxel masking: exact ratio per scene over voxels or cells, whole cells, seeded."""

from __future__ import annotations

import pytest
import torch

from geomask.masking.voxel import VoxelMasker, cell_ids

# tiny sparse ops run fastest (and predictably on a busy machine) on one thread
pytestmark = pytest.mark.usefixtures("one_thread")


def coords_for(sizes, seed=0):
    g = torch.Generator().manual_seed(seed)
    out = []
    for b, n in enumerate(sizes):
        c = torch.unique(torch.randint(0, 40, (n, 3), generator=g), dim=0)
        out.append(torch.cat([torch.full((len(c), 1), b), c], 1))
    return torch.cat(out)


def test_exact_ratio_per_scene_voxels():
    coords = coords_for([1000, 333, 2500])
    mask = VoxelMasker(0.4)(coords, torch.Generator().manual_seed(0))
    for b in range(3):
        n = int((coords[:, 0] == b).sum())
        assert int(mask[coords[:, 0] == b].sum()) == int(0.4 * n + 0.5)


def test_cells_masked_whole_with_exact_ratio():
    coords = coords_for([3000, 3000])
    mask = VoxelMasker(0.4, cell=8)(coords, torch.Generator().manual_seed(1))
    ids, cell_batch = cell_ids(coords, 8)
    masked_cells = torch.zeros(len(cell_batch), dtype=torch.long).index_add_(0, ids, mask.long())
    sizes = torch.bincount(ids)
    assert bool(((masked_cells == 0) | (masked_cells == sizes)).all())
    for b in range(2):
        hit = (masked_cells > 0) & (cell_batch == b)
        assert int(hit.sum()) == int(0.4 * int((cell_batch == b).sum()) + 0.5)


def test_seeded():
    coords = coords_for([2000])
    a = VoxelMasker(0.4)(coords, torch.Generator().manual_seed(3))
    b = VoxelMasker(0.4)(coords, torch.Generator().manual_seed(3))
    c = VoxelMasker(0.4)(coords, torch.Generator().manual_seed(4))
    assert torch.equal(a, b) and not torch.equal(a, c)
