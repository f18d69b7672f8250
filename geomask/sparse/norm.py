"""Normalization and pointwise layers over the active sites of a :class:`SparseTensor`.

Features ``[N, C]`` hold only active sites, so the statistics never see empty space: BatchNorm averages over
all active sites of the batch, LayerNorm over the channels of each site, and :class:`SparseInstanceNorm`
over the active sites of each sample.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from geomask.sparse.tensor import SparseTensor

__all__ = ["SparseBatchNorm", "SparseLayerNorm", "SparseInstanceNorm", "SparsePointwise", "SparseReLU"]


class SparseBatchNorm(nn.BatchNorm1d):
    """``torch.nn.BatchNorm1d`` over the active sites. Shapes: feats ``[N, C]`` → ``[N, C]``."""

    def forward(self, x: SparseTensor) -> SparseTensor:  # type: ignore[override]
        return x.replace(super().forward(x.feats))


class SparseLayerNorm(nn.LayerNorm):
    """``torch.nn.LayerNorm`` over the channels of each active site. Shapes: feats ``[N, C]`` → ``[N, C]``."""

    def __init__(self, num_channels: int, eps: float = 1e-5, elementwise_affine: bool = True) -> None:
        super().__init__(num_channels, eps=eps, elementwise_affine=elementwise_affine)

    def forward(self, x: SparseTensor) -> SparseTensor:  # type: ignore[override]
        return x.replace(super().forward(x.feats))


class SparseInstanceNorm(nn.Module):
    """Per-sample, per-channel normalization over that sample's active sites.

    .. math::
        y = \\gamma \\frac{x - \\mu_b}{\\sqrt{\\sigma_b^2 + \\epsilon}} + \\beta

    Shapes:
        feats ``[N, C]`` → ``[N, C]``; the statistics are ``[B, C]``, gathered back by batch index.
    """

    def __init__(self, num_channels: int, eps: float = 1e-5, affine: bool = True) -> None:
        super().__init__()
        self.eps = eps
        if affine:
            self.weight = nn.Parameter(torch.ones(num_channels))
            self.bias = nn.Parameter(torch.zeros(num_channels))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)

    def forward(self, x: SparseTensor) -> SparseTensor:
        batch = x.coords[:, 0]
        nb = x.batch_size
        count = torch.bincount(batch, minlength=nb).clamp_(min=1).to(x.feats.dtype).unsqueeze(1)
        mean = x.feats.new_zeros(nb, x.num_channels).index_add_(0, batch, x.feats) / count
        centred = x.feats - mean[batch]
        var = x.feats.new_zeros(nb, x.num_channels).index_add_(0, batch, centred * centred) / count
        out: Tensor = centred * torch.rsqrt(var[batch] + self.eps)
        if self.weight is not None:
            out = out * self.weight + self.bias
        return x.replace(out)


class SparsePointwise(nn.Module):
    """Apply a pointwise module (activation, dropout, linear) to the features; coordinates untouched."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, x: SparseTensor) -> SparseTensor:
        return x.replace(self.module(x.feats))


class SparseReLU(SparsePointwise):
    """ReLU on the features."""

    def __init__(self, inplace: bool = False) -> None:
        super().__init__(nn.ReLU(inplace=inplace))
