"""Dropout with a cheap mask: 16-bit random thresholds cut from 64-bit random words.

``torch.nn.functional.dropout`` draws one Bernoulli sample per element; on CPU that dominates a training
step whose heads run per node (about 11 ms for a ``[38k, 64]`` activation against 2 ms here). This version
draws ``ceil(n / 4)`` random int64 words over the full signed range from the same (default or given)
generator, reads them as ``n`` int16 values and keeps an element where its value is at least
``round(p * 65536) - 32768``: the drop probability is ``p`` rounded to a multiple of ``1 / 65536``
(``|Δp| ≤ 7.7e-6``), and kept elements are scaled by ``1 / (1 - p_rounded)`` so the expectation is
unchanged. Autograd saves the bool mask only (a float mask per dropout layer added 0.4 GB to a training step
on a 492k-node AIG) and multiplies by the scaled mask again in the backward pass.  On CPU (float32/64) the
comparison, the bool mask and the product are one compiled pass over the int16 values (no separate comparison
pass); the mask is the same, bit for bit.
"""

from __future__ import annotations

import numba
import torch
from torch import Tensor

__all__ = ["dropout", "dropout_mask"]


def _values(shape: torch.Size | tuple[int, ...], device: torch.device, generator=None) -> Tensor:
    """``shape``'s element count of random int16 values (flat), cut from int64 words over the full range."""
    n = 1
    for s in shape:
        n *= int(s)
    # the full signed range: plain random_() on int64 stays below 2**63, which would bias the top int16 lane
    words = torch.empty((n + 3) // 4, dtype=torch.int64, device=device).random_(
        -(2**63), 2**63 - 1, generator=generator
    )
    return words.view(torch.int16)[:n]


def _drop_mask(shape: torch.Size | tuple[int, ...], cut: int, device: torch.device, generator=None) -> Tensor:
    """Bool ``shape``, True where an element is dropped (probability ``cut / 65536``)."""
    return _values(shape, device, generator).view(shape) < cut - 32768


def dropout_mask(shape: torch.Size | tuple[int, ...], p: float, like: Tensor, generator=None) -> Tensor:
    """Scaled keep-mask of ``shape``: ``0`` with probability ``p`` (to 1/65536), else ``1 / (1 - p)``.

    Args:
        shape: mask shape.
        p: drop probability in ``[0, 1)``.
        like: the mask takes its dtype and device.
        generator: a ``torch.Generator`` (default: the global one).
    """
    cut = round(p * 65536)
    drop = _drop_mask(shape, cut, like.device, generator)
    return (~drop).to(like.dtype) * (65536.0 / (65536 - cut))


@numba.njit(cache=True, nogil=True)
def _scale_kept(x, drop, scale, out):  # out = x * scale where kept, 0 where dropped (flat arrays)
    for i in range(x.size):
        out[i] = 0.0 if drop[i] else x[i] * scale


@numba.njit(cache=True, nogil=True)
def _drop_scale(x, values, cut, scale, out, drop):  # drop = values < cut; out = x * scale where kept, else 0 (flat)
    for i in range(x.size):
        d = values[i] < cut
        drop[i] = d
        out[i] = 0.0 if d else x[i] * scale


def _apply(x: Tensor, drop: Tensor, scale: float) -> Tensor:
    """``x * (~drop) * scale``: on CPU float32/64 one compiled pass (torch's bool → float conversion and two
    products take ~5 passes), elsewhere torch's ops; the same values either way (one product by ``scale``)."""
    if x.device.type != "cpu" or x.dtype not in (torch.float32, torch.float64):
        return x * (~drop).to(x.dtype).mul_(scale)
    x = x.detach().contiguous()
    out = torch.empty_like(x)
    xn = x.numpy().reshape(-1)
    _scale_kept(xn, drop.numpy().reshape(-1), xn.dtype.type(scale), out.numpy().reshape(-1))
    return out


def _apply_values(x: Tensor, values: Tensor, cut: int, scale: float) -> tuple[Tensor, Tensor]:
    """``(x * (~drop) * scale, drop)`` with ``drop = values < cut - 32768``, one compiled pass (CPU float32/64)."""
    x = x.detach().contiguous()
    out, drop = torch.empty_like(x), torch.empty(x.shape, dtype=torch.bool)
    xn = x.numpy().reshape(-1)
    _drop_scale(
        xn, values.numpy(), cut - 32768, xn.dtype.type(scale), out.numpy().reshape(-1), drop.numpy().reshape(-1)
    )
    return out, drop


class _Dropout(torch.autograd.Function):
    """``x * mask * scale``; saves the bool mask (a quarter of a float mask's memory), not the float mask."""

    @staticmethod
    def forward(ctx, x: Tensor, drop: Tensor, scale: float) -> Tensor:  # type: ignore[override]
        ctx.save_for_backward(drop)
        ctx.scale = scale
        return _apply(x, drop, scale)

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        (drop,) = ctx.saved_tensors
        return _apply(grad, drop, ctx.scale), None, None


class _DropoutValues(torch.autograd.Function):
    """:class:`_Dropout` from the random int16 values: the comparison inside the forward pass."""

    @staticmethod
    def forward(ctx, x: Tensor, values: Tensor, cut: int, scale: float) -> Tensor:  # type: ignore[override]
        out, drop = _apply_values(x, values, cut, scale)
        ctx.save_for_backward(drop)
        ctx.scale = scale
        return out

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        (drop,) = ctx.saved_tensors
        return _apply(grad, drop, ctx.scale), None, None, None


def dropout(x: Tensor, p: float, training: bool = True, generator=None) -> Tensor:
    """``F.dropout(x, p, training)`` with the mask of :func:`dropout_mask`.

    Shapes:
        ``[*]`` → ``[*]``.
    """
    if not training or p == 0.0:
        return x
    if not 0.0 <= p < 1.0:
        raise ValueError(f"dropout probability must be in [0, 1), got {p}")
    cut = round(p * 65536)
    if x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64):
        values = _values(x.shape, x.device, generator)
        if not (torch.is_grad_enabled() and x.requires_grad):
            return _apply_values(x, values, cut, 65536.0 / (65536 - cut))[0]
        return _DropoutValues.apply(x, values, cut, 65536.0 / (65536 - cut))
    drop = _drop_mask(x.shape, cut, x.device, generator)
    if not (torch.is_grad_enabled() and x.requires_grad):
        return _apply(x, drop, 65536.0 / (65536 - cut))
    return _Dropout.apply(x, drop, 65536.0 / (65536 - cut))
