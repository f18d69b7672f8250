"""The methods' numbers do not change: every old entry point equals (a) the new protocol and (b) a frozen copy of
the code it had before the layout protocol, mask for mask and in what it leaves of the generator's stream."""

from __future__ import annotations

import math

import pytest
import torch

from geomask.masking import (
    BlockPatchMasker,
    GridLayout,
    PatchLayout,
    RandomPatchMasker,
    RegionMasker,
    RowLayout,
    TokenGridLayout,
    UniformMasker,
    VoxelMasker,
    build_masker,
    random_patch_mask,
)
from geomask.masking.region import region_ids
from geomask.masking.voxel import cell_ids

pytestmark = pytest.mark.usefixtures("one_thread")

# ---- frozen copies of the pre-protocol implementations (do not edit: they are the reference) -------------------


def old_uniform(batch, ratio, gen, num_graphs=None):
    n = batch.numel()
    if n == 0:
        return torch.zeros(0, dtype=torch.bool, device=batch.device)
    if num_graphs is None:
        num_graphs = int(batch.max()) + 1
    u = torch.rand(n, generator=gen, dtype=torch.float64, device=gen.device).to(batch.device)
    order = torch.argsort(batch.to(torch.float64) + u)
    counts = torch.bincount(batch, minlength=num_graphs)
    start = torch.cumsum(counts, 0) - counts
    rank = torch.empty_like(order)
    rank[order] = torch.arange(n, device=batch.device) - start[batch[order]]
    per = torch.floor(torch.bincount(batch, minlength=num_graphs).to(torch.float64) * ratio + 0.5).to(torch.long)
    return rank < per[batch]


def old_block(centers, low, high, gen):
    b, g, _ = centers.shape
    ratio = torch.rand(b, generator=gen, device=gen.device).to(centers.device) * (high - low) + low
    count = torch.floor(ratio * g + 0.5).long()
    seed = torch.randint(g, (b,), generator=gen, device=gen.device).to(centers.device)
    seed_pos = torch.gather(centers, 1, seed.view(b, 1, 1).expand(b, 1, 3))
    d = (centers.detach() - seed_pos).pow(2).sum(-1)
    d = d.scatter(1, seed.view(b, 1), -1.0)
    rank = torch.empty(b, g, dtype=torch.long, device=centers.device)
    rank.scatter_(1, d.argsort(dim=1, stable=True), torch.arange(g, device=centers.device).expand(b, g))
    return rank < count.unsqueeze(1)


def old_random_patch_mask(b, g, ratio, gen):
    keys = torch.rand(b, g, generator=gen, device=gen.device)
    rank = keys.argsort(dim=1).argsort(dim=1)
    return rank < math.floor(ratio * g + 0.5)


def old_region(coords, grid, ratio, gen, num_scenes=None):
    dim = coords.size(1) - 1
    if num_scenes is None:
        num_scenes = int(coords[:, 0].max()) + 1 if len(coords) else 0
    ids = region_ids(coords, grid, num_scenes)
    box_batch = torch.arange(num_scenes).repeat_interleave(grid**dim)
    if len(box_batch) == 0:
        return torch.zeros(0, dtype=torch.bool)
    box_mask = old_uniform(box_batch, ratio, gen, num_scenes)
    return box_mask[ids] if len(ids) else torch.zeros(0, dtype=torch.bool)


def old_voxel(coords, ratio, cell, gen, num_scenes=None):
    if len(coords) == 0:
        return torch.zeros(0, dtype=torch.bool)
    if num_scenes is None:
        num_scenes = int(coords[:, 0].max()) + 1
    if cell == 1:
        return old_uniform(coords[:, 0].long(), ratio, gen, num_scenes)
    ids, cell_batch = cell_ids(coords, cell)
    return old_uniform(cell_batch, ratio, gen, num_scenes)[ids]


# ---- helpers --------------------------------------------------------------------------------------------------


def gen(seed):
    return torch.Generator().manual_seed(seed)


def same_stream(a, b):
    """The two generators are at the same point of their stream (what the methods draw next is unchanged)."""
    return torch.equal(a.get_state(), b.get_state())


def scene_coords(sizes, seed=0, extent=30):
    g = gen(seed)
    rows = []
    for b, n in enumerate(sizes):
        c = torch.unique(torch.randint(0, extent, (n, 3), generator=g), dim=0)
        rows.append(torch.cat([torch.full((len(c), 1), b), c], 1))
    return torch.cat(rows)


SEEDS = range(12)


@pytest.mark.parametrize("ratio", [0.0, 0.15, 0.5, 0.75, 1.0])
def test_uniform_sample_equals_old_and_protocol(ratio):
    for seed in SEEDS:
        b = torch.randint(0, 7, (200,), generator=gen(100 + seed))  # unsorted, ragged, maybe with gaps
        ga, gb, gc = gen(seed), gen(seed), gen(seed)
        old = old_uniform(b, ratio, ga, 9)
        new = UniformMasker(ratio).sample(b, gb, num_graphs=9)
        proto = UniformMasker(ratio)(RowLayout(b, 9), gc)
        assert torch.equal(old, new) and torch.equal(new, proto)
        assert same_stream(ga, gb) and same_stream(gb, gc)


@pytest.mark.parametrize(("low", "high"), [(0.25, 0.45), (0.6, 0.6), (0.0, 1.0)])
def test_block_sample_equals_old_and_protocol(low, high):
    for seed in SEEDS:
        centers = torch.rand(6, 32, 3, generator=gen(200 + seed))
        centers[0, 5] = centers[0, 9]  # duplicate centres: the tie rule must match too
        centers[1] = centers[1].round(decimals=1)  # many ties in distance
        ga, gb, gc = gen(seed), gen(seed), gen(seed)
        old = old_block(centers, low, high, ga)
        masker = BlockPatchMasker(low, high)
        new = masker.sample(centers, gb)
        proto = masker(PatchLayout(centers), gc)
        assert new.shape == (6, 32) and proto.shape == (6 * 32,)
        assert torch.equal(old, new) and torch.equal(new.reshape(-1), proto)
        assert same_stream(ga, gb) and same_stream(gb, gc)
        assert torch.equal(masker(centers, gen(seed)), old)  # masker(centers, gen) was the same as .sample


@pytest.mark.parametrize(("b", "g", "ratio"), [(4, 64, 0.6), (3, 10, 0.25), (5, 7, 0.5), (2, 1, 0.9)])
def test_random_patch_mask_equals_old_and_protocol(b, g, ratio):
    for seed in SEEDS:
        ga, gb, gc = gen(seed), gen(seed), gen(seed)
        old = old_random_patch_mask(b, g, ratio, ga)
        new = random_patch_mask(b, g, ratio, gb)
        proto = RandomPatchMasker(ratio)(TokenGridLayout(b, (g,)), gc)
        assert torch.equal(old, new) and torch.equal(new.reshape(-1), proto)
        assert same_stream(ga, gb) and same_stream(gb, gc)
        # [B, G, 3] centres are the same dense layout
        centers = torch.rand(b, g, 3)
        assert torch.equal(RandomPatchMasker(ratio)(PatchLayout(centers), gen(seed)), proto)


@pytest.mark.parametrize(("grid", "ratio", "num_scenes"), [(4, 0.75, None), (2, 0.5, 4), (8, 0.75, None)])
def test_region_sample_equals_old_and_protocol(grid, ratio, num_scenes):
    coords = scene_coords([900, 40, 1], seed=grid)
    for seed in SEEDS:
        ga, gb, gc, gd = gen(seed), gen(seed), gen(seed), gen(seed)
        old = old_region(coords, grid, ratio, ga, num_scenes)
        masker = RegionMasker(grid, ratio)
        new = masker.sample(coords, gb, num_scenes)
        proto = masker(GridLayout(coords, num_scenes), gc)
        called = masker(coords, gd, num_scenes)  # how cpcm calls it: masker(coords, gen, 3 * nb)
        assert torch.equal(old, new) and torch.equal(new, proto) and torch.equal(proto, called)
        assert same_stream(ga, gb) and same_stream(gb, gc) and same_stream(gc, gd)


@pytest.mark.parametrize(("ratio", "cell", "num_scenes"), [(0.4, 1, None), (0.4, 8, None), (0.6, 4, 5), (0.4, 1, 6)])
def test_voxel_sample_equals_old_and_protocol(ratio, cell, num_scenes):
    coords = scene_coords([700, 1, 300], seed=cell)
    for seed in SEEDS:
        ga, gb, gc, gd = gen(seed), gen(seed), gen(seed), gen(seed)
        old = old_voxel(coords, ratio, cell, ga, num_scenes)
        masker = VoxelMasker(ratio, cell)
        new = masker.sample(coords, gb, num_scenes)
        proto = masker(GridLayout(coords, num_scenes), gc)
        called = masker(coords, gd, num_scenes)  # how msm calls it: masker(coords, gen, 2 * nb)
        assert torch.equal(old, new) and torch.equal(new, proto) and torch.equal(proto, called)
        assert same_stream(ga, gb) and same_stream(gb, gc) and same_stream(gc, gd)


def test_built_by_name_equals_the_method_constructors():
    """What methods build today (their constructors) and the registry build give the same masks."""
    b = torch.randint(0, 5, (300,), generator=gen(0))
    coords = scene_coords([500, 500])
    centers = torch.rand(3, 20, 3, generator=gen(1))
    pairs = [
        (UniformMasker(0.3), {"name": "uniform", "ratio": 0.3}, RowLayout(b)),
        (BlockPatchMasker(0.25, 0.45), {"name": "block", "low": 0.25, "high": 0.45}, PatchLayout(centers)),
        (RegionMasker(4, 0.75), {"name": "region", "grid": 4, "ratio": 0.75}, GridLayout(coords)),
        (VoxelMasker(0.4, 8), {"name": "voxel", "ratio": 0.4, "cell": 8}, GridLayout(coords)),
        (RandomPatchMasker(0.6), {"name": "random_patches", "ratio": 0.6}, PatchLayout(centers)),
    ]
    for direct, spec, layout in pairs:
        built = build_masker(spec)
        assert type(built) is type(direct) and repr(built) == repr(direct)
        assert torch.equal(built(layout, gen(3)), direct(layout, gen(3)))
