"""MFM's frequency loss: the spectrum against NumPy's FFT, the loss against MFM's formula written out (plain and
focal), Parseval, the masked reduction, and the registry."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from geomask.errors import UsageError
from geomask.losses import build_loss
from geomask.losses.frequency import FrequencyDistance, frequency_distance, spectrum


def data(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    pred = torch.rand(2, 3, 8, 6, generator=g, dtype=torch.float64)
    target = torch.rand(2, 3, 8, 6, generator=g, dtype=torch.float64)
    mask = torch.rand(2, 8, 6, generator=g) < 0.4
    return pred, target, mask


def numpy_spectrum(x: torch.Tensor) -> np.ndarray:
    """MFM's tensor2freq (patch factor 1): fftshift(fft2(x, norm="ortho")) per channel, [B, C, H, W] complex."""
    return np.fft.fftshift(np.fft.fft2(x.numpy(), norm="ortho"), axes=(-2, -1))


def test_spectrum_is_the_centred_orthonormal_fft_channel_last():
    x = data()[0]
    s = spectrum(x)
    assert s.shape == (2, 8, 6, 3, 2)
    want = numpy_spectrum(x).transpose(0, 2, 3, 1)
    np.testing.assert_allclose(s[..., 0].numpy(), want.real, atol=1e-12)
    np.testing.assert_allclose(s[..., 1].numpy(), want.imag, atol=1e-12)
    assert s.shape[1:3] == (8, 6) and torch.allclose(s[0, 4, 3, :, 0] * np.sqrt(48), x[0].sum((-2, -1)))  # DC centre


def test_loss_is_mfms_formula_written_out():
    pred, target, mask = data()
    diff = numpy_spectrum(pred) - numpy_spectrum(target)  # [B, C, H, W]
    dist = np.sqrt(diff.real**2 + diff.imag**2 + 1e-12)  # loss_gamma = 1
    m = mask.numpy()[:, None]  # MFM: (loss * (1 - mask)).sum() / (1 - mask).sum() / C, its mask 1 = kept
    want = (dist * m).sum() / m.sum() / 3
    got = build_loss({"name": "frequency"})(spectrum(pred), spectrum(target), mask)
    assert got.item() == pytest.approx(want, rel=1e-10)


def test_focal_weight_is_the_focal_frequency_losss():
    pred, target, mask = data(1)
    diff = numpy_spectrum(pred) - numpy_spectrum(target)
    dist = np.sqrt(diff.real**2 + diff.imag**2)
    w = dist**2.0  # matrix_gamma = 2, then divided by its max over (H, W) of each sample and channel
    w = w / w.max(axis=(-2, -1), keepdims=True)
    loss = np.sqrt(dist**2 + 1e-12) ** 1.5  # loss_gamma = 1.5
    m = mask.numpy()[:, None]
    want = (w * loss * m).sum() / m.sum() / 3
    got = frequency_distance(spectrum(pred), spectrum(target), mask, gamma=1.5, focal=True, alpha=2.0)
    assert got.item() == pytest.approx(want, rel=1e-10)
    logw = np.log1p(dist) / np.log1p(dist).max(axis=(-2, -1), keepdims=True)
    want_log = (logw * dist * m).sum() / m.sum() / 3
    got_log = FrequencyDistance(focal=True, log_weight=True, eps=0.0)(spectrum(pred), spectrum(target), mask)
    assert got_log.item() == pytest.approx(want_log, rel=1e-10)


def test_gamma_2_over_every_frequency_is_parsevals_pixel_error():
    pred, target, _ = data(2)
    got = frequency_distance(spectrum(pred), spectrum(target), None, gamma=2.0, eps=0.0)
    assert got.item() == pytest.approx(((pred - target) ** 2).mean().item(), rel=1e-10)  # orthonormal FFT


def test_only_masked_frequencies_count_and_an_empty_mask_gives_zero():
    pred, target, mask = data(3)
    sp, st = spectrum(pred), spectrum(target)
    moved = sp.clone()
    moved[~mask] += 5.0  # unmasked frequencies do not count
    assert frequency_distance(moved, st, mask).item() == pytest.approx(frequency_distance(sp, st, mask).item())
    p = sp.clone().requires_grad_(True)
    zero = frequency_distance(p, st, torch.zeros_like(mask))
    zero.backward()
    assert zero.item() == 0.0 and torch.isfinite(p.grad).all() and not p.grad.any()


def test_bad_arguments_are_usage_errors():
    with pytest.raises(UsageError, match="gamma must be a number > 0"):
        build_loss({"name": "frequency", "gamma": 0})
    with pytest.raises(UsageError, match=r"two \[B, \*S, C, 2\] spectra"):
        frequency_distance(torch.zeros(2, 4, 4, 3), torch.zeros(2, 4, 4, 3))
    with pytest.raises(UsageError, match="spectrum takes"):
        spectrum(torch.zeros(4, 4))
