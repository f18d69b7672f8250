"""Point-BERT block masking: a contiguous block of patches around a random patch, 25-45 % per cloud.

For every cloud a ratio ``r ~ U(low, high)`` and a seed patch are drawn; the ``round(r * G)`` patches whose
centres are nearest to the seed's centre (the seed included) are masked.  One sort over the batch.
"""

from __future__ import annotations

import torch
from torch import Tensor

from geomask.masking.base import resolve_generator

__all__ = ["BlockPatchMasker"]


class BlockPatchMasker:
    """Mask a contiguous block of patches of every cloud.

    Args:
        low, high: range of the per-cloud mask ratio.

    Shapes:
        centers ``[B, G, 3]`` → ``[B, G]`` bool (True = masked).
    """

    def __init__(self, low: float = 0.25, high: float = 0.45):
        if not 0.0 <= low <= high <= 1.0:
            raise ValueError(f"need 0 <= low <= high <= 1, got {low}, {high}")
        self.low, self.high = float(low), float(high)

    def sample(self, centers: Tensor, generator: torch.Generator | None = None) -> Tensor:
        b, g, _ = centers.shape
        gen = resolve_generator(generator)
        ratio = torch.rand(b, generator=gen, device=gen.device).to(centers.device) * (self.high - self.low) + self.low
        count = torch.floor(ratio * g + 0.5).long()
        seed = torch.randint(g, (b,), generator=gen, device=gen.device).to(centers.device)
        seed_pos = torch.gather(centers, 1, seed.view(b, 1, 1).expand(b, 1, 3))
        d = (centers.detach() - seed_pos).pow(2).sum(-1)
        d = d.scatter(1, seed.view(b, 1), -1.0)  # the seed first, even with duplicate centres
        rank = torch.empty(b, g, dtype=torch.long, device=centers.device)
        rank.scatter_(1, d.argsort(dim=1, stable=True), torch.arange(g, device=centers.device).expand(b, g))
        return rank < count.unsqueeze(1)

    __call__ = sample

    def __repr__(self) -> str:
        return f"BlockPatchMasker(low={self.low}, high={self.high})"
