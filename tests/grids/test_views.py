"""Views of one dense batch -- patch tokens, a sparse tensor of visible sites, a grid graph -- and GridBatch:
each a round trip dense → view → dense that gives the batch back with the masked sites zero."""

from __future__ import annotations

import pytest
import torch

from geomask.errors import UsageError
from geomask.grids import (
    GridBatch,
    from_graph,
    from_sparse,
    grid_graph,
    grid_offsets,
    patch_mask_to_sites,
    patchify,
    to_sparse,
    unpatchify,
)
from geomask.masking import RandomTokenMasker, TokenGridLayout


def gen(seed):
    return torch.Generator().manual_seed(seed)


def images(b=3, c=2, h=8, w=12, seed=0):
    return torch.randn(b, c, h, w, generator=gen(seed))


def patch_mask(b, grid, seed=0):
    return torch.rand(b, *grid, generator=gen(seed)) < 0.5


def test_token_view_round_trip_with_masked_patches_zero():
    x, m = images(), patch_mask(3, (2, 3))
    tokens = patchify(x, 4) * ~m.view(3, 6, 1)
    back = unpatchify(tokens, 4, (8, 12))
    assert torch.equal(back, x * ~patch_mask_to_sites(m, 4, (2, 3)).unsqueeze(1))


def test_sparse_pixel_sites_round_trip():
    x = images()
    pix = torch.rand(3, 8, 12, generator=gen(1)) < 0.3
    pix[2] = True  # one image fully masked: no sites, comes back all zero
    st = to_sparse(x, pix)
    assert len(st) == int((~pix).sum()) and st.stride == (1, 1) and st.num_channels == 2
    assert torch.equal(st.coords, (~pix).nonzero())  # batch column first, row-major
    assert torch.equal(from_sparse(st, 3, (8, 12)), x * ~pix.unsqueeze(1))
    assert torch.equal(from_sparse(to_sparse(x), 3, (8, 12)), x)  # no mask: every site


def test_sparse_patch_sites_are_tokens_at_multiples_of_the_stride():
    x, m = images(), patch_mask(3, (2, 3), seed=2)
    st = to_sparse(x, m.view(3, 6), patch_size=4)
    assert st.stride == (4, 4) and st.num_channels == 4 * 4 * 2
    assert bool((st.coords[:, 1:] % 4 == 0).all())
    keep = (~m).nonzero()
    assert torch.equal(st.coords[:, 1:] // 4, keep[:, 1:])
    assert torch.equal(st.feats, patchify(x, 4).view(3, 2, 3, -1)[~m])
    back = from_sparse(st, 3, (8, 12), patch_size=4)
    assert torch.equal(back, x * ~patch_mask_to_sites(m, 4, (2, 3)).unsqueeze(1))


def test_sparse_view_of_video_with_tubelets():
    v = torch.randn(2, 1, 4, 8, 8, generator=gen(3))
    m = torch.rand(2, 2, 2, 2, generator=gen(4)) < 0.5
    st = to_sparse(v, m, patch_size=4, temporal_patch_size=2)
    assert st.stride == (2, 4, 4) and st.num_channels == 32
    back = from_sparse(st, 2, (4, 8, 8), 4, 2)
    assert torch.equal(back, v * ~patch_mask_to_sites(m, (2, 4, 4), (2, 2, 2)).unsqueeze(1))


def test_grid_offsets():
    assert grid_offsets(2, 4).tolist() == [[-1, 0], [0, -1], [0, 1], [1, 0]]
    assert len(grid_offsets(2, 8)) == 8 and len(grid_offsets(3, 6)) == 6 and len(grid_offsets(3, 26)) == 26
    with pytest.raises(UsageError, match="4 or 8"):
        grid_offsets(2, 6)


@pytest.mark.parametrize("neighbours", [4, 8])
def test_grid_graph_edge_counts_on_a_full_grid(neighbours):
    h, w = 5, 7
    g = grid_graph(torch.randn(2, 3, h, w, generator=gen(5)), neighbours=neighbours)
    four = 2 * (h * (w - 1) + w * (h - 1))  # directed edges: both directions of every pair
    diag = 2 * 2 * (h - 1) * (w - 1)
    assert g.num_nodes == 2 * h * w
    assert g.edge_index.size(1) == 2 * (four + (diag if neighbours == 8 else 0))
    src, dst = g.edge_index
    assert torch.equal(g.pos[src] - g.pos[dst], grid_offsets(2, neighbours)[g.edge_type].float())
    assert torch.equal(g.batch[src], g.batch[dst])  # no edge between samples


def test_grid_graph_drops_masked_sites_and_round_trips():
    x = images()
    pix = torch.rand(3, 8, 12, generator=gen(6)) < 0.4
    g = grid_graph(x, pix, neighbours=8)
    st = to_sparse(x, pix)
    assert g.num_nodes == len(st) and torch.equal(g.x, st.feats)  # same rows as the sparse view
    src, dst = g.edge_index
    offsets = grid_offsets(2, 8)
    assert torch.equal(g.pos[src] - g.pos[dst], offsets[g.edge_type].float())
    # every visible neighbour pair is an edge: count them directly on the dense grid
    vis = ~pix
    want = 0
    for dy, dx in offsets.tolist():  # 8 offsets
        a = vis[:, max(0, -dy) : 8 - max(0, dy), max(0, -dx) : 12 - max(0, dx)]
        b = vis[:, max(0, dy) : 8 + min(0, dy), max(0, dx) : 12 + min(0, dx)]
        want += int((a & b).sum())
    assert g.edge_index.size(1) == want
    assert torch.equal(from_graph(g, 3, (8, 12)), x * vis.unsqueeze(1))


def test_grid_graph_of_patches_and_volumes():
    x, m = images(), patch_mask(3, (2, 3), seed=7)
    g = grid_graph(x, m, neighbours=4, patch_size=4)
    assert g.x.shape[1] == 32 and g.num_nodes == int((~m).sum())
    assert torch.equal(from_graph(g, 3, (8, 12), patch_size=4), x * ~patch_mask_to_sites(m, 4, (2, 3)).unsqueeze(1))
    vol = torch.randn(1, 1, 3, 3, 3, generator=gen(8))
    g3 = grid_graph(vol, neighbours=26)
    assert g3.edge_index.size(1) == 26 * 1 + 17 * 6 + 11 * 12 + 7 * 8  # centre, 6 face, 12 edge, 8 corner cells
    assert torch.equal(from_graph(g3, 1, (3, 3, 3)), vol)


def test_grid_batch_hands_out_consistent_views():
    x = images(b=2, c=3, h=8, w=12)
    gb = GridBatch(x, 4, labels=torch.tensor([1, 0]))
    assert (gb.batch_size, gb.channels, gb.spatial_shape, gb.grid_shape) == (2, 3, (8, 12), (2, 3))
    assert (gb.num_patches, gb.patch_dim, gb.dim) == (6, 48, 2)
    layout = gb.layout()
    assert isinstance(layout, TokenGridLayout) and layout.shape == (2, 3) and layout.num_rows == 12
    mask = RandomTokenMasker(0.5)(layout, gen(0)).view(2, 6)
    assert torch.equal(gb.from_tokens(gb.tokens()), x)
    pix = gb.pixel_mask(mask)
    assert pix.shape == (2, 8, 12)
    for level in ("pixel", "patch"):
        st = gb.to_sparse(mask, level=level)
        back = from_sparse(st, 2, (8, 12), None if level == "pixel" else 4)
        assert torch.equal(back, x * ~pix.unsqueeze(1))
        g = gb.to_graph(mask, 8, level=level)
        assert torch.equal(from_graph(g, 2, (8, 12), None if level == "pixel" else 4), x * ~pix.unsqueeze(1))
    assert torch.equal(gb.to_sparse(pix).coords, to_sparse(x, pix).coords)  # a pixel mask works as well
    assert gb.norm_pix().shape == (2, 6, 48) and gb.pos_embed(8, cls_token=True).shape == (7, 8)
    assert GridBatch(torch.zeros(1, 1, 4, 16, 16), 8, temporal_patch_size=2).grid_shape == (2, 2, 2)
    with pytest.raises(UsageError, match="multiple"):
        GridBatch(x, 5)
    with pytest.raises(UsageError, match="level"):
        gb.to_sparse(mask, level="voxel")
