"""SimMIM's mask generator: random mask patches of ``s = mask_patch / model_patch`` tokens a side, on the token grid.

SimMIM (Xie et al. 2022, ``MaskGenerator(input_size, mask_patch_size, model_patch_size, mask_ratio)``): the
image is cut into mask patches of ``mask_patch_size`` pixels, a random ``ratio`` of them is masked, and the
mask is upsampled ``s`` times per axis to the model's patch (token) grid.  With ``(192, 32, 4, 0.6)`` that is
22 of the 6 x 6 = 36 mask patches (``21.6`` rounds to 22), i.e. 22 * 64 = 1,408 of the 48 x 48 tokens.

The count is the project's rule ``floor(r n + 0.5)``; SimMIM's ``ceil(r n)`` gives the same at its settings
(``36 * 0.6``) but one more where ``r n`` has a fraction below one half (``49 * 0.6 = 29.4``: 29 here, 30 there).
Scaled inputs keep the mask patch in pixels: a 32-pixel CIFAR image with ``mask_patch_size=8`` and
``model_patch_size=2`` has 4 x 4 mask patches of 4 x 4 tokens.  Any grid rank and non-square grids work (every
axis a multiple of ``s``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from geomask.errors import UsageError
from geomask.masking.base import Masker, check_int, check_ratio, resolve_generator
from geomask.masking.layout import TokenGridLayout
from geomask.masking.random_patches import RandomPatchMasker
from geomask.masking.registry import register_masker

__all__ = ["SimMIMMasker", "simmim_mask"]


@register_masker("simmim")
class SimMIMMasker(Masker):
    """SimMIM: round(ratio * n) random mask patches of (mask / model patch)^D tokens, upsampled to the tokens.

    The mask patches are a :class:`~geomask.masking.random_patches.RandomPatchMasker` draw on the coarse grid
    ``grid // s`` (one ``[B, n]`` float32 key draw, the smallest keys masked), then repeated ``s`` times along
    every axis.  Takes a :class:`~geomask.masking.layout.TokenGridLayout` of the model's token grid.

    Args:
        ratio: share of the mask patches that is masked (SimMIM: 0.6).
        mask_patch_size: mask patch side in pixels (SimMIM: 32 at 192 px).
        model_patch_size: token side in pixels (SimMIM's Swin: 4; a ViT: its patch size).

    Shapes:
        layout ``(B, (g_1 .. g_D))`` → ``[B * Π g_d]`` bool (True = masked), constant on every ``s^D`` block.
    """

    layouts = (TokenGridLayout,)

    def __init__(self, ratio: float = 0.6, mask_patch_size: int = 32, model_patch_size: int = 4) -> None:
        self.ratio = check_ratio("simmim", "ratio", ratio)
        self.mask_patch_size = check_int("simmim", "mask_patch_size", mask_patch_size)
        self.model_patch_size = check_int("simmim", "model_patch_size", model_patch_size)
        if self.mask_patch_size % self.model_patch_size:
            raise UsageError(
                f"simmim: mask_patch_size {self.mask_patch_size} must be a multiple of "
                f"model_patch_size {self.model_patch_size}"
            )
        self.blocks = RandomPatchMasker(self.ratio)

    @property
    def scale(self) -> int:
        """Tokens per mask patch side, ``s``."""
        return self.mask_patch_size // self.model_patch_size

    def mask(self, layout: TokenGridLayout, generator: torch.Generator) -> Tensor:  # type: ignore[override]
        s, grid, b = self.scale, layout.shape, layout.num_samples
        if any(g % s for g in grid):
            raise UsageError(f"simmim: token grid {grid} must be a multiple of {s} (mask patch / model patch) per axis")
        coarse = tuple(g // s for g in grid)
        out = self.blocks(TokenGridLayout(b, coarse, layout.device), generator).view(b, *coarse)
        for axis in range(len(grid)):
            out = torch.repeat_interleave(out, s, dim=1 + axis)
        return out.reshape(-1)


def simmim_mask(
    batch_size: int,
    input_size: int | Sequence[int],
    mask_patch_size: int = 32,
    model_patch_size: int = 4,
    ratio: float = 0.6,
    generator: torch.Generator | None = None,
) -> Tensor:
    """SimMIM's ``MaskGenerator(input_size, mask_patch_size, model_patch_size, ratio)`` for a batch.

    Args:
        batch_size: ``B``.
        input_size: the image size in pixels, an int (square) or one int per axis; a multiple of
            ``mask_patch_size`` per axis.

    Shapes:
        → ``[B, g_1 .. g_D]`` bool with ``g_d = input_d / model_patch_size`` (True = masked).
    """
    size = (input_size, input_size) if isinstance(input_size, int) else tuple(input_size)
    if any(s % mask_patch_size for s in size):
        raise UsageError(f"simmim: input size {size} must be a multiple of mask_patch_size {mask_patch_size}")
    grid = tuple(s // model_patch_size for s in size)
    masker = SimMIMMasker(ratio, mask_patch_size, model_patch_size)
    gen = resolve_generator(generator)
    return masker(TokenGridLayout(batch_size, grid, gen.device), gen).view(batch_size, *grid)
