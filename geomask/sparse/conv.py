"""Sparse convolution as relational message passing (one relation per kernel offset).

.. math::
    \\mathbf{y}_u = \\mathbf{b} + \\sum_{k} \\mathbf{W}_k^\\top \\mathbf{x}_{u + t \\cdot d \\cdot o_k}

with tensor stride ``t``, dilation ``d`` and kernel offsets ``o_k``. Stride 1: submanifold (outputs at the
input sites). Stride ``s``: outputs at the parent sites ``⌊x / (t s)⌋ · t s`` (equals a dense strided
convolution with padding ``k // 2`` for odd ``k`` and none for ``k = s``). Transposed: the down-sampling
map of the same kernel reversed, back onto the finer sites cached in the tensor's lineage.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from geomask.ops.relational import relational_matmul
from geomask.sparse.kernel_map import as_tuple
from geomask.sparse.tensor import SparseTensor, conv_kernel_map

__all__ = ["SparseConv", "conv_kernel_map", "sparse_conv"]  # conv_kernel_map: from tensor


def sparse_conv(
    x: SparseTensor,
    weight: Tensor,
    bias: Tensor | None = None,
    kernel_size: int | Sequence[int] = 3,
    stride: int | Sequence[int] = 1,
    dilation: int | Sequence[int] = 1,
    transposed: bool = False,
) -> SparseTensor:
    """Functional sparse convolution.

    Shapes:
        x.feats: ``[N, C_in]``; weight: ``[K, C_in, C_out]`` (``K = prod(kernel_size)``, offsets row-major);
        bias: ``[C_out]``; returns a tensor with ``[N_out, C_out]`` features.
    """
    kmap = conv_kernel_map(x, kernel_size, stride, dilation, transposed)
    if weight.size(0) != len(kmap.offsets):
        raise ValueError(f"weight has {weight.size(0)} kernel offsets, the kernel needs {len(kmap.offsets)}")
    feats = relational_matmul(x.feats, weight, kmap.index)
    if bias is not None:
        feats = feats + bias
    if kmap.out_stride == x.stride:
        return x.replace(feats)
    return SparseTensor(x.cache.levels[kmap.out_stride].coords, feats, kmap.out_stride, x.cache)


class SparseConv(nn.Module):
    """Sparse convolution over a :class:`SparseTensor`, reading like ``torch.nn.Conv3d``.

    Args:
        in_channels: ``C_in``.
        out_channels: ``C_out``.
        kernel_size: an int or ``dim`` ints (odd for stride 1).
        stride: 1 (submanifold), or the down-sampling (up-sampling when ``transposed``) factor.
        dilation: spacing of the kernel taps, in units of the tensor stride.
        transposed: up-sample back onto the finer sites of the lineage (reuses the down-sampling map).
        bias: add a learnable bias.
        dim: spatial dimension ``D`` (1 to 4).
        backend: ``"torch"`` (built in), ``"spconv"`` or ``"minkowski"`` (see :mod:`geomask.sparse.backends`).

    Shapes:
        weight: ``[K, C_in, C_out]``; input feats ``[N, C_in]`` → output feats ``[N_out, C_out]``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | Sequence[int] = 3,
        stride: int | Sequence[int] = 1,
        dilation: int | Sequence[int] = 1,
        transposed: bool = False,
        bias: bool = True,
        dim: int = 3,
        backend: str = "torch",
    ) -> None:
        super().__init__()
        if not 1 <= dim <= 4:
            raise ValueError(f"dim must be 1 to 4, got {dim}")
        if in_channels < 1 or out_channels < 1:
            raise ValueError(f"channels must be positive, got {in_channels} -> {out_channels}")
        self.in_channels, self.out_channels, self.dim = in_channels, out_channels, dim
        self.kernel_size = as_tuple(kernel_size, dim, "kernel_size")
        self.stride = as_tuple(stride, dim, "stride")
        self.dilation = as_tuple(dilation, dim, "dilation")
        self.transposed = bool(transposed)
        if all(s == 1 for s in self.stride):
            if self.transposed:
                raise ValueError("a transposed convolution needs a stride > 1")
            if any(k % 2 == 0 for k in self.kernel_size):
                raise ValueError(f"a submanifold convolution needs odd kernel sizes, got {self.kernel_size}")
        from geomask.sparse.backends import resolve_backend

        self.backend = resolve_backend(backend)
        num_k = math.prod(self.kernel_size)
        self.weight = nn.Parameter(torch.empty(num_k, in_channels, out_channels))
        if bias:
            self.bias = nn.Parameter(torch.empty(out_channels))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Uniform in ``±1/sqrt(fan_in)`` like ``torch.nn.ConvNd`` (``fan_in = K · C_in``)."""
        bound = 1.0 / math.sqrt(self.weight.size(0) * self.in_channels)
        nn.init.uniform_(self.weight, -bound, bound)
        if self.bias is not None:
            nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: SparseTensor) -> SparseTensor:
        if x.dim != self.dim:
            raise ValueError(f"{type(self).__name__} is {self.dim}-D, got a {x.dim}-D tensor")
        if x.num_channels != self.in_channels:
            raise ValueError(f"expected {self.in_channels} input channels, got {x.num_channels}")
        if self.backend != "torch":
            from geomask.sparse.backends import backend_conv

            return backend_conv(self.backend, x, self.weight, self.bias, self)
        return sparse_conv(x, self.weight, self.bias, self.kernel_size, self.stride, self.dilation, self.transposed)

    def extra_repr(self) -> str:
        s = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        if any(d != 1 for d in self.dilation):
            s += f", dilation={self.dilation}"
        if self.transposed:
            s += ", transposed=True"
        if self.bias is None:
            s += ", bias=False"
        return s + f", dim={self.dim}"
