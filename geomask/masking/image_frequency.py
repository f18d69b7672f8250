"""MFM's frequency masks: a low- or high-pass disc of radius ``r`` on the centred spectrum, and the filtered image.

Masked Frequency Modeling (Xie et al. 2023, ``FreqMaskGenerator``): the spectrum ``fftshift(fft2(x))`` has the
zero frequency at index ``(H // 2, W // 2)``; the disc is ``(y - H//2)^2 + (x - W//2)^2 < r^2`` (MFM: ``r = 16``
at 224 px).  A **low-pass** sample keeps the disc and masks the rest; a **high-pass** sample masks the disc;
MFM picks one of the two per image with probability ½.  Here True = masked (MFM's array holds 1 = kept).

The disc is symmetric under ``k → -k`` on the centred grid for even and odd sizes (index ``i`` holds the
signed frequency ``i - H//2``, whose negation is index ``H - i`` for even ``H``, ``2 (H//2) - i`` for odd, at the
same distance; the even-size Nyquist row ``i = 0`` is its own partner).  So the kept spectrum stays Hermitian
and :func:`frequency_filter` of a real image is real up to rounding.  Everything is defined for any rank
(a ball on the centred ``D``-dimensional spectrum); images use ``D = 2``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from geomask.errors import UsageError
from geomask.masking.base import Masker, check_ratio
from geomask.masking.layout import TokenGridLayout
from geomask.masking.registry import register_masker

__all__ = ["FrequencyMasker", "centered_spectrum", "frequency_disc", "frequency_filter"]

MODES = ("random", "low_pass", "high_pass")


def frequency_disc(shape: Sequence[int], radius: float, device: torch.device | str | None = None) -> Tensor:
    """The low frequencies of a centred spectrum: ``Σ_d (i_d - s_d // 2)^2 < radius^2`` (MFM's disc).

    Shapes:
        ``(s_1 .. s_D)`` → ``[s_1 .. s_D]`` bool (True inside the disc).
    """
    axes = [(torch.arange(int(s), device=device) - int(s) // 2).double() ** 2 for s in shape]
    dist2 = torch.zeros((), dtype=torch.float64, device=device)
    for axis, sq in enumerate(axes):  # loop over the D axes
        view = [1] * len(axes)
        view[axis] = -1
        dist2 = dist2 + sq.view(view)
    return dist2 < float(radius) ** 2


def centered_spectrum(x: Tensor, dim: int = 2) -> Tensor:
    """``fftshift(fftn(x))`` over the last ``dim`` axes (zero frequency at index ``s // 2``), complex.

    Shapes:
        ``[..., s_1 .. s_D]`` → the same shape, complex.
    """
    axes = tuple(range(-dim, 0))
    return torch.fft.fftshift(torch.fft.fftn(x, dim=axes), dim=axes)


def frequency_filter(x: Tensor, mask: Tensor, clamp: tuple[float, float] | None = None) -> Tensor:
    """The image with its masked frequencies removed (MFM's ``frequency_transform``).

    ``ifftn(ifftshift(centered_spectrum(x) * ~mask)).real``, optionally clamped (MFM clamps ``[0, 1]`` images
    to ``(0, 1)``).  A symmetric mask (every mask from :class:`FrequencyMasker`) keeps the result real: the
    discarded imaginary part is rounding only.

    Args:
        x: ``[B, C, *spatial]`` real images.
        mask: ``[B, *spatial]`` (or ``[B * Π s]``) bool over the centred spectrum, True = removed.
        clamp: ``(low, high)`` or ``None``.

    Shapes:
        ``[B, C, *spatial]`` → ``[B, C, *spatial]``, real, ``x``'s dtype.
    """
    b, spatial = x.size(0), tuple(x.shape[2:])
    d = len(spatial)
    if mask.numel() != b * int(torch.tensor(spatial).prod()):
        raise UsageError(f"mask must be [B, *spatial] = [{b}, {', '.join(map(str, spatial))}], got {tuple(mask.shape)}")
    keep = (~mask.to(torch.bool)).reshape(b, 1, *spatial)
    axes = tuple(range(-d, 0))
    kept = centered_spectrum(x, d) * keep
    out = torch.fft.ifftn(torch.fft.ifftshift(kept, dim=axes), dim=axes).real.to(x.dtype)
    return out if clamp is None else out.clamp(*clamp)


@register_masker("frequency")
class FrequencyMasker(Masker):
    """MFM frequency masking: mask the centred spectrum outside (low-pass) or inside (high-pass) a disc of radius r.

    Rows are the sites of the centred spectrum (a :class:`~geomask.masking.layout.TokenGridLayout` of the image
    size, row-major).  With ``mode="random"`` every sample is low-pass with probability ``low_pass_prob``
    (MFM: ½), decided by one ``[B]`` float64 draw; the fixed modes draw nothing.  Per sample the masked count
    is exactly the disc's size (high-pass) or its complement's (low-pass).  Filter the image with
    :func:`frequency_filter`.

    Args:
        radius: disc radius in frequency-index units (MFM: 16 at 224 px).
        mode: ``"random"``, ``"low_pass"`` (keep the disc) or ``"high_pass"`` (remove the disc).
        low_pass_prob: probability of low-pass under ``"random"``.

    Shapes:
        layout ``(B, (s_1 .. s_D))`` → ``[B * Π s_d]`` bool (True = frequency removed).
    """

    layouts = (TokenGridLayout,)

    def __init__(self, radius: float = 16.0, mode: str = "random", low_pass_prob: float = 0.5) -> None:
        if isinstance(radius, bool) or not isinstance(radius, int | float) or not radius >= 0:
            raise UsageError(f"frequency: radius must be a number >= 0, got {radius!r}")
        if mode not in MODES:
            raise UsageError(f"frequency: mode must be one of {', '.join(MODES)}, got {mode!r}")
        self.radius = float(radius)
        self.mode = mode
        self.low_pass_prob = check_ratio("frequency", "low_pass_prob", low_pass_prob)

    def low_pass(self, num_samples: int, generator: torch.Generator, device: torch.device) -> Tensor:
        """Which samples are low-pass, ``[B]`` bool (draws only in ``"random"`` mode)."""
        if self.mode != "random":
            return torch.full((num_samples,), self.mode == "low_pass", dtype=torch.bool, device=device)
        u = torch.rand(num_samples, generator=generator, dtype=torch.float64, device=generator.device)
        return (u < self.low_pass_prob).to(device)

    def mask(self, layout: TokenGridLayout, generator: torch.Generator) -> Tensor:  # type: ignore[override]
        disc = frequency_disc(layout.shape, self.radius, layout.device).reshape(1, -1)
        low = self.low_pass(layout.num_samples, generator, layout.device).unsqueeze(1)
        return (disc ^ low).reshape(-1)  # low-pass: mask outside the disc; high-pass: mask inside
