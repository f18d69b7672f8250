"""CPCM RegionMask: quantile boxes of similar size, exact ratio over boxes, seeded, batched over scenes."""

from __future__ import annotations

import pytest
import torch

from geomask.masking.region import RegionMasker, region_ids, zero_masked

# tiny sparse ops run fastest (and predictably on a busy machine) on one thread
pytestmark = pytest.mark.usefixtures("one_thread")


def scenes(sizes, seed=0, extent=60):
    g = torch.Generator().manual_seed(seed)
    rows = []
    for b, n in enumerate(sizes):
        c = torch.unique(torch.randint(0, extent, (n, 3), generator=g), dim=0)
        rows.append(torch.cat([torch.full((len(c), 1), b), c], 1))
    return torch.cat(rows)


def test_box_counts_nearly_uniform_on_uniform_scene():
    coords = scenes([20000])
    ids = region_ids(coords, 4)
    counts = torch.bincount(ids, minlength=64).float()
    assert counts.min() > 0.7 * counts.mean() and counts.max() < 1.3 * counts.mean()


def test_slabs_are_quantiles_even_for_skewed_axes():
    g = torch.Generator().manual_seed(1)
    x = (torch.rand(5000, generator=g) ** 4 * 1000).long()  # heavily skewed coordinate
    coords = torch.stack([torch.zeros_like(x), x, torch.arange(5000), torch.zeros_like(x)], 1)
    ids = region_ids(coords, 4)
    slab = ids // 16  # slab along the first axis
    counts = torch.bincount(slab, minlength=4).float()
    assert counts.min() > 0.9 * 1250 and counts.max() < 1.1 * 1250


@pytest.mark.parametrize("grid", [2, 4, 8])
def test_ratio_exact_over_boxes_per_scene(grid):
    coords = scenes([3000, 500, 1200], seed=grid)
    masker = RegionMasker(grid, 0.75)
    ids, box_mask = masker.sample_boxes(coords, torch.Generator().manual_seed(0))
    per_scene = box_mask.view(3, grid**3).sum(1)
    assert per_scene.tolist() == [int(0.75 * grid**3 + 0.5)] * 3
    mask = masker.sample(coords, torch.Generator().manual_seed(0))
    assert torch.equal(mask, box_mask[ids])
    # whole boxes: every box is all-masked or all-visible
    for box in torch.unique(ids).tolist():
        assert mask[ids == box].all() or (~mask[ids == box]).all()


def test_reproducible_and_seed_dependent():
    coords = scenes([4000, 4000])
    a = RegionMasker(4)(coords, torch.Generator().manual_seed(7))
    b = RegionMasker(4)(coords, torch.Generator().manual_seed(7))
    c = RegionMasker(4)(coords, torch.Generator().manual_seed(8))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_batched_equals_scene_by_scene_partition():
    coords = scenes([2000, 3000])
    ids = region_ids(coords, 4)
    second = coords[coords[:, 0] == 1].clone()
    second[:, 0] = 0
    assert torch.equal(ids[coords[:, 0] == 1] - 64, region_ids(second, 4))


def test_zero_masked_keeps_geometry_rows():
    feats = torch.ones(5, 3)
    mask = torch.tensor([True, False, True, False, False])
    out = zero_masked(feats, mask)
    assert out[mask].abs().sum() == 0 and torch.equal(out[~mask], feats[~mask]) and out.shape == feats.shape
    with pytest.raises(ValueError):
        zero_masked(feats, mask[:3])
