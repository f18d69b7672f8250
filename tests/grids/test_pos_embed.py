"""N-D sin-cos position embeddings against a hand-written copy of MAE's 2-D formula."""

from __future__ import annotations

import math

import pytest
import torch

from geomask.errors import UsageError
from geomask.grids import sincos_1d, sincos_pos_embed


def hand_1d(dim, pos):
    """The Transformer's 1-D embedding of one position: sines then cosines, omega_i = 10000^(-i / (dim / 2))."""
    half = dim // 2
    omega = [1.0 / 10000 ** (i / half) for i in range(half)]
    return [math.sin(pos * o) for o in omega] + [math.cos(pos * o) for o in omega]


def hand_mae_2d(dim, h, w, cls_token):
    """MAE's get_2d_sincos_pos_embed: meshgrid(grid_w, grid_h) puts the column first, rows row-major."""
    rows = [[0.0] * dim] if cls_token else []
    for i in range(h):
        for j in range(w):
            rows.append(hand_1d(dim // 2, j) + hand_1d(dim // 2, i))
    return torch.tensor(rows, dtype=torch.float64)


@pytest.mark.parametrize("grid,cls_token", [((4, 4), True), ((3, 5), False), ((5, 2), True)])
def test_2d_equals_mae_layout(grid, cls_token):
    got = sincos_pos_embed(16, grid, cls_token=cls_token, dtype=torch.float64)
    want = hand_mae_2d(16, *grid, cls_token)
    assert got.shape == want.shape
    assert torch.allclose(got, want, atol=1e-12)


def test_1d_and_3d_split_the_width_per_axis_last_axis_first():
    pos = torch.arange(7)
    assert torch.allclose(sincos_1d(8, pos), torch.tensor([hand_1d(8, p) for p in range(7)], dtype=torch.float64))
    assert torch.equal(sincos_pos_embed(8, 7, dtype=torch.float64), sincos_1d(8, pos))
    emb = sincos_pos_embed(12, (2, 3, 4), dtype=torch.float64)  # 4 dims per axis
    assert emb.shape == (24, 12)
    token = 1 * 12 + 2 * 4 + 3  # (t, h, w) = (1, 2, 3)
    want = hand_1d(4, 3) + hand_1d(4, 2) + hand_1d(4, 1)
    assert emb[token].tolist() == pytest.approx(want, abs=1e-12)


def test_dtype_device_and_errors():
    emb = sincos_pos_embed(32, (2, 2), cls_token=True)
    assert emb.dtype == torch.float32 and emb.shape == (5, 32) and not emb[0].any()
    with pytest.raises(UsageError, match="divisible by 4"):
        sincos_pos_embed(10, (2, 2))
    with pytest.raises(UsageError, match="divisible by 6"):
        sincos_pos_embed(8, (2, 2, 2))
