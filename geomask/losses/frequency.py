"""MFM's frequency loss: the distance of two centred spectra on the masked frequencies (``frequency``).

Masked Frequency Modeling (Xie et al., TMLR 2023; its ``FrequencyLoss``, adapted from the focal frequency loss of
Jiang et al., ICCV 2021) scores a prediction by the Euclidean distance of its complex spectrum to the original's at
every frequency, raised to ``gamma``:

.. math::
    d_{b,k,c} = \\left( |\\hat{F}_{b,k,c} - F_{b,k,c}|^2 + \\epsilon \\right)^{\\gamma / 2},
    \\qquad
    \\mathcal{L} = \\frac{1}{C \\, |M|} \\sum_{(b, k) \\in M} \\sum_c w_{b,k,c} \\, d_{b,k,c}

with ``F = fftshift(fft2(x, norm="ortho"))`` per channel (:func:`spectrum`), ``M`` the masked frequencies
(MFM's ``RECOVER_TARGET_TYPE: masked``: the sum over masked frequencies divided by their number and by ``C``) and
``w = 1`` -- MFM's shipped setting (``LOSS_GAMMA 1``, ``WITH_MATRIX False``): plain Euclidean distance of the
complex values, no focal weighting.  ``focal=True`` gives the focal frequency loss's weight instead:
``w = (|F̂ - F|^alpha)`` (``log(1 + ·)`` with ``log_weight``) divided by its maximum over the frequencies of each
sample and channel, clamped to ``[0, 1]``, without gradient.  ``epsilon`` is MFM's ``1e-12``.

The loss takes spectra as real views: ``[B, *S, C, 2]`` (real, imaginary last), so the mask ``[B, *S]`` covers
its leading dims as for every geomask loss and ``l1`` / ``l2`` also apply to the same tensors (squared / absolute
error of the real and imaginary parts).
"""

from __future__ import annotations

import torch
from torch import Tensor

from geomask.errors import UsageError
from geomask.losses.modules import Loss, register_loss
from geomask.losses.reduce import masked_mean

__all__ = ["FrequencyDistance", "frequency_distance", "spectrum"]


def spectrum(x: Tensor, spatial_dims: int = 2) -> Tensor:
    """The centred orthonormal spectrum of ``x`` as a real view, channel and (real, imaginary) last.

    ``view_as_real(fftshift(fftn(x, norm="ortho")))`` over the last ``spatial_dims`` axes (zero frequency at index
    ``s // 2``, as :func:`~geomask.masking.image_frequency.frequency_disc`), computed in float32 at least.

    Shapes:
        ``[B, C, s_1 .. s_D]`` → ``[B, s_1 .. s_D, C, 2]``.
    """
    if x.dim() != spatial_dims + 2:
        raise UsageError(f"spectrum takes [B, C, {spatial_dims} spatial axes], got {tuple(x.shape)}")
    axes = tuple(range(-spatial_dims, 0))
    x = x if x.dtype in (torch.float32, torch.float64) else x.float()
    f = torch.fft.fftshift(torch.fft.fftn(x, dim=axes, norm="ortho"), dim=axes)
    return torch.view_as_real(f.movedim(1, -1))


def frequency_distance(
    pred: Tensor,
    target: Tensor,
    mask: Tensor | None = None,
    gamma: float = 1.0,
    focal: bool = False,
    alpha: float = 1.0,
    log_weight: bool = False,
    eps: float = 1e-12,
) -> Tensor:
    """MFM's frequency loss of two real-view spectra (module docstring), the mean over masked frequencies × channels.

    Shapes:
        pred, target ``[B, *S, C, 2]``, mask ``[B, *S]`` bool (True = counted) or ``None`` → scalar.
    """
    if pred.shape != target.shape or pred.dim() < 3 or pred.size(-1) != 2:
        raise UsageError(
            f"frequency loss takes two [B, *S, C, 2] spectra, got {tuple(pred.shape)} and {tuple(target.shape)}"
        )
    diff2 = (pred - target).pow(2).sum(-1)  # [B, *S, C]
    dist = (diff2 + eps).pow(gamma / 2)
    if focal:
        with torch.no_grad():
            w = diff2.sqrt().pow(alpha)
            if log_weight:
                w = torch.log1p(w)
            spatial = tuple(range(1, w.dim() - 1))
            w = w / w.amax(dim=spatial, keepdim=True)
            w = torch.nan_to_num(w, nan=0.0).clamp(0.0, 1.0)
        dist = w * dist
    return masked_mean(dist, mask)


@register_loss("frequency")
class FrequencyDistance(Loss):
    """MFM's frequency loss: |F_pred - F|^gamma of [B, *S, C, 2] spectra on masked frequencies (focal optional)."""

    def __init__(
        self, gamma: float = 1.0, focal: bool = False, alpha: float = 1.0, log_weight: bool = False, eps: float = 1e-12
    ) -> None:
        super().__init__()
        for name, value in (("gamma", gamma), ("alpha", alpha)):
            if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
                raise UsageError(f"loss keyword {name} must be a number > 0, got {value!r}")
        if isinstance(eps, bool) or not isinstance(eps, int | float) or not eps >= 0:
            raise UsageError(f"loss keyword eps must be a number >= 0, got {eps!r}")
        self.gamma, self.alpha, self.eps = float(gamma), float(alpha), float(eps)
        self.focal, self.log_weight = bool(focal), bool(log_weight)

    def forward(self, pred: Tensor, target: Tensor, mask: Tensor | None = None) -> Tensor:
        return frequency_distance(pred, target, mask, self.gamma, self.focal, self.alpha, self.log_weight, self.eps)
