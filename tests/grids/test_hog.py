"""HOG in torch: against a pixel-by-pixel hand loop, known orientations, the patch layout and its normalisations,
and scikit-image's ``hog`` where it is installed."""

from __future__ import annotations

import math

import pytest
import torch

from geomask.errors import UsageError
from geomask.grids.hog import hog, hog_dim, hog_gradients, hog_patches, l2_normalize

pytestmark = pytest.mark.usefixtures("one_thread")


def hand_hog(img: torch.Tensor, bins: int, cell: int) -> torch.Tensor:
    """One channel ``[H, W]`` → ``[H // cell, W // cell, bins]``, one pixel at a time."""
    h, w = img.shape
    nr, nc = h // cell, w // cell
    out = torch.zeros(nr, nc, bins, dtype=torch.float64)
    for i in range(nr * cell):
        for j in range(nc * cell):
            gr = float(img[i + 1, j] - img[i - 1, j]) if 0 < i < h - 1 else 0.0
            gc = float(img[i, j + 1] - img[i, j - 1]) if 0 < j < w - 1 else 0.0
            theta = math.degrees(math.atan2(gr, gc)) % 180.0
            k = min(int(theta // (180.0 / bins)), bins - 1)
            out[i // cell, j // cell, k] += math.hypot(gr, gc)
    return out / cell**2


def test_hog_equals_a_hand_loop_per_channel():
    x = torch.rand(2, 3, 7, 9, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    got = hog(x, bins=9, cell=2)
    assert got.shape == (2, 3, 3, 4, 9)
    for b in range(2):
        for c in range(3):
            torch.testing.assert_close(got[b, c], hand_hog(x[b, c], 9, 2))


def test_gradients_are_centred_differences_zero_on_the_border():
    x = torch.arange(20.0).view(1, 1, 4, 5) ** 2
    g_row, g_col = hog_gradients(x)
    assert float(g_row[0, 0, 1, 2]) == float(x[0, 0, 2, 2] - x[0, 0, 0, 2])
    assert float(g_col[0, 0, 2, 3]) == float(x[0, 0, 2, 4] - x[0, 0, 2, 2])
    assert g_row[..., 0, :].abs().sum() == 0 and g_row[..., -1, :].abs().sum() == 0
    assert g_col[..., 0].abs().sum() == 0 and g_col[..., -1].abs().sum() == 0


@pytest.mark.parametrize(("direction", "expected"), [("columns", 0), ("rows", 4), ("diagonal", 2)])
def test_a_ramp_fills_the_bin_of_its_gradient_direction(direction, expected):
    i, j = torch.meshgrid(torch.arange(12.0), torch.arange(12.0), indexing="ij")
    ramp = {"columns": j, "rows": i, "diagonal": i + j}[direction]  # 0°, 90°, 45°
    h = hog(ramp.view(1, 1, 12, 12), bins=9, cell=4)[0, 0, 1, 1]  # an inner cell: no border pixels
    assert int(h.argmax()) == expected and float(h.sum()) == pytest.approx(float(h[expected]))


def test_patches_follow_the_grid_and_the_normalisations():
    x = torch.rand(2, 3, 8, 12, generator=torch.Generator().manual_seed(1))
    raw = hog(x, 9, 2)  # [2, 3, 4, 6, 9]
    p = hog_patches(x, patch=4, cell=2, norm="none")
    assert p.shape == (2, 6, hog_dim(3, 4, 2)) == (2, 6, 108)
    # patch (row 1, column 2) of image 1: cells rows 2-3, columns 4-5, ordered (cell row, cell column, channel, bin)
    expected = raw[1, :, 2:4, 4:6].permute(1, 2, 0, 3).reshape(-1)
    torch.testing.assert_close(p[1, 1 * 3 + 2], expected)
    cell = hog_patches(x, 4, 2, norm="cell").view(2, 6, 4, 3, 9)
    torch.testing.assert_close(cell.norm(dim=-1), torch.ones(2, 6, 4, 3), atol=1e-3, rtol=0)
    patch = hog_patches(x, 4, 2, norm="patch").view(2, 6, 2, 2, 3, 9)
    torch.testing.assert_close(patch.square().sum((2, 3, 5)).sqrt(), torch.ones(2, 6, 3), atol=1e-3, rtol=0)
    torch.testing.assert_close(l2_normalize(torch.zeros(4, 9)), torch.zeros(4, 9))  # flat cells stay 0


def test_batched_equals_one_image_at_a_time():
    x = torch.rand(4, 3, 16, 16, generator=torch.Generator().manual_seed(2))
    together = hog_patches(x, 8, 4)
    alone = torch.cat([hog_patches(x[i : i + 1], 8, 4) for i in range(4)])
    torch.testing.assert_close(together, alone)


def test_bad_input_is_one_clear_error():
    with pytest.raises(UsageError, match="float images"):
        hog(torch.zeros(3, 8, 8))
    with pytest.raises(UsageError, match="multiple of the cell"):
        hog_patches(torch.zeros(1, 3, 8, 8), patch=4, cell=3)
    with pytest.raises(UsageError, match="whole 4 x 4 patches"):
        hog_patches(torch.zeros(1, 3, 10, 8), patch=4, cell=2)
    with pytest.raises(UsageError, match="norm"):
        hog_patches(torch.zeros(1, 3, 8, 8), 4, 2, norm="l1")


def test_matches_scikit_image_hog():
    feature = pytest.importorskip("skimage.feature", reason="scikit-image is not installed in this venv")
    img = torch.rand(24, 32, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    ref = feature.hog(
        img.numpy(),
        orientations=9,
        pixels_per_cell=(8, 8),
        cells_per_block=(1, 1),
        block_norm="L2",
        feature_vector=False,
    )  # [3, 4, 1, 1, 9], each cell L2-normalised
    ours = l2_normalize(hog(img.view(1, 1, 24, 32), 9, 8))[0, 0]
    torch.testing.assert_close(ours, torch.from_numpy(ref).view(3, 4, 9), atol=1e-6, rtol=1e-5)
