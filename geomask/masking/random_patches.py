"""Point-MAE random patch masking: exactly ``round(ratio * G)`` uniformly random patches of every cloud."""

from __future__ import annotations

import torch
from torch import Tensor

from geomask.masking.base import Masker, check_ratio, mask_counts, rank_within_samples, resolve_generator
from geomask.masking.layout import Layout, TokenGridLayout
from geomask.masking.registry import register_masker

__all__ = ["RandomPatchMasker", "random_patch_mask"]


@register_masker("random_patches")
class RandomPatchMasker(Masker):
    """Point-MAE: exactly round(ratio * G) uniformly random patches (tokens) of every sample.

    Every row draws a float32 key and the ``round(ratio * n_b)`` smallest keys of each sample are masked.
    On a dense layout (``[B, G, C]`` centres, a token grid) the keys are drawn as ``[B, G]`` and ranked per row,
    as Point-MAE does, so every sample masks the same number and visible tokens stack to ``[B, G_v, C]``; on
    ragged layouts one stable sort ranks the rows of every sample.  Takes any layout.

    Args:
        ratio: fraction in ``[0, 1]``.
    """

    def __init__(self, ratio: float = 0.6):
        self.ratio = check_ratio("random_patches", "ratio", ratio)

    def mask(self, layout: Layout, generator: torch.Generator) -> Tensor:
        dense, dev = layout.dense_shape, layout.device
        if dense is not None:
            b, g = dense
            keys = torch.rand(b, g, generator=generator, device=generator.device).to(dev)
            rank = keys.argsort(dim=1).argsort(dim=1)
            return (rank < mask_counts(layout.counts(), self.ratio).unsqueeze(1)).reshape(-1)
        batch = layout.batch
        keys = torch.rand(batch.numel(), generator=generator, device=generator.device).to(dev)
        rank = rank_within_samples(batch, keys, layout.num_samples)
        return rank < mask_counts(layout.counts(), self.ratio)[batch]


def random_patch_mask(b: int, g: int, ratio: float, generator: torch.Generator | None = None) -> Tensor:
    """Random patch mask with the same count in every cloud (so visible tokens stack to ``[B, G_v, C]``).

    Pre-layout entry point: ``RandomPatchMasker(ratio)(TokenGridLayout(b, (g,), gen.device), gen).view(b, g)``.

    Args:
        b: clouds B.
        g: patches per cloud G.
        ratio: masked fraction in ``[0, 1]``; ``floor(ratio * G + 0.5)`` patches are masked.
        generator: source of randomness (a fresh OS-seeded one when ``None``).

    Returns:
        ``[B, G]`` bool, True = masked, on the generator's device.
    """
    masker = RandomPatchMasker(ratio)
    gen = resolve_generator(generator)
    return masker(TokenGridLayout(b, (g,), gen.device), gen).view(b, g)
