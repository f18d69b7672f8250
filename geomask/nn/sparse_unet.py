"""Sparse residual U-Nets: the MinkUNet / SR-UNet (Res16UNet) family of CPCM and Pointcept.

Layout (``planes`` and ``blocks`` have 8 entries: 4 encoder then 4 decoder stages)::

    stem: conv k=stem_kernel (C_in → planes[0]) + BN + ReLU                         stride 1
    enc i (0..3): ConvNormAct k=2 s=2, then blocks[i] BasicBlocks at planes[i]      stride 2^(i+1)
    dec j (0..3): ConvNormAct k=2 s=2 transposed → planes[4+j], concat the encoder
                  skip of the same stride, then blocks[4+j] BasicBlocks at planes[4+j]  stride 2^(3-j)
    head: 1-convolution planes[7] → out_channels (or none)

``forward`` returns every decoder level (MSM's probe uses them). ``mask_hook(level, up, skip)`` may replace
the up-sampled and skip tensors of each decoder level before concatenation (insertion of mask tokens); it
must keep both on the same sites. ``stem``, ``enc_down``, ``enc_blocks``, ``dec_up`` and ``dec_blocks`` are
exposed for methods that drive the stages themselves.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from torch import nn

from geomask.nn.sparse_blocks import ConvNormAct, SparseBasicBlock
from geomask.sparse import SparseConv, SparseTensor, sparse_cat

__all__ = ["SparseResUNet", "SparseUNetOutput", "UNET_CONFIGS", "build_sparse_unet"]

MaskHook = Callable[[int, SparseTensor, SparseTensor], tuple[SparseTensor, SparseTensor]]

#: name → (blocks, planes); 34C is the CPCM / Pointcept backbone, 14 a narrow CPU variant.
UNET_CONFIGS: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = {
    "Res16UNet14": ((1, 1, 1, 1, 1, 1, 1, 1), (16, 32, 64, 64, 64, 32, 32, 32)),
    "Res16UNet14A": ((1, 1, 1, 1, 1, 1, 1, 1), (32, 64, 128, 256, 128, 128, 96, 96)),
    "Res16UNet18A": ((2, 2, 2, 2, 2, 2, 2, 2), (32, 64, 128, 256, 128, 128, 96, 96)),
    "Res16UNet34C": ((2, 3, 4, 6, 2, 2, 2, 2), (32, 64, 128, 256, 256, 128, 96, 96)),
    "Res16UNetTiny": ((1, 1, 1, 1, 1, 1, 1, 1), (8, 16, 16, 32, 16, 16, 8, 8)),
}


@dataclass
class SparseUNetOutput:
    """Result of :class:`SparseResUNet`.

    Attributes:
        out: head output at stride 1 (the last decoder level when there is no head).
        levels: decoder outputs, coarse to fine (strides 8, 4, 2, 1).
        encoder: stem and encoder outputs, fine to coarse (strides 1, 2, 4, 8, 16).
    """

    out: SparseTensor
    levels: list[SparseTensor]
    encoder: list[SparseTensor]


class SparseResUNet(nn.Module):
    """A residual sparse U-Net over ``dim``-D grids.

    Args:
        in_channels: input feature channels.
        out_channels: channels of the 1-convolution head; ``None`` for no head.
        planes: 8 widths (4 encoder, 4 decoder stages).
        blocks: 8 BasicBlock counts.
        stem_kernel: kernel size of the first submanifold convolution (5 in Res16UNet, 3 for speed).
        dim: spatial dimension.

    Shapes:
        input feats ``[N, in_channels]`` at stride 1 → ``out`` feats ``[N, out_channels]`` on the same sites.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int | None = None,
        planes: Sequence[int] = UNET_CONFIGS["Res16UNet34C"][1],
        blocks: Sequence[int] = UNET_CONFIGS["Res16UNet34C"][0],
        stem_kernel: int = 5,
        dim: int = 3,
    ) -> None:
        super().__init__()
        if len(planes) != 8 or len(blocks) != 8:
            raise ValueError(f"planes and blocks need 8 entries each, got {len(planes)} and {len(blocks)}")
        if any(b < 1 for b in blocks) or any(p < 1 for p in planes):
            raise ValueError("planes and blocks must be positive")
        self.planes, self.blocks, self.dim = tuple(planes), tuple(blocks), dim
        self.stem = nn.Sequential(
            SparseConv(in_channels, planes[0], stem_kernel, bias=False, dim=dim),
            _BNReLU(planes[0]),
        )
        self.enc_down, self.enc_blocks = nn.ModuleList(), nn.ModuleList()
        ch = planes[0]
        skips = [ch]
        for i in range(4):
            self.enc_down.append(ConvNormAct(ch, ch, 2, stride=2, dim=dim))
            self.enc_blocks.append(_stack(ch, planes[i], blocks[i], dim))
            ch = planes[i]
            skips.append(ch)
        self.dec_up, self.dec_blocks = nn.ModuleList(), nn.ModuleList()
        for j in range(4):
            p = planes[4 + j]
            self.dec_up.append(ConvNormAct(ch, p, 2, stride=2, transposed=True, dim=dim))
            self.dec_blocks.append(_stack(p + skips[3 - j], p, blocks[4 + j], dim))
            ch = p
        self.head = SparseConv(ch, out_channels, 1, dim=dim) if out_channels is not None else None
        self.out_channels = out_channels if out_channels is not None else ch

    def encode(self, x: SparseTensor) -> list[SparseTensor]:
        """Stem and encoder stage outputs, fine to coarse (strides 1, 2, 4, 8, 16)."""
        feats = [self.stem(x)]
        for down, blk in zip(self.enc_down, self.enc_blocks):
            feats.append(blk(down(feats[-1])))
        return feats

    def decode(self, encoder: list[SparseTensor], mask_hook: MaskHook | None = None) -> list[SparseTensor]:
        """Decoder level outputs, coarse to fine (strides 8, 4, 2, 1)."""
        x, levels = encoder[-1], []
        for j, (up, blk) in enumerate(zip(self.dec_up, self.dec_blocks)):
            u, skip = up(x), encoder[3 - j]
            if mask_hook is not None:
                u, skip = mask_hook(j, u, skip)
            x = blk(sparse_cat([u, skip]))
            levels.append(x)
        return levels

    def forward(self, x: SparseTensor, mask_hook: MaskHook | None = None) -> SparseUNetOutput:
        encoder = self.encode(x)
        levels = self.decode(encoder, mask_hook)
        out = self.head(levels[-1]) if self.head is not None else levels[-1]
        return SparseUNetOutput(out=out, levels=levels, encoder=encoder)


class _BNReLU(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.norm = nn.BatchNorm1d(channels)

    def forward(self, x: SparseTensor) -> SparseTensor:
        return x.replace(self.norm(x.feats).relu())


def _stack(in_ch: int, out_ch: int, n: int, dim: int) -> nn.Sequential:
    return nn.Sequential(*[SparseBasicBlock(in_ch if i == 0 else out_ch, out_ch, dim=dim) for i in range(n)])


def build_sparse_unet(
    name: str, in_channels: int, out_channels: int | None = None, dim: int = 3, stem_kernel: int = 5
) -> SparseResUNet:
    """A registered U-Net (see :data:`UNET_CONFIGS`) by name, e.g. ``"Res16UNet34C"`` or ``"Res16UNet14"``."""
    if name not in UNET_CONFIGS:
        raise ValueError(f"unknown sparse U-Net {name!r}; known: {', '.join(sorted(UNET_CONFIGS))}")
    blocks, planes = UNET_CONFIGS[name]
    return SparseResUNet(in_channels, out_channels, planes, blocks, stem_kernel=stem_kernel, dim=dim)
