"""Uni4Eye: the dual loss against its formula written out (norm_pix image patches, Sobel gradient-map patches), the
unified patch embedding encoding 2-D images and 3-D volumes with one module, the shipped configs, and a short seeded
training run whose gradient branch beats a constant-map baseline on held-out images."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import yaml

from geomask.errors import UsageError
from geomask.grids import GridBatch
from geomask.masking import TokenGridLayout
from geomask.methods import build_method
from geomask.methods.uni4eye import Uni4Eye

pytestmark = pytest.mark.usefixtures("one_thread")

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
TINY = {"image_size": 16, "patch_size": 4, "depth_patch": 2, "dim": 48, "depth": 1, "heads": 3}
TINY_DEC = {"decoder_dim": 24, "decoder_depth": 1, "decoder_heads": 2}


def tiny(**kw) -> Uni4Eye:
    torch.manual_seed(0)
    return build_method("uni4eye", **{**TINY, **TINY_DEC, **kw})


def gratings(n: int, seed: int, size: int = 16) -> torch.Tensor:
    """Coloured sine gratings of random orientation, frequency and phase."""
    g = torch.Generator().manual_seed(seed)
    theta = torch.rand(n, 1, 1, 1, generator=g) * 2 * math.pi
    freq = 0.15 + 0.25 * torch.rand(n, 1, 1, 1, generator=g)
    phase = torch.rand(n, 1, 1, 1, generator=g) * 2 * math.pi
    colour = torch.rand(n, 3, 1, 1, generator=g)
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    return (0.5 + 0.5 * torch.sin(freq * (xx * torch.cos(theta) + yy * torch.sin(theta)) + phase)) * colour


def test_loss_is_image_plus_weighted_gradient_written_out():
    m = tiny(gradient_weight=0.3).eval()
    x = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(2))
    out = m(x, torch.Generator().manual_seed(3))
    mask = m.masker(TokenGridLayout(2, (4, 4)), torch.Generator().manual_seed(3)).view(2, 16)  # the same draw
    p = m.encode(x, mask)
    pred = m.decoder(p.latent, p.ids_keep, p.grid, p.padding)
    g_pred = m.gradient_decoder(p.latent, p.ids_keep, p.grid, p.padding)
    t = x.reshape(2, 3, 4, 4, 4, 4).permute(0, 2, 4, 3, 5, 1).reshape(2, 16, 48)
    t = (t - t.mean(-1, keepdim=True)) / (t.var(-1, keepdim=True) + 1e-6) ** 0.5
    pad = torch.nn.functional.pad(x, (1, 1, 1, 1), mode="replicate")
    gx = (pad[..., :-2, 2:] + 2 * pad[..., 1:-1, 2:] + pad[..., 2:, 2:]) - (
        pad[..., :-2, :-2] + 2 * pad[..., 1:-1, :-2] + pad[..., 2:, :-2]
    )
    gy = (pad[..., 2:, :-2] + 2 * pad[..., 2:, 1:-1] + pad[..., 2:, 2:]) - (
        pad[..., :-2, :-2] + 2 * pad[..., :-2, 1:-1] + pad[..., :-2, 2:]
    )
    g = (gx**2 + gy**2).sqrt().reshape(2, 3, 4, 4, 4, 4).permute(0, 2, 4, 3, 5, 1).reshape(2, 16, 48)
    image = ((pred - t) ** 2).mean(-1)[mask].mean()
    gradient = ((g_pred - g) ** 2).mean(-1)[mask].mean()
    torch.testing.assert_close(out["reconstruction"], image)
    torch.testing.assert_close(out["gradient"], gradient)
    torch.testing.assert_close(out["loss"], image + 0.3 * gradient)


def test_one_module_encodes_images_and_volumes():
    m = tiny().eval()
    enc = m.encoder
    image, volume = torch.rand(2, 3, 16, 16), torch.rand(2, 3, 6, 16, 16)
    assert enc(image).shape == (2, 1 + 16, 48)
    assert enc(volume).shape == (2, 1 + 3 * 16, 48)  # 6 / 2 slices of 4 x 4 patches
    assert m.features(volume).shape == (2, 48) and m.features(image).shape == (2, 48)
    # an image is a depth-1 volume: its tokens take the positions of a volume's first slice
    pos_image = enc.positions(enc.grid(image), torch.float32, torch.device("cpu"))
    pos_volume = enc.positions(enc.grid(volume), torch.float32, torch.device("cpu"))
    torch.testing.assert_close(pos_image, pos_volume[: 1 + 16])
    # the embedding switches by rank: images through patch_embed_2d, volumes through the 3-D patch_embed
    enc.zero_grad()
    enc(image).sum().backward()
    assert enc.patch_embed_2d.weight.grad.abs().sum() > 0 and enc.patch_embed.weight.grad is None
    enc(volume).sum().backward()
    assert enc.patch_embed.weight.grad.abs().sum() > 0
    # visible-only encoding of a volume (MAE's ids_keep) works as for images
    assert enc(volume, ids_keep=torch.tensor([[0, 5, 40], [1, 2, 3]])).shape == (2, 4, 48)
    with pytest.raises(UsageError, match="uni4eye pretrains on 2-D images"):
        m(volume, torch.Generator().manual_seed(0))
    with pytest.raises(UsageError, match=r"images \[B, 3, H, W\] or volumes"):
        enc(torch.rand(2, 3, 16))


@pytest.mark.parametrize("config", ["uni4eye_cpu", "uni4eye"])
def test_shipped_configs_build_and_take_a_step(config):
    spec = yaml.safe_load((CONFIGS / f"{config}.yaml").read_text())
    assert spec["data"]["kind"] == ("shapes" if config.endswith("_cpu") else "images")
    kw = {k: v for k, v in spec["method"].items() if k != "name"}
    assert kw["masker"] == {"name": "random_tokens", "ratio": 0.75} and kw["loss"] == {"name": "l2"}
    if config == "uni4eye":
        assert (kw["image_size"], kw["patch_size"], kw["dim"], kw["depth"], kw["heads"]) == (224, 16, 768, 12, 12)
        kw.update(dim=48, depth=1, heads=3, decoder_dim=24, decoder_depth=1, decoder_heads=2)
    torch.manual_seed(0)
    m = build_method(spec["method"]["name"], **kw)
    size = m.encoder.image_grid[1] * m.encoder.patch_2d[0]
    out = m(GridBatch(torch.rand(2, 3, size, size), m.encoder.patch_2d), torch.Generator().manual_seed(0))
    assert torch.isfinite(out["loss"])


def test_training_beats_a_constant_gradient_map_on_held_out_images():
    m = tiny(dim=60, heads=4, depth=2, gradient_weight=10.0)  # the Sobel map is small: weigh it up
    test = gratings(128, 999)
    with torch.no_grad():  # baseline: every masked gradient patch predicted by the training images' mean map value
        constant = float(m.gradient_targets(gratings(256, 123)).mean())
        mask = m.masker(TokenGridLayout(128, (4, 4)), torch.Generator().manual_seed(5)).view(128, 16)
        g = m.gradient_targets(test)
        baseline = float(((g - constant) ** 2).mean(-1)[mask].mean())
    opt = torch.optim.AdamW(m.parameters(), lr=3e-3, weight_decay=0.05, betas=(0.9, 0.95))
    for step in range(120):
        loss = m(gratings(48, step), torch.Generator().manual_seed(10_000 + step))["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    m.eval()
    with torch.no_grad():
        out = m(test, torch.Generator().manual_seed(5))  # the same mask as the baseline's
    assert out["gradient"] < 0.8 * baseline, (float(out["gradient"]), baseline)
    assert out["reconstruction"] < 0.8, float(out["reconstruction"])  # the patch-mean baseline is about 1
