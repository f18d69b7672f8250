"""SparK (Tian et al., ICLR 2023): BERT-style pretraining of a CNN with sparse convolutions on the visible sites.

1. **Mask.** 60 % of the cells of the encoder's coarsest grid (cells of ``r = downsample_ratio`` pixels, 32 for an
   ImageNet ResNet) are masked (the ``masker``, default ``{name: random_tokens, ratio: 0.6}`` on that grid) and the
   mask is spread to the pixels.
2. **Encode.** The :class:`~geomask.nn.sparse_cnn.SparseCNN` runs on the visible pixel sites only (a
   :class:`~geomask.sparse.SparseTensor`, :func:`~geomask.grids.to_sparse`): true sparsity, no work on the masked
   sites (SparK's own code emulates this densely, re-masking after every layer; both give the same numbers, see
   ``tests/nn/test_sparse_cnn.py``).  Every stage ``j`` gives sparse features at stride ``s_j``.
3. **Densify.** Each scale is normalised over its active sites (a :class:`~geomask.sparse.SparseBatchNorm`), moved
   onto the full grid of its stride with its own learnable mask token at the masked sites
   (:func:`geomask.sparse.densify.densify`, the op MSM's decoder uses) and projected to the decoder's width at
   that stride (1×1 at the coarsest scale, 3×3 elsewhere; identity where the widths agree).
4. **Decode.** A light UNet-like decoder (:class:`SparKDecoder`) goes from stride ``r`` to 1 by ``log2 r`` blocks
   (transposed 4×4/2 convolution, then two 3×3 convolutions with BatchNorm, ReLU6 between), adding the densified
   scale of each stride on the way, and a 1×1 convolution gives the pixels.
5. **Loss.** Per-patch normalised pixels (``norm_pix`` on ``r × r`` patches, eps 1e-6) against the prediction
   patchified the same way, L2 on the masked patches (the ``loss`` section, default ``{name: l2}``):

   .. math::
       \\mathcal{L} = \\frac{1}{|M|} \\sum_{i \\in M} \\frac{1}{P} \\lVert \\hat{x}_i - \\bar{x}_i \\rVert_2^2,
       \\qquad P = r^2 C

Batches are :class:`~geomask.grids.GridBatch` / ``ImageBatch`` (data kinds ``images`` and ``shapes``), augmented
with the step's generator first (as MAE).  ``encoder`` is the sparse CNN; :meth:`SparseCNN.to_dense
<geomask.nn.sparse_cnn.SparseCNN.to_dense>` gives the dense ResNet to fine-tune.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from geomask.errors import UsageError
from geomask.grids import patch_mask_to_sites, patchify, to_sparse
from geomask.masking.base import Masker
from geomask.masking.layout import TokenGridLayout
from geomask.methods.base import Method
from geomask.methods.compose import loss_section, masker_section, section_aliases
from geomask.methods.mae import IMAGE_DATA, MAEOutput, image_values
from geomask.nn.sparse_cnn import SparseCNN, build_sparse_cnn
from geomask.sparse import SparseBatchNorm, SparseTensor
from geomask.sparse.densify import densify
from geomask.targets import NormalizedPatches

__all__ = ["SparK", "SparKDecoder", "build_spark", "full_grid"]


class _UpBlock(nn.Module):
    """×2 up-sampling: ``ConvTranspose2d(c, c, 4, 2, 1)`` → 3×3 conv, BN, ReLU6 → 3×3 conv to ``c_out``, BN."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.up = nn.ConvTranspose2d(cin, cin, 4, 2, 1)
        self.conv = nn.Sequential(
            nn.Conv2d(cin, cin, 3, 1, 1, bias=False),
            nn.BatchNorm2d(cin),
            nn.ReLU6(),
            nn.Conv2d(cin, cout, 3, 1, 1, bias=False),
            nn.BatchNorm2d(cout),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(self.up(x))


class SparKDecoder(nn.Module):
    """SparK's light UNet-like decoder from stride ``ratio`` to the pixels.

    Args:
        ratio: the encoder's downsample ratio (a power of two); ``n = log2 ratio`` up-sampling blocks.
        width: channels at stride ``ratio``; halved by every block (``width / 2^i`` at level ``i``).
        out_channels: predicted channels per pixel.

    Shapes:
        ``levels``: ``n + 1`` entries, level ``i`` at stride ``ratio / 2^i``: ``[B, width / 2^i, H_i, W_i]`` or
        ``None`` (nothing to add there; level 0 is required) → ``[B, out_channels, H, W]``.
    """

    def __init__(self, ratio: int, width: int, out_channels: int) -> None:
        super().__init__()
        n = int(round(math.log2(ratio)))
        if ratio < 1 or 2**n != ratio:
            raise UsageError(f"the decoder needs a power-of-two downsample ratio, got {ratio}")
        if width % max(2**n, 1) or width < 2**n:
            raise UsageError(f"decoder_width must be a multiple of the downsample ratio {ratio}, got {width}")
        self.widths = tuple(width // 2**i for i in range(n + 1))
        self.blocks = nn.ModuleList(_UpBlock(a, b) for a, b in zip(self.widths[:-1], self.widths[1:]))
        self.proj = nn.Conv2d(self.widths[-1], out_channels, 1)

    def forward(self, levels: Sequence[Tensor | None]) -> Tensor:
        if len(levels) != len(self.widths) or levels[0] is None:
            raise UsageError(f"the decoder takes {len(self.widths)} levels, the first one given")
        x: Tensor = levels[0]
        for i, blk in enumerate(self.blocks):
            if i > 0 and levels[i] is not None:
                x = x + levels[i]
            x = blk(x)
        if len(self.blocks) and levels[-1] is not None:
            x = x + levels[-1]
        return self.proj(x)


def full_grid(batch_size: int, grid: Sequence[int], stride: int, device: torch.device) -> SparseTensor:
    """Every site of ``batch_size`` grids ``(h, w)`` at ``stride`` (coordinates in pixels), rows in ``[B, h, w]``
    order; no feature channels (a site set for :func:`~geomask.sparse.densify.densify`)."""
    axes = [torch.arange(batch_size, device=device)] + [torch.arange(g, device=device) * stride for g in grid]
    coords = torch.stack(torch.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 1 + len(grid))
    return SparseTensor(coords, torch.zeros(len(coords), 0, device=device), stride)


class SparK(Method):
    """SparK pretraining (module docstring).

    Args:
        encoder: the :class:`~geomask.nn.sparse_cnn.SparseCNN` (``sparse=True``).
        decoder_width: the decoder's channels at the coarsest stride.
        masker: chooses the masked cells of the coarsest grid (a :class:`TokenGridLayout` masker).
        loss: ``loss(pred [B, L, P], target [B, L, P], mask [B, L]) -> scalar`` (default: masked L2).
        target: maps raw patch tokens to the target (default: ``norm_pix``); ``None``: raw pixels.
    """

    data_kinds = IMAGE_DATA

    def __init__(
        self,
        encoder: SparseCNN,
        decoder_width: int,
        masker: Masker,
        loss: nn.Module,
        target: nn.Module | None = None,
    ) -> None:
        super().__init__()
        if not encoder.sparse:
            raise UsageError("SparK needs a sparse CNN (sparse=True)")
        self.encoder, self.masker, self.criterion, self.target = encoder, masker, loss, target
        self.ratio = encoder.downsample_ratio
        self.decoder = SparKDecoder(self.ratio, decoder_width, encoder.in_channels)
        # scales coarse to fine, each at its decoder level (stride ratio / 2^level)
        self.scale_levels = [int(round(math.log2(self.ratio // s))) for s in reversed(encoder.strides)]
        chans = list(reversed(encoder.out_channels))
        self.densify_norms = nn.ModuleList(SparseBatchNorm(c) for c in chans)
        self.mask_tokens = nn.ParameterList(nn.Parameter(torch.zeros(c)) for c in chans)
        projs = []
        for i, (c, lv) in enumerate(zip(chans, self.scale_levels)):
            d = self.decoder.widths[lv]
            if i == 0 and c == d:
                projs.append(nn.Identity())
            else:
                k = 1 if i == 0 else 3
                projs.append(nn.Conv2d(c, d, k, 1, k // 2))
        self.densify_projs = nn.ModuleList(projs)
        for t in self.mask_tokens:
            nn.init.trunc_normal_(t, std=0.02, a=-0.02, b=0.02)

    def grid(self, values: Tensor) -> tuple[int, int]:
        """The coarsest grid ``(H / r, W / r)`` of a batch (its sides must be multiples of ``r``)."""
        if values.dim() != 4:
            raise UsageError(f"SparK takes 2-D images [B, C, H, W], got {tuple(values.shape)}")
        h, w = values.shape[2:]
        if h % self.ratio or w % self.ratio:
            raise UsageError(f"image sides must be multiples of the encoder's stride {self.ratio}, got {h} x {w}")
        return h // self.ratio, w // self.ratio

    def reconstruct(self, values: Tensor, mask: Tensor) -> MAEOutput:
        """Encode the visible sites, densify every scale, decode all pixels, score the masked cells.

        Args:
            values: ``[B, C, H, W]``.
            mask: ``[B, L]`` bool on the coarsest grid (``L = H W / r²``, True = masked).

        Returns:
            :class:`~geomask.methods.mae.MAEOutput` with ``pred`` / ``target`` ``[B, L, r² C]``.
        """
        grid = self.grid(values)
        b = values.size(0)
        mask = mask.reshape(b, -1)
        pixels = patch_mask_to_sites(mask, self.ratio, grid)
        feats = self.encoder(to_sparse(values, pixels))
        levels: list[Tensor | None] = [None] * len(self.decoder.widths)
        for i, f in enumerate(reversed(feats)):
            s = f.stride[0]
            full = full_grid(b, (values.size(2) // s, values.size(3) // s), s, values.device)
            dense, _ = densify(self.densify_norms[i](f), full, self.mask_tokens[i])
            dense = dense.reshape(b, values.size(2) // s, values.size(3) // s, -1).permute(0, 3, 1, 2)
            levels[self.scale_levels[i]] = self.densify_projs[i](dense)
        pred = patchify(self.decoder(levels), self.ratio)
        target = patchify(values, self.ratio)
        if self.target is not None:
            target = self.target(target)
        return MAEOutput(self.criterion(pred, target, mask), pred, target, mask)

    def loss_terms(self, batch: Any, generator: torch.Generator) -> dict[str, Tensor]:
        """``loss`` (= ``reconstruction``, the masked patches' loss) and ``masked_ratio``."""
        x = image_values(batch, generator)
        mask = self.masker(TokenGridLayout(x.size(0), self.grid(x), x.device), generator).view(x.size(0), -1)
        loss = self.reconstruct(x, mask).loss
        return {"loss": loss, "reconstruction": loss, "masked_ratio": mask.float().mean().detach()}

    def features(self, batch: Any) -> Tensor:
        """The encoder on every pixel, its last stage averaged: ``[B, C_last]``."""
        x = image_values(batch)
        self.grid(x)
        return self.encoder.pooled(to_sparse(x))


@section_aliases(masker="mask_ratio")
def build_spark(
    *,
    backbone: str = "resnet50",
    in_channels: int = 3,
    widths: Sequence[int] | None = None,
    layers: Sequence[int] | None = None,
    stem_width: int | None = None,
    stem_kernel: int | None = None,
    stem_stride: int | None = None,
    stem_pool: bool | None = None,
    decoder_width: int = 512,
    mask_ratio: float = 0.6,
    masker: Mapping | str | None = None,
    loss: Mapping | str | None = None,
    norm_pix: bool = True,
) -> SparK:
    """SparK by keywords (ResNet-50 at 224, 60 % of the 7 × 7 cells masked, a 512-wide decoder is the default).

    ``backbone`` is a :data:`~geomask.nn.sparse_cnn.CNN_CONFIGS` name; the other encoder keywords override it.
    ``masker`` defaults to ``{name: random_tokens, ratio: mask_ratio}`` on the coarsest grid, ``loss`` to
    ``{name: l2}``; ``norm_pix`` scores per-patch normalised pixels.
    """
    if masker is None and not 0.0 < mask_ratio < 1.0:
        raise UsageError(f"mask_ratio must be in (0, 1), got {mask_ratio}")
    given = {
        "widths": widths,
        "layers": layers,
        "stem_width": stem_width,
        "stem_kernel": stem_kernel,
        "stem_stride": stem_stride,
        "stem_pool": stem_pool,
    }
    encoder = build_sparse_cnn(backbone, in_channels, **{k: v for k, v in given.items() if v is not None})
    msk = masker_section(masker, {"name": "random_tokens", "ratio": mask_ratio}, layout=TokenGridLayout)
    crit = loss_section(loss, {"name": "l2"})
    return SparK(encoder, decoder_width, msk, crit, NormalizedPatches(1e-6) if norm_pix else None)
