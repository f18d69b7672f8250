"""Residual blocks of sparse U-Nets (MinkowskiEngine / Pointcept ``BasicBlock`` layout)."""

from __future__ import annotations

from torch import nn

from geomask.sparse import SparseBatchNorm, SparseConv, SparseTensor

__all__ = ["SparseBasicBlock", "ConvNormAct"]


class ConvNormAct(nn.Module):
    """Sparse convolution (no bias) → BatchNorm over active sites → ReLU.

    Shapes:
        feats ``[N, C_in]`` → ``[N_out, C_out]`` (``N_out`` set by the stride / transposition).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        transposed: bool = False,
        dim: int = 3,
    ) -> None:
        super().__init__()
        self.conv = SparseConv(
            in_channels, out_channels, kernel_size, stride=stride, transposed=transposed, bias=False, dim=dim
        )
        self.norm = SparseBatchNorm(out_channels)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: SparseTensor) -> SparseTensor:
        x = self.norm(self.conv(x))
        return x.replace(self.act(x.feats))


class SparseBasicBlock(nn.Module):
    """Two submanifold 3-convolutions with BatchNorm and a residual: ``relu(x' + bn(conv(relu(bn(conv(x))))))``.

    ``x'`` is ``x``, or a 1-convolution + BatchNorm projection when the channel count changes.

    Shapes:
        feats ``[N, C_in]`` → ``[N, C_out]`` on the same sites.
    """

    def __init__(self, in_channels: int, out_channels: int, dim: int = 3) -> None:
        super().__init__()
        self.conv1 = SparseConv(in_channels, out_channels, 3, bias=False, dim=dim)
        self.norm1 = SparseBatchNorm(out_channels)
        self.conv2 = SparseConv(out_channels, out_channels, 3, bias=False, dim=dim)
        self.norm2 = SparseBatchNorm(out_channels)
        if in_channels != out_channels:
            self.proj: nn.Module | None = nn.Sequential(
                SparseConv(in_channels, out_channels, 1, bias=False, dim=dim), SparseBatchNorm(out_channels)
            )
        else:
            self.proj = None

    def forward(self, x: SparseTensor) -> SparseTensor:
        h = self.norm1(self.conv1(x))
        h = self.norm2(self.conv2(h.replace(h.feats.relu())))
        skip = x.feats if self.proj is None else self.proj(x).feats
        return h.replace((h.feats + skip).relu())
