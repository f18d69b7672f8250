"""The masked reduction every loss ends with.

Convention (the MAE / Hugging Face one): ``mask`` True = **counted** (a masked element, whose prediction is
scored); ``None`` counts everything.  ``mask`` covers the leading dimensions of the per-element losses
(``values.shape[:mask.dim()] == mask.shape``); a masked row counts each of its entries.  The result is the
sum over counted entries divided by their number, so it is the mean over masked elements; an empty mask gives
0 (with a gradient, zero), never NaN.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from geomask.errors import UsageError

__all__ = ["check_mask", "masked_mean"]


def check_mask(mask: Tensor, shape: torch.Size | tuple[int, ...], what: str = "values") -> None:
    """Raise :class:`UsageError` unless ``mask`` is a bool tensor covering the leading dims of ``shape``."""
    if mask.dtype != torch.bool:
        raise UsageError(f"a loss mask must be bool (True = counted), got {mask.dtype}")
    if tuple(shape[: mask.dim()]) != tuple(mask.shape):
        raise UsageError(f"mask {tuple(mask.shape)} does not cover the leading dims of {what} {tuple(shape)}")


def masked_mean(values: Tensor, mask: Tensor | None = None) -> Tensor:
    """Mean of ``values`` over the entries ``mask`` counts: ``Σ_{mask} values / max(count, 1)``.

    ``mask=None`` is ``values.mean()`` (0 for an empty tensor).  Masked-out entries are dropped with
    ``torch.where`` (a NaN or inf there does not leak into the result).

    Shapes:
        values ``[*L, *R]``, mask ``[*L]`` bool or ``None`` → scalar; count = ``mask.sum() · prod(R)``.
    """
    if mask is None:
        return values.mean() if values.numel() else values.sum() * 0.0
    check_mask(mask, values.shape)
    per_row = math.prod(values.shape[mask.dim() :])
    m = mask.reshape(mask.shape + (1,) * (values.dim() - mask.dim()))
    total = torch.where(m, values, values.new_zeros(())).sum()
    return total / (mask.sum() * per_row).clamp(min=1)
