"""Pooling over a :class:`SparseTensor`: strided max / average pooling on a kernel map, global per sample.

Strided pooling uses the same down-sampling map as a strided convolution (cached per lineage):
``out[o] = max_k in[o + o_k]`` (or the mean over the *active* inputs of the window, MinkowskiEngine's
convention), with outputs at the parent sites.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from geomask.sparse.kernel_map import as_tuple
from geomask.sparse.tensor import SparseTensor, conv_kernel_map

__all__ = ["SparseMaxPool", "SparseAvgPool", "sparse_pool", "global_pool"]


def sparse_pool(
    x: SparseTensor,
    kernel_size: int | Sequence[int] = 2,
    stride: int | Sequence[int] | None = None,
    dilation: int | Sequence[int] = 1,
    mode: str = "max",
) -> SparseTensor:
    """Max (``mode="max"``) or average (``"avg"``) pooling; ``stride`` defaults to ``kernel_size``.

    Shapes:
        feats ``[N, C]`` → ``[N_out, C]``.
    """
    if mode not in ("max", "avg"):
        raise ValueError(f"mode must be 'max' or 'avg', got {mode!r}")
    stride = kernel_size if stride is None else stride
    kmap = conv_kernel_map(x, kernel_size, stride, dilation)
    src, dst = kmap.edges()[0].unbind(0)
    num_out = kmap.index.num_dst
    c = x.num_channels
    msg = x.feats.index_select(0, src)
    out = x.feats.new_zeros(num_out, c)
    if mode == "max":
        out = out.scatter_reduce(0, dst.unsqueeze(1).expand(-1, c), msg, "amax", include_self=False)
    else:
        out = out.index_add(0, dst, msg)
        count = torch.bincount(dst, minlength=num_out).clamp_(min=1).to(out.dtype)
        out = out / count.unsqueeze(1)
    if kmap.out_stride == x.stride:
        return x.replace(out)
    return SparseTensor(x.cache.levels[kmap.out_stride].coords, out, kmap.out_stride, x.cache)


class SparseMaxPool(nn.Module):
    """Max pooling (``torch.nn.MaxPool3d``-like; stride defaults to the kernel size)."""

    def __init__(self, kernel_size=2, stride=None, dilation=1, dim: int = 3) -> None:
        super().__init__()
        self.kernel_size = as_tuple(kernel_size, dim, "kernel_size")
        self.stride = self.kernel_size if stride is None else as_tuple(stride, dim, "stride")
        self.dilation = as_tuple(dilation, dim, "dilation")

    def forward(self, x: SparseTensor) -> SparseTensor:
        return sparse_pool(x, self.kernel_size, self.stride, self.dilation, "max")


class SparseAvgPool(SparseMaxPool):
    """Average pooling over the active sites of each window."""

    def forward(self, x: SparseTensor) -> SparseTensor:
        return sparse_pool(x, self.kernel_size, self.stride, self.dilation, "avg")


def global_pool(x: SparseTensor, mode: str = "avg") -> Tensor:
    """Pool all active sites of each sample: ``mode`` is ``"avg"``, ``"max"`` or ``"sum"``.

    Shapes:
        feats ``[N, C]`` → ``[B, C]`` (samples with no site give zeros).
    """
    batch = x.coords[:, 0]
    nb, c = x.batch_size, x.num_channels
    out = x.feats.new_zeros(nb, c)
    if mode == "max":
        return out.scatter_reduce(0, batch.unsqueeze(1).expand(-1, c), x.feats, "amax", include_self=False)
    out = out.index_add(0, batch, x.feats)
    if mode == "sum":
        return out
    if mode != "avg":
        raise ValueError(f"mode must be 'avg', 'max' or 'sum', got {mode!r}")
    return out / torch.bincount(batch, minlength=nb).clamp_(min=1).to(out.dtype).unsqueeze(1)
