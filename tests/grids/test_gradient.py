"""Sobel gradient maps: the kernel written out pixel by pixel, flat images, channels and batch independence, and the
per-patch gradient energy (standardised per image, textured patches first)."""

from __future__ import annotations

import pytest
import torch

from geomask.errors import UsageError
from geomask.grids.gradient import patch_gradient_energy, sobel, sobel_magnitude


def _sobel_by_hand(img: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One channel ``[H, W]``, replicate padding, the textbook kernels as cross-correlation."""
    h, w = img.shape
    px = img.tolist()
    kx = [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]]
    gx, gy = [[0.0] * w for _ in range(h)], [[0.0] * w for _ in range(h)]
    for i in range(h):
        for j in range(w):
            for a in range(3):
                for b in range(3):
                    v = px[min(max(i + a - 1, 0), h - 1)][min(max(j + b - 1, 0), w - 1)]
                    gx[i][j] += kx[a][b] * v
                    gy[i][j] += kx[b][a] * v
    return torch.tensor(gx, dtype=img.dtype), torch.tensor(gy, dtype=img.dtype)


def test_sobel_is_the_kernel_written_out_per_channel_and_image():
    x = torch.rand(2, 3, 6, 7, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    gx, gy = sobel(x)
    mag = sobel_magnitude(x)
    for b in range(2):
        for c in range(3):
            hx, hy = _sobel_by_hand(x[b, c])
            torch.testing.assert_close(gx[b, c], hx)
            torch.testing.assert_close(gy[b, c], hy)
            torch.testing.assert_close(mag[b, c], (hx**2 + hy**2).sqrt())


def test_flat_images_have_no_gradient_and_a_vertical_edge_only_a_horizontal_one():
    assert not sobel_magnitude(torch.full((1, 2, 5, 5), 0.3)).any()
    x = torch.zeros(1, 1, 5, 6)
    x[..., 3:] = 1.0
    gx, gy = sobel(x)
    assert not gy.any() and gx[0, 0, :, 2:4].eq(4.0).all() and gx[0, 0, :, :2].eq(0).all()


def test_patch_energy_is_standardised_and_ranks_textured_patches_first():
    x = torch.zeros(2, 1, 8, 8)
    x[0, 0, :4, :4] = torch.rand(4, 4, generator=torch.Generator().manual_seed(1))  # one textured patch
    x[1, 0, 4:, 4:] = torch.rand(4, 4, generator=torch.Generator().manual_seed(2))
    s = patch_gradient_energy(x, 4)
    assert s.shape == (2, 4)
    torch.testing.assert_close(s.mean(1), torch.zeros(2), atol=1e-6, rtol=0)
    torch.testing.assert_close(s.std(1, unbiased=False), torch.ones(2))
    assert s.argmax(1).tolist() == [0, 3]
    assert not patch_gradient_energy(torch.ones(1, 3, 8, 8), 4).any()  # equally flat patches: all zero


def test_bad_input_is_one_line():
    with pytest.raises(UsageError, match=r"float \[B, C, H, W\]"):
        sobel(torch.zeros(2, 3, 4, 4, 4))
