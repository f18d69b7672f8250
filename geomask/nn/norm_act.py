"""Batch norm followed by PReLU, fused; and PReLU with a faster backward (CPU training hot path of GIN layers).

:func:`batch_norm_prelu` computes, in training mode,

.. math::
    \\mathbf{y} = \\gamma \\odot \\frac{\\mathbf{x} - \\mu}{\\sqrt{\\sigma^2 + \\epsilon}} + \\beta, \\qquad
    \\mathrm{out} = \\max(\\mathbf{y}, 0) + a \\min(\\mathbf{y}, 0)

with ``μ``, ``σ²`` the biased per-channel statistics of the batch (updating the module's running statistics as
``torch.nn.BatchNorm1d`` does), in two compiled passes forward (statistics; normalise + affine + PReLU) and two
backward (the sums ``Σ ∂y``, ``Σ ∂y x̂`` and ``∂a``; then ``∂x``), saving only ``x``.  PyTorch runs five to eight
full passes for the same (``native_batch_norm``, ``_prelu_kernel`` and their backward kernels, the PReLU one
unvectorised).  Anything else (evaluation mode, no affine weights, a per-channel slope, another device, other
dtypes) takes the plain modules.
"""

from __future__ import annotations

import numba
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["batch_norm_prelu", "norm_prelu", "prelu"]


@numba.njit(cache=True, nogil=True, fastmath=True)
def _stats(x, s, ss):  # per-channel Σx and Σx² in float64
    n, c = x.shape
    for i in range(n):
        for k in range(c):
            v = np.float64(x[i, k])
            s[k] += v
            ss[k] += v * v


@numba.njit(cache=True, nogil=True, fastmath=True)
def _forward(x, scale, shift, a, out):  # out = prelu(x * scale + shift)
    n, c = x.shape
    for i in range(n):
        for k in range(c):
            y = x[i, k] * scale[k] + shift[k]
            out[i, k] = y if y > 0 else a * y


@numba.njit(cache=True, nogil=True, fastmath=True)
def _backward_sums(g, x, scale, shift, mean, invstd, a, sg, sgx):  # Σ ∂y, Σ ∂y x̂ per channel; returns ∂a
    n, c = x.shape
    ga = 0.0
    for i in range(n):
        for k in range(c):
            y = x[i, k] * scale[k] + shift[k]
            gi = g[i, k]
            neg = y <= 0
            gy = a * gi if neg else gi
            ga += gi * y if neg else 0.0
            sg[k] += gy
            sgx[k] += gy * ((x[i, k] - mean[k]) * invstd[k])
    return ga


@numba.njit(cache=True, nogil=True, fastmath=True)
def _backward_x(g, x, scale, shift, mean, invstd, a, wx, sg, sgx, gx, gsum):  # ∂x = γ σ⁻¹ (∂y - Σ∂y / N - x̂ Σ∂y x̂ / N)
    # and gsum = Σ_i ∂x_i per channel
    n, c = x.shape
    for i in range(n):
        for k in range(c):
            y = x[i, k] * scale[k] + shift[k]
            gi = g[i, k]
            gy = a * gi if y <= 0 else gi
            v = wx[k] * (gy - sg[k] - (x[i, k] - mean[k]) * invstd[k] * sgx[k])
            gx[i, k] = v
            gsum[k] += v


class _BatchNormPReLU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Tensor, a: Tensor, eps: float, pre: Tensor | None):  # type: ignore[override]
        # ``pre``: a bias added to x before the norm (a linear layer's); it shifts μ only, so x̂ is that of x
        xn = x.detach().numpy()
        s, ss = np.zeros(x.shape[1]), np.zeros(x.shape[1])
        _stats(xn, s, ss)
        n = x.shape[0]
        mean64 = s / n
        var64 = np.maximum(ss / n - mean64 * mean64, 0.0)
        invstd64 = 1.0 / np.sqrt(var64 + eps)
        w64 = weight.detach().double().numpy()
        scale64 = w64 * invstd64
        shift64 = bias.detach().double().numpy() - mean64 * scale64
        dt = xn.dtype
        mean, invstd, scale, shift = (v.astype(dt) for v in (mean64, invstd64, scale64, shift64))
        av = dt.type(a.item())
        out = torch.empty_like(x)
        _forward(xn, scale, shift, av, out.numpy())
        ctx.save_for_backward(x, weight)
        ctx.consts = (mean, invstd, scale, shift, av)
        if pre is not None:
            mean64 = mean64 + pre.detach().double().numpy()
        stats = torch.from_numpy(mean64), torch.from_numpy(var64)
        ctx.mark_non_differentiable(*stats)
        return out, *stats

    @staticmethod
    def backward(ctx, grad: Tensor, _m, _v):  # type: ignore[override]
        x, weight = ctx.saved_tensors
        mean, invstd, scale, shift, av = ctx.consts
        g, xn = grad.contiguous().numpy(), x.detach().numpy()
        n, c = xn.shape
        sg, sgx = np.zeros(c), np.zeros(c)
        ga = _backward_sums(g, xn, scale, shift, mean, invstd, av, sg, sgx)
        dt = xn.dtype
        gx = gpre = None
        if ctx.needs_input_grad[0] or ctx.needs_input_grad[5]:
            gx = torch.empty_like(x)
            wx = (weight.detach().double().numpy() * invstd).astype(dt)
            mg, mgx = (sg / n).astype(dt), (sgx / n).astype(dt)
            gsum = np.zeros(c)
            _backward_x(g, xn, scale, shift, mean, invstd, av, wx, mg, mgx, gx.numpy(), gsum)
            if ctx.needs_input_grad[5]:  # ∂pre = Σ_i ∂x_i (zero but for rounding, as torch computes it)
                gpre = torch.from_numpy(gsum.astype(dt))
            gx = gx if ctx.needs_input_grad[0] else None
        gw = torch.from_numpy(sgx.astype(dt))
        gb = torch.from_numpy(sg.astype(dt))
        return gx, gw, gb, torch.full((1,), ga, dtype=x.dtype), None, gpre


def batch_norm_prelu(x: Tensor, norm: nn.BatchNorm1d, act: nn.PReLU, bias: Tensor | None = None) -> Tensor:
    """``act(norm(x + bias))`` for a training-mode ``BatchNorm1d`` (affine, running statistics, ``momentum`` set)
    and a one-slope ``PReLU`` on a CPU float32/float64 ``[N, C]`` tensor, fused; the running statistics are updated
    as ``BatchNorm1d`` does (unbiased variance).  ``bias`` (a preceding linear layer's, optional) is never added to
    ``x``: it moves the batch mean only, which the norm subtracts (its gradient: ``Σ_i ∂x_i``), so the linear layer
    can skip writing it into its output.

    Shapes:
        x ``[N, C]`` → ``[N, C]``; bias ``[C]``.
    """
    out, mean, var = _BatchNormPReLU.apply(x.contiguous(), norm.weight, norm.bias, act.weight, norm.eps, bias)
    with torch.no_grad():
        m, n = norm.momentum, x.shape[0]
        norm.running_mean.mul_(1 - m).add_(mean.to(norm.running_mean.dtype), alpha=m)
        norm.running_var.mul_(1 - m).add_(var.to(norm.running_var.dtype), alpha=m * n / max(n - 1, 1))
        norm.num_batches_tracked.add_(1)
    return out


def _fusable(x: Tensor, norm: nn.Module, act: nn.Module) -> bool:
    return (
        isinstance(norm, nn.BatchNorm1d)
        and isinstance(act, nn.PReLU)
        and norm.training
        and norm.affine
        and norm.track_running_stats
        and norm.momentum is not None
        and act.weight.numel() == 1
        and x.device.type == "cpu"
        and x.dim() == 2
        and x.shape[0] > 1
        and x.dtype in (torch.float32, torch.float64)
        and norm.weight.dtype == x.dtype
    )


def norm_prelu(x: Tensor, norm: nn.Module, act: nn.Module, bias: Tensor | None = None) -> Tensor:
    """``act(norm(x + bias))`` (``bias`` optional): :func:`batch_norm_prelu` where it applies, :func:`prelu` after
    ``norm`` otherwise."""
    if _fusable(x, norm, act) and (bias is None or bias.dtype == x.dtype):
        return batch_norm_prelu(x, norm, act, bias)
    y = norm(x if bias is None else x + bias)
    return prelu(y, act.weight) if isinstance(act, nn.PReLU) else act(y)


class _PReLU(torch.autograd.Function):
    """PReLU with one shared slope ``a``; its backward in a few vectorised passes (``torch``'s own kernel is ~3×
    slower on CPU): ``∂x = g [x > 0] + a (g - g [x > 0])``, ``∂a = Σ g min(x, 0)``."""

    @staticmethod
    def forward(ctx, x: Tensor, a: Tensor) -> Tensor:  # type: ignore[override]
        ctx.save_for_backward(x, a)
        return F.prelu(x, a)

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        x, a = ctx.saved_tensors
        gx = ga = None
        if ctx.needs_input_grad[0]:
            gx = torch.ops.aten.threshold_backward(grad, x, 0.0).lerp_(grad, a)  # g [x > 0] + a (g - g [x > 0])
        if ctx.needs_input_grad[1]:
            ga = x.clamp(max=0).reshape(-1).dot(grad.reshape(-1)).reshape(a.shape)
        return gx, ga


def prelu(x: Tensor, weight: Tensor) -> Tensor:
    """``F.prelu(x, weight)``, with a faster backward where ``weight`` is one shared slope.

    Shapes:
        x ``[N, C]`` → ``[N, C]``; weight ``[1]`` or ``[C]``.
    """
    if weight.numel() != 1 or not torch.is_grad_enabled() or not (x.requires_grad or weight.requires_grad):
        return F.prelu(x, weight)
    return _PReLU.apply(x, weight)
