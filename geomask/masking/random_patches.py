"""Point-MAE random patch masking: exactly ``round(ratio * G)`` uniformly random patches of every cloud."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from geomask.masking.base import resolve_generator

__all__ = ["random_patch_mask"]


def random_patch_mask(b: int, g: int, ratio: float, generator: torch.Generator | None = None) -> Tensor:
    """Random patch mask with the same count in every cloud (so visible tokens stack to ``[B, G_v, C]``).

    Args:
        b: clouds B.
        g: patches per cloud G.
        ratio: masked fraction in ``[0, 1]``; ``floor(ratio * G + 0.5)`` patches are masked.
        generator: source of randomness (a fresh OS-seeded one when ``None``).

    Returns:
        ``[B, G]`` bool, True = masked, on the generator's device.
    """
    if not 0.0 <= ratio <= 1.0:
        raise ValueError(f"mask ratio must be in [0, 1], got {ratio}")
    gen = resolve_generator(generator)
    keys = torch.rand(b, g, generator=gen, device=gen.device)
    rank = keys.argsort(dim=1).argsort(dim=1)
    return rank < math.floor(ratio * g + 0.5)
