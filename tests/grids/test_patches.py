"""patchify / unpatchify in any rank (MAE's 2-D layout, VideoMAE's tubelets), norm_pix, patch masks at pixel level."""

from __future__ import annotations

import math
import statistics

import pytest
import torch

from geomask.errors import UsageError
from geomask.grids import grid_shape, norm_pix, patch_mask_to_sites, patch_shape, patchify, unpatchify
from geomask.targets import normalize_patches


def gen(seed):
    return torch.Generator().manual_seed(seed)


def test_patch_shape_and_grid():
    assert patch_shape(16, 2) == (16, 16)
    assert patch_shape(16, 3, temporal_patch_size=2) == (2, 16, 16)
    assert patch_shape([2, 4], 2) == (2, 4)
    assert grid_shape((32, 48), (16, 16)) == (2, 3)
    for bad in [lambda: patch_shape(0, 2), lambda: patch_shape([2, 2], 3), lambda: patch_shape([2, 2], 2, 2)]:
        with pytest.raises(UsageError):
            bad()
    with pytest.raises(UsageError, match="multiple"):
        grid_shape((30, 32), (16, 16))


def test_hand_checked_token_order_channel_last():
    # one image, 2 channels, 2 x 4 pixels, 2 x 2 patches: value = 100 c + 10 row + col
    c, r, w = torch.meshgrid(torch.arange(2), torch.arange(2), torch.arange(4), indexing="ij")
    x = (100 * c + 10 * r + w).float().unsqueeze(0)
    t = patchify(x, 2)
    assert t.shape == (1, 2, 8)
    # token 0 = the left patch: pixels (0,0) (0,1) (1,0) (1,1), each (channel 0, channel 1)
    assert t[0, 0].tolist() == [0, 100, 1, 101, 10, 110, 11, 111]
    assert t[0, 1].tolist() == [2, 102, 3, 103, 12, 112, 13, 113]


@pytest.mark.parametrize("channels", [1, 3, 5])
def test_2d_equals_mae_einsum_on_non_square_images(channels):
    x = torch.randn(2, channels, 8, 12, generator=gen(0))
    p, h, w = 4, 2, 3
    mae = torch.einsum("nchpwq->nhwpqc", x.reshape(2, channels, h, p, w, p)).reshape(2, h * w, p * p * channels)
    assert torch.equal(patchify(x, p), mae)
    assert torch.equal(unpatchify(mae, p, (8, 12)), x)


def test_video_tubelets_equal_videomae_rearrange():
    # b c (t p0) (h p1) (w p2) -> b (t h w) (p0 p1 p2 c), written out index by index
    x = torch.randn(1, 2, 4, 4, 6, generator=gen(1))
    t = patchify(x, 2, temporal_patch_size=2)  # patches (2, 2, 2), grid (2, 2, 3)
    assert t.shape == (1, 12, 16)
    for token in [0, 5, 11]:
        gt, gh, gw = token // 6, (token // 3) % 2, token % 3
        want = [
            x[0, ch, 2 * gt + a, 2 * gh + b, 2 * gw + c].item()
            for a in range(2)
            for b in range(2)
            for c in range(2)
            for ch in range(2)
        ]
        assert t[0, token].tolist() == pytest.approx(want)


@pytest.mark.parametrize(
    "shape,patch,temporal",
    [((3, 2, 12), 4, None), ((2, 1, 6, 8), (3, 2), None), ((2, 3, 4, 8, 8), 4, 2), ((1, 2, 4, 4, 6), (2, 2, 3), None)],
)
def test_unpatchify_is_the_exact_inverse(shape, patch, temporal):
    x = torch.randn(shape, generator=gen(2))
    tokens = patchify(x, patch, temporal)
    assert tokens.shape[1] * tokens.shape[2] == math.prod(shape[1:])
    assert torch.equal(unpatchify(tokens, patch, shape[2:], temporal), x)


def test_shape_errors_are_usage_errors():
    with pytest.raises(UsageError, match="multiple"):
        patchify(torch.zeros(1, 3, 10, 16), 4)
    with pytest.raises(UsageError, match=r"\[B, C, \*spatial\]"):
        patchify(torch.zeros(3, 16), 4)
    with pytest.raises(UsageError, match="tokens must be"):
        unpatchify(torch.zeros(1, 5, 48), 4, (8, 8))


def test_norm_pix_is_the_targets_normaliser_over_each_patch():
    x = torch.randn(2, 3, 8, 8, generator=gen(3)) * 5 + 2
    out = norm_pix(x, 4)
    assert torch.equal(out, normalize_patches(patchify(x, 4)))
    # hand formula on one patch: (v - mean) / sqrt(unbiased var + 1e-6), all channels together (MAE)
    vals = patchify(x, 4)[1, 2].double().tolist()
    mean, var = statistics.fmean(vals), statistics.variance(vals)
    want = [(v - mean) / math.sqrt(var + 1e-6) for v in vals]
    assert out[1, 2].double().tolist() == pytest.approx(want, rel=1e-5, abs=1e-5)
    assert out.mean(-1).abs().max() < 1e-5


def test_patch_mask_to_sites_repeats_every_patch():
    mask = torch.tensor([[True, False, False, True, False, True]])  # grid (2, 3)
    pix = patch_mask_to_sites(mask, 2, (2, 3))
    assert pix.shape == (1, 4, 6)
    assert torch.equal(pix[0, ::2, ::2], mask.view(2, 3)) and torch.equal(pix[0, 1::2, 1::2], mask.view(2, 3))
    assert int(pix.sum()) == 3 * 4
    assert patch_mask_to_sites(torch.ones(1, 2, dtype=torch.bool), (2, 1, 3), (1, 2, 1)).shape == (1, 2, 2, 3)
