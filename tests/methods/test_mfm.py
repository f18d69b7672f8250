"""MFM: the corruption and the loss written out with NumPy's FFT, masked frequencies never reaching the encoder, the
shipped configs, and a short seeded training run that beats returning the corrupted input."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from geomask.errors import UsageError
from geomask.grids import GridBatch
from geomask.losses.frequency import spectrum
from geomask.masking import TokenGridLayout
from geomask.masking.image_frequency import frequency_filter
from geomask.methods import build_method
from geomask.methods.mfm import MFM, token_scaled_radius

pytestmark = pytest.mark.usefixtures("one_thread")

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
TINY = {"image_size": 16, "patch_size": 4, "dim": 32, "depth": 1, "heads": 2}


def tiny(**kw) -> MFM:
    torch.manual_seed(0)
    return build_method("mfm", **{**TINY, "masker": {"name": "frequency", "radius": 3.0}, **kw}).eval()


def test_loss_is_mfms_formula_written_out():
    m = tiny()
    x = torch.rand(4, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    mask = m.masker(TokenGridLayout(4, (16, 16)), torch.Generator().manual_seed(2)).view(4, 16, 16)
    assert 0 < int(mask.sum()) < mask.numel()  # low- and high-pass samples both drawn
    out = m.reconstruct(x, mask)
    # MFM's frequency_transform: fft2, fftshift, keep the unmasked frequencies, ifftshift, ifft2, real part
    keep = ~mask.numpy()[:, None]
    corrupted = np.fft.ifft2(
        np.fft.ifftshift(np.fft.fftshift(np.fft.fft2(x.numpy()), axes=(-2, -1)) * keep, axes=(-2, -1))
    )
    np.testing.assert_allclose(out.corrupted.numpy(), corrupted.real, atol=1e-5)
    with torch.no_grad():
        pred = m.predict(out.corrupted)
    torch.testing.assert_close(out.pred, pred)
    # its FrequencyLoss (loss_gamma 1, no weight matrix, ortho FFT) on the masked frequencies / their number / C
    spec = lambda t: np.fft.fftshift(np.fft.fft2(t.double().numpy(), norm="ortho"), axes=(-2, -1))  # noqa: E731
    dist = np.abs(spec(pred) - spec(x))
    m_ = mask.numpy()[:, None]
    want = (dist * m_).sum() / m_.sum() / 3
    assert out.loss.item() == pytest.approx(want, rel=1e-4)


def test_masked_frequencies_never_reach_the_encoder():
    m = tiny()
    g = torch.Generator().manual_seed(3)
    x = torch.rand(4, 3, 16, 16, generator=g)
    mask = m.masker(TokenGridLayout(4, (16, 16)), torch.Generator().manual_seed(4)).view(4, 16, 16)
    noise = torch.randn(4, 3, 16, 16, generator=g)
    only_masked = noise - frequency_filter(noise, mask)  # noise on the masked frequencies alone
    a, b = m.reconstruct(x, mask), m.reconstruct(x + only_masked, mask)
    torch.testing.assert_close(a.corrupted, b.corrupted, atol=1e-5, rtol=0)
    torch.testing.assert_close(a.pred, b.pred, atol=1e-4, rtol=0)
    assert not torch.allclose(a.loss, b.loss)  # while the target did change


def test_a_low_pass_sample_keeps_the_disc_and_a_high_pass_one_removes_it():
    x = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(5))
    for mode in ("low_pass", "high_pass"):
        m = tiny(masker={"name": "frequency", "radius": 3.0, "mode": mode})
        out = m.reconstruct(x, m.masker(TokenGridLayout(2, (16, 16)), torch.Generator().manual_seed(0)))
        kept = spectrum(out.corrupted)[~out.mask]
        torch.testing.assert_close(kept, spectrum(x)[~out.mask], atol=1e-5, rtol=0)
        assert spectrum(out.corrupted)[out.mask].abs().max() < 1e-5
        centre = out.mask[:, 8, 8]  # the zero frequency is inside every disc
        assert bool((centre == (mode == "high_pass")).all())


@pytest.mark.parametrize("config", ["mfm_cpu", "mfm"])
def test_shipped_configs_build_and_take_a_step(config):
    spec = yaml.safe_load((CONFIGS / f"{config}.yaml").read_text())
    assert spec["data"]["kind"] == ("shapes" if config.endswith("_cpu") else "images")
    kw = {k: v for k, v in spec["method"].items() if k != "name"}
    assert kw["loss"] == {"name": "frequency"} and kw["masker"]["name"] == "frequency"
    if config == "mfm":
        assert (kw["image_size"], kw["patch_size"], kw["dim"], kw["depth"], kw["heads"]) == (224, 16, 768, 12, 12)
        assert kw["masker"] == {"name": "frequency", "radius": 16, "mode": "random"}
        kw.update(dim=48, depth=1, heads=3)  # the rest as shipped
    torch.manual_seed(0)
    m = build_method(spec["method"]["name"], **kw)
    size = m.encoder.image_grid[0] * m.encoder.patch[0]
    x = torch.rand(2, 3, size, size)
    out = m(GridBatch(x, m.encoder.patch), torch.Generator().manual_seed(0))
    assert torch.isfinite(out["loss"]) and out["loss"] > 0
    assert m.features(x).shape == (2, m.encoder.dim)


def ramps(n: int, seed: int, size: int = 16) -> torch.Tensor:
    """Coloured sine gratings of random orientation, frequency and phase."""
    g = torch.Generator().manual_seed(seed)
    theta = torch.rand(n, 1, 1, 1, generator=g) * 2 * math.pi
    freq = 0.15 + 0.25 * torch.rand(n, 1, 1, 1, generator=g)
    phase = torch.rand(n, 1, 1, 1, generator=g) * 2 * math.pi
    colour = torch.rand(n, 3, 1, 1, generator=g)
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    return (0.5 + 0.5 * torch.sin(freq * (xx * torch.cos(theta) + yy * torch.sin(theta)) + phase)) * colour


def test_training_beats_returning_the_corrupted_input_on_gratings():
    torch.manual_seed(0)
    m = build_method("mfm", **{**TINY, "dim": 64, "depth": 2, "heads": 4}, masker={"name": "frequency", "radius": 3.0})
    opt = torch.optim.AdamW(m.parameters(), lr=2e-3, weight_decay=0.05, betas=(0.9, 0.95))
    for step in range(120):
        loss = m(ramps(32, step), torch.Generator().manual_seed(10_000 + step))["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    m.eval()
    test = ramps(256, 999)
    mask = m.masker(TokenGridLayout(256, (16, 16)), torch.Generator().manual_seed(5))
    with torch.no_grad():
        out = m.reconstruct(test, mask)
        # the baseline: the corrupted image itself as the prediction (nothing recovered on the masked frequencies)
        baseline = m.criterion(spectrum(out.corrupted), out.target_spectrum, out.mask)
    assert float(out.loss) < 0.85 * float(baseline), (float(out.loss), float(baseline))


def test_token_scaled_radius_keeps_mfms_cycles_per_token():
    assert token_scaled_radius(224, 16) == pytest.approx(16.0)  # MFM's ViT-B/16 setting itself
    assert token_scaled_radius(32, 4) == pytest.approx(16 * 8 / 14)
    assert token_scaled_radius((32, 64), 4) == pytest.approx(16 * 8 / 14)  # the fewest tokens along an axis
    with pytest.raises(UsageError):
        token_scaled_radius(2, 4)


def test_cpu_config_radius_is_scaled_by_the_token_grid_not_the_image():
    # issue #12: 16 * 32 / 224 = 2.3 (MFM's share of the image spectrum) left CIFAR-10 features below random init
    kw = yaml.safe_load((CONFIGS / "mfm_cpu.yaml").read_text())["method"]
    want = token_scaled_radius(kw["image_size"], kw["patch_size"])
    assert 0.9 * want <= kw["masker"]["radius"] <= 1.25 * want, (kw["masker"]["radius"], want)
