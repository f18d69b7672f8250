"""``reconstruct_pixels(batch, generator) -> (masked_input, reconstruction)`` of the image methods that cannot use
``geomask eval images``' generic path: SelectiveMAE (PSTS mask, decoder queries in groups of R), Uni4Eye (the 3-D
token grid of a 2-D image) and DMJD (HOG, not pixels: refused in one line).  Visible pixels are kept, masked ones are
the decoder's prediction mapped back from ``norm_pix`` with each patch's own mean and variance."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

from geomask.errors import UsageError
from geomask.eval.images import reconstruct
from geomask.grids import patchify, unpatchify
from geomask.masking import TokenGridLayout
from geomask.methods import build_method
from geomask.nn.vit import visible_ids

_spec = importlib.util.spec_from_file_location("method_cases", Path(__file__).with_name("method_cases.py"))
cases = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(cases)

pytestmark = pytest.mark.usefixtures("one_thread")


def build(name: str, **kw):
    torch.manual_seed(0)
    return build_method(name, **{**cases.CASES[name], **kw}).eval()


def images(n: int = 3) -> torch.Tensor:
    return 0.1 + torch.rand(n, 3, 16, 16, generator=torch.Generator().manual_seed(7))  # no pixel is 0


def unnorm(pred: torch.Tensor, raw: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """``norm_pix`` undone with each patch's own mean and (unbiased) variance, written out."""
    mean = raw.mean(-1, keepdim=True)
    var = ((raw - mean) ** 2).sum(-1, keepdim=True) / (raw.size(-1) - 1)
    return pred * (var + eps).sqrt() + mean


def pixels_of(mask: torch.Tensor, x: torch.Tensor, patch: int) -> torch.Tensor:
    g = x.size(2) // patch
    return mask.view(-1, 1, g, g).repeat_interleave(patch, 2).repeat_interleave(patch, 3).expand_as(x)


def check_kept_and_predicted(masked, shown, x, mask, patch, expected):
    pix = pixels_of(mask, x, patch)
    assert masked.shape == shown.shape == x.shape
    assert torch.equal(masked, x.masked_fill(pix, 0.0))  # the masked input: masked pixels at 0, the rest as given
    assert torch.equal(shown[~pix], x[~pix])  # visible pixels kept
    torch.testing.assert_close(shown, torch.where(pix, expected, x), rtol=1e-5, atol=1e-5)
    assert (shown[pix] - x[pix]).abs().mean() > 1e-3  # masked pixels predicted, not copied


@pytest.mark.parametrize("ratio", [1.0, 0.25], ids=["one_group", "groups_of_R"])
def test_selective_mae_keeps_visible_pixels_and_predicts_every_masked_patch(ratio):
    m = build("selective_mae", reconstruct_ratio=ratio)
    x = images()
    masked, shown = m.reconstruct_pixels(x, torch.Generator().manual_seed(3))
    mask, _ = m.draw(x, torch.Generator().manual_seed(3))  # the same draw
    n = mask.size(1)
    assert int(mask[0].sum()) == round(0.85 * n)
    p = m.encode(x, mask)
    ids, _ = visible_ids(~mask)  # every masked patch (equal counts)
    r = max(round(ratio * n), 1)
    raw = patchify(x, 2)
    pred = torch.zeros_like(raw)
    with torch.no_grad():
        for start in range(0, ids.size(1), r):  # the decoder sees R queries at a time, as in training
            sel = ids[:, start : start + r]
            out = m.decoder(p.latent, p.ids_keep, sel, p.grid, p.padding)
            pred.scatter_(1, sel[..., None].expand(-1, -1, raw.size(-1)), out)
    expected = unpatchify(unnorm(pred, raw), 2, (16, 16))
    check_kept_and_predicted(masked, shown, x, mask, 2, expected)
    assert r == (n if ratio == 1.0 else 16) and (ratio == 1.0 or ids.size(1) > r)  # one group / several
    got = reconstruct(m, x, torch.Generator().manual_seed(3))  # what geomask eval images draws
    assert torch.equal(got[0], masked) and torch.equal(got[1], shown)


def test_uni4eye_keeps_visible_pixels_and_predicts_the_masked_ones():
    m = build("uni4eye")
    x = images()
    masked, shown = m.reconstruct_pixels(x, torch.Generator().manual_seed(3))
    mask = m.masker(TokenGridLayout(3, (8, 8)), torch.Generator().manual_seed(3)).view(3, -1)
    assert int(mask[0].sum()) == 48  # 75 % of the 8 x 8 patches of a 2-D image
    with torch.no_grad():
        p = m.encode(x, mask)
        pred = m.decoder(p.latent, p.ids_keep, p.grid, p.padding)
    expected = unpatchify(unnorm(pred, patchify(x, 2)), 2, (16, 16))
    check_kept_and_predicted(masked, shown, x, mask, 2, expected)
    got = reconstruct(m, x, torch.Generator().manual_seed(3))
    assert torch.equal(got[0], masked) and torch.equal(got[1], shown)


def test_uni4eye_without_norm_pix_shows_the_raw_prediction():
    m = build("uni4eye", norm_pix=False)
    x = images(2)
    masked, shown = m.reconstruct_pixels(x, torch.Generator().manual_seed(1))
    mask = m.masker(TokenGridLayout(2, (8, 8)), torch.Generator().manual_seed(1)).view(2, -1)
    with torch.no_grad():
        p = m.encode(x, mask)
        expected = unpatchify(m.decoder(p.latent, p.ids_keep, p.grid, p.padding), 2, (16, 16))
    check_kept_and_predicted(masked, shown, x, mask, 2, expected)


def test_uni4eye_refuses_widths_its_3d_positions_cannot_take_in_one_line():
    with pytest.raises(UsageError, match=r"^uni4eye: dim must be a multiple of 6 \(3-D sin-cos positions\), got 64$"):
        build("uni4eye", dim=64)
    with pytest.raises(UsageError, match=r"^uni4eye: decoder_dim must be a multiple of 6 .*got 16$"):
        build("uni4eye", decoder_dim=16)


def test_dmjd_declares_it_has_no_pixels_to_draw():
    m = build("dmjd")
    with pytest.raises(UsageError, match=r"^dmjd predicts HOG features, not pixels: it has no pixel reconstruction"):
        reconstruct(m, images(2), torch.Generator().manual_seed(0))
