"""DMJD: the two-branch loss written out by hand, the views' visible sets really disjoint (and their masked sets
covering every image), the shipped configs, and a short seeded run whose held-out masked HOG loss beats
predicting the training set's mean HOG."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import yaml

from geomask.grids import GridBatch
from geomask.grids.hog import hog_patches
from geomask.methods import build_method
from geomask.methods.dmjd import DMJD

pytestmark = pytest.mark.usefixtures("one_thread")

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
TINY = {"image_size": 16, "patch_size": 4, "dim": 32, "depth": 1, "heads": 2}
DEC = {"decoder_dim": 16, "decoder_depth": 1, "decoder_heads": 2}


def test_loss_is_the_two_branch_formula_written_out():
    torch.manual_seed(0)
    m = build_method("dmjd", **TINY, **DEC, theta=0.7)
    x = torch.rand(3, 3, 16, 16)
    mask = m.views_mask(x, torch.Generator().manual_seed(1))
    out = m.run(x, mask)
    hog = hog_patches(x, 4, 2, 9, "cell").repeat(2, 1, 1)  # [K B, L, P], view-major
    p = hog.size(-1)
    masked = ((out.pred - hog) ** 2 * mask[..., None]).sum() / (mask.sum() * p)
    vis_target = torch.stack([hog[n][~mask[n]] for n in range(6)])  # each view's visible tokens, grid order
    diff = (out.pred_visible - vis_target).abs()
    visible = torch.where(diff < 2.0, 0.5 * diff**2 / 2.0, diff - 1.0).mean()  # smooth L1, beta 2
    torch.testing.assert_close(out.target, hog)
    torch.testing.assert_close(out.masked, masked)
    torch.testing.assert_close(out.visible, visible)
    torch.testing.assert_close(out.loss, masked + 0.7 * visible)
    torch.testing.assert_close(out.visible, F.smooth_l1_loss(out.pred_visible, vis_target, beta=2.0))


def test_views_are_disjoint_and_cover_every_image():
    m = build_method("dmjd", **TINY, **DEC, views=2, mask_ratio=0.6)
    x = torch.rand(5, 3, 16, 16)
    mask = m.views_mask(x, torch.Generator().manual_seed(3)).view(2, 5, 16)
    assert (mask.sum(-1) == round(0.6 * 16)).all()  # every view at the full ratio
    assert not (~mask[0] & ~mask[1]).any()  # visible sets disjoint
    assert int((~mask).sum()) == 2 * 5 * (16 - round(0.6 * 16))
    three = build_method("dmjd", **TINY, **DEC, views=3, mask_ratio=0.75)  # 4 visible of 16, 3 views
    m3 = three.views_mask(x, torch.Generator().manual_seed(4)).view(3, 5, 16)
    shown = (~m3).long().sum(0)
    assert shown.max() == 1 and int(shown.sum()) == 3 * 5 * 4
    # the encoder sees exactly each view's visible tokens
    out = m.run(x, mask.view(10, 16))
    assert torch.equal(torch.zeros(10, 16, dtype=torch.bool).scatter(1, out.ids_keep, True), ~mask.view(10, 16))
    with pytest.raises(Exception, match="cannot be disjoint"):
        build_method("dmjd", **TINY, **DEC, views=3, mask_ratio=0.6)(x, torch.Generator().manual_seed(0))


def test_same_seed_same_loss_and_no_side_effects():
    torch.manual_seed(0)
    m = build_method("dmjd", **TINY, **DEC)
    x = GridBatch(torch.rand(2, 3, 16, 16), (4, 4))
    a = m(x, torch.Generator().manual_seed(5))["loss"]
    b = m(x, torch.Generator().manual_seed(5))["loss"]
    assert torch.equal(a, b)


@pytest.mark.parametrize("config", ["dmjd_cpu", "dmjd"])
def test_shipped_configs_build_and_take_a_step(config):
    spec = yaml.safe_load((CONFIGS / f"{config}.yaml").read_text())
    assert spec["data"]["kind"] == ("shapes" if config.endswith("_cpu") else "images")
    kw = {k: v for k, v in spec["method"].items() if k != "name"}
    if config == "dmjd":
        assert (kw["image_size"], kw["patch_size"], kw["dim"], kw["depth"], kw["heads"]) == (224, 16, 768, 12, 12)
        assert kw["masker"] == {"name": "disjoint", "ratio": 0.6, "views": 2, "disjoint": "visible"}
        assert (kw["hog_cell"], kw["hog_bins"]) == (8, 9)
        kw.update(dim=48, depth=1, heads=3, decoder_dim=32, decoder_depth=1, decoder_heads=2)
    torch.manual_seed(0)
    m = build_method("dmjd", **kw)
    assert isinstance(m, DMJD) and m.views == 2
    assert m.decoder.pred.out_features == 108  # 2 x 2 cells x 3 channels x 9 bins, as MaskFeat at 16 px
    size = m.encoder.image_grid[0] * m.encoder.patch[0]
    x = torch.rand(2, 3, size, size)
    out = m(GridBatch(x, m.encoder.patch), torch.Generator().manual_seed(0))
    assert torch.isfinite(out["loss"]) and set(out) >= {"loss", "masked", "visible"}
    assert m.features(x).shape == (2, m.encoder.dim)


def gratings(n: int, seed: int, size: int = 16) -> torch.Tensor:
    """Coloured sine gratings of random orientation, frequency and phase: every cell's normalised HOG peaks at the
    image's one orientation, which the visible patches show."""
    g = torch.Generator().manual_seed(seed)
    theta = torch.rand(n, 1, 1, 1, generator=g) * math.pi
    freq = 0.3 + 0.4 * torch.rand(n, 1, 1, 1, generator=g)
    phase = torch.rand(n, 1, 1, 1, generator=g) * 2 * math.pi
    colour = 0.3 + 0.7 * torch.rand(n, 3, 1, 1, generator=g)
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    return (0.5 + 0.5 * torch.sin(freq * (xx * torch.cos(theta) + yy * torch.sin(theta)) + phase)) * colour


def test_training_beats_predicting_the_mean_hog_on_held_out_images():
    torch.manual_seed(0)
    m = build_method(
        "dmjd",
        **{**TINY, "dim": 64, "depth": 2, "heads": 4},
        decoder_dim=32,
        decoder_depth=1,
        decoder_heads=2,
        hog_cell=4,
    )
    opt = torch.optim.AdamW(m.parameters(), lr=2e-3, weight_decay=0.05, betas=(0.9, 0.95))
    for step in range(200):
        loss = m(gratings(16, step), torch.Generator().manual_seed(10_000 + step))["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    m.eval()
    train_mean = m.hog_targets(gratings(512, 123)).mean((0, 1))  # the baseline: the training set's mean HOG
    test = gratings(128, 999)
    with torch.no_grad():
        out = m.run(test, m.views_mask(test, torch.Generator().manual_seed(7)))
    baseline = m.criterion(train_mean.expand_as(out.target), out.target, out.mask)
    assert out.masked < 0.9 * baseline, (float(out.masked), float(baseline))  # measured 0.076 vs 0.094
