"""SparK: the loss is SparK's formula written out, masks live on the coarsest grid, every scale is densified with
its own mask token through the shared densify op, the shipped configs build, and a short seeded training run
beats predicting every masked patch by its own mean on held-out images."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import yaml

from geomask.errors import UsageError
from geomask.grids import GridBatch, patch_mask_to_sites
from geomask.masking import TokenGridLayout
from geomask.methods import build_method
from geomask.methods.spark import SparK, full_grid
from geomask.sparse import SparseTensor
from geomask.sparse.densify import densify

pytestmark = pytest.mark.usefixtures("one_thread")

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
# stride 4 at the end (stem 3x3/1, no pool, three stages): 16 x 16 images have a 4 x 4 coarsest grid
TINY = {"backbone": "tiny", "widths": (8, 16, 32), "layers": (1, 1, 1), "stem_width": 8, "decoder_width": 32}


def build(**kw) -> SparK:
    torch.manual_seed(0)
    return build_method("spark", **{**TINY, **kw})


def test_loss_is_sparks_formula_written_out():
    m = build().eval()
    x = torch.rand(3, 3, 16, 24, generator=torch.Generator().manual_seed(2))  # non-square: a 4 x 6 grid
    mask = m.masker(TokenGridLayout(3, m.grid(x)), torch.Generator().manual_seed(3)).view(3, -1)
    assert m.grid(x) == (4, 6) and mask.sum(1).tolist() == [14, 14, 14]  # round(0.6 * 24)
    out = m.reconstruct(x, mask)
    # SparK's forward: patchify by the downsample ratio, normalise every patch (unbiased var, eps 1e-6), mean
    # squared error per patch, averaged over the masked patches
    t = x.reshape(3, 3, 4, 4, 6, 4).permute(0, 2, 4, 3, 5, 1).reshape(3, 24, 48)
    t = (t - t.mean(-1, keepdim=True)) / (t.var(-1, keepdim=True) + 1e-6) ** 0.5
    per_patch = ((out.pred - t) ** 2).mean(-1)
    torch.testing.assert_close(out.target, t)
    torch.testing.assert_close(out.loss, (per_patch * mask).sum() / mask.sum())


def test_masked_pixels_do_not_reach_the_prediction():
    m = build().eval()
    x = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    mask = torch.zeros(2, 16, dtype=torch.bool)
    mask[:, [0, 5, 6, 15]] = True
    y = x.clone()
    y[patch_mask_to_sites(mask, 4, (4, 4)).unsqueeze(1).expand_as(y)] = 7.0  # only masked pixels change
    torch.testing.assert_close(m.reconstruct(x, mask).pred, m.reconstruct(y, mask).pred)
    z = x.clone()
    z[:, :, 0:4, 4:8] += 1.0  # a visible cell (1: row 0, column 1) changes: the prediction does
    assert not torch.allclose(m.reconstruct(x, mask).pred, m.reconstruct(z, mask).pred)


def test_every_scale_is_densified_with_its_own_mask_token():
    m = build()
    assert len(m.mask_tokens) == 3 and [t.numel() for t in m.mask_tokens] == [32, 16, 8]
    x = torch.rand(2, 3, 16, 16)
    loss = m(GridBatch(x, 4), torch.Generator().manual_seed(0))["loss"]
    loss.backward()
    assert all(t.grad is not None and t.grad.abs().sum() > 0 for t in m.mask_tokens)
    # the shared op: visible rows keep their features, the others take the token
    sites = full_grid(1, (2, 2), 4, torch.device("cpu"))
    part = SparseTensor(sites.coords[[3, 0]], torch.tensor([[3.0, 3.0], [1.0, 1.0]]), 4)
    feats, hidden = densify(part, sites, torch.tensor([9.0, 9.0]))
    assert feats.tolist() == [[1, 1], [9, 9], [9, 9], [3, 3]] and hidden.tolist() == [False, True, True, False]


def test_features_are_the_dense_twins_pooled_features():
    m = build().eval()
    x = torch.rand(2, 3, 16, 16)
    feats = m.features(GridBatch(x, 4))
    assert feats.shape == (2, 32)
    torch.testing.assert_close(feats, m.encoder.to_dense().pooled(x), rtol=1e-4, atol=1e-5)


def test_bad_images_are_one_line_errors():
    m = build()
    with pytest.raises(UsageError, match="multiples of the encoder's stride 4, got 18 x 16"):
        m(torch.rand(1, 3, 18, 16), torch.Generator().manual_seed(0))
    with pytest.raises(UsageError, match="2-D images"):
        m(torch.rand(1, 3, 8, 8, 8), torch.Generator().manual_seed(0))


@pytest.mark.parametrize("config", ["spark_cpu", "spark"])
def test_shipped_configs_build_and_take_a_step(config):
    spec = yaml.safe_load((CONFIGS / f"{config}.yaml").read_text())
    assert spec["data"]["kind"] == ("shapes" if config.endswith("_cpu") else "images")
    kw = {k: v for k, v in spec["method"].items() if k != "name"}
    assert kw["masker"] == {"name": "random_tokens", "ratio": 0.6} and kw["loss"] == {"name": "l2"}
    size = 32
    if config == "spark":
        assert kw["backbone"] == "resnet50" and kw["decoder_width"] == 512
        kw.update(widths=[2, 4, 4, 8], stem_width=4, layers=[1, 1, 1, 1], decoder_width=32)  # the rest as shipped
        size = 64
    torch.manual_seed(0)
    m = build_method("spark", **kw)
    assert m.ratio == (8 if config == "spark_cpu" else 32)
    out = m(GridBatch(torch.rand(2, 3, size, size), 4), torch.Generator().manual_seed(0))
    assert torch.isfinite(out["loss"]) and abs(float(out["masked_ratio"]) - 0.6) < 0.1


def gratings(n: int, seed: int, size: int = 16) -> torch.Tensor:
    """Coloured sine gratings of random orientation, frequency and phase (a masked cell follows from the rest)."""
    g = torch.Generator().manual_seed(seed)
    theta = torch.rand(n, 1, 1, 1, generator=g) * 2 * math.pi
    freq = 0.15 + 0.25 * torch.rand(n, 1, 1, 1, generator=g)
    phase = torch.rand(n, 1, 1, 1, generator=g) * 2 * math.pi
    colour = torch.rand(n, 3, 1, 1, generator=g)
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    return (0.5 + 0.5 * torch.sin(freq * (xx * torch.cos(theta) + yy * torch.sin(theta)) + phase)) * colour


def test_training_beats_predicting_each_masked_patch_by_its_mean():
    m = build()
    opt = torch.optim.AdamW(m.parameters(), lr=3e-3, weight_decay=0.05, betas=(0.9, 0.95))
    for step in range(60):
        loss = m(gratings(32, step), torch.Generator().manual_seed(10_000 + step))["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    m.eval()
    test = gratings(128, 999)
    mask = m.masker(TokenGridLayout(128, m.grid(test)), torch.Generator().manual_seed(5)).view(128, -1)
    with torch.no_grad():
        out = m.reconstruct(test, mask)
        baseline = float(m.criterion(torch.zeros_like(out.target), out.target, mask))  # the mean, in norm_pix units
    assert baseline > 0.9
    assert float(out.loss) < 0.7 * baseline, (float(out.loss), baseline)
