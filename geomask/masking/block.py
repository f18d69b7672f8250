"""Point-BERT block masking: a contiguous block of patches around a random patch, 25-45 % per cloud.

For every cloud a ratio ``r ~ U(low, high)`` and a seed patch are drawn; the ``round(r * G)`` patches whose
centres are nearest to the seed's centre (the seed included) are masked.  One sort over the batch.
"""

from __future__ import annotations

import torch
from torch import Tensor

from geomask.errors import UsageError
from geomask.masking.base import Masker, check_ratio, mask_counts, rank_within_samples
from geomask.masking.layout import PatchLayout
from geomask.masking.registry import register_masker

__all__ = ["BlockPatchMasker"]


@register_masker("block")
class BlockPatchMasker(Masker):
    """Point-BERT block: the round(r * G) patches nearest a random seed patch, r ~ U(low, high) per sample.

    Draws, in this order: ``r`` for every sample (float32, ``[B]``), then the seed patch of every sample:
    ``randint(G)`` for ``[B, G, C]`` centres (Point-BERT's numbers), ``floor(u * n_b)`` with float64 ``u`` for
    flattened ragged centres.  Rows are ranked by squared distance to their seed (the seed first, ties by
    row) and the first ``round(r * n_b)`` are masked.  Takes a :class:`~geomask.masking.layout.PatchLayout`.

    Args:
        low, high: range of the per-sample mask ratio.
        ratio: a fixed ratio instead (``low = high = ratio``).

    Shapes:
        :meth:`sample`: centers ``[B, G, 3]`` → ``[B, G]`` bool (True = masked).
    """

    layouts = (PatchLayout,)

    def __init__(self, low: float = 0.25, high: float = 0.45, ratio: float | None = None):
        if ratio is not None:
            low = high = check_ratio("block", "ratio", ratio)
        low, high = check_ratio("block", "low", low), check_ratio("block", "high", high)
        if low > high:
            raise UsageError(f"block: need low <= high, got low={low}, high={high}")
        self.low, self.high = low, high

    def mask(self, layout: PatchLayout, generator: torch.Generator) -> Tensor:  # type: ignore[override]
        centers = layout.flat_centers.detach()
        batch, nb, dev = layout.batch, layout.num_samples, layout.device
        n = batch.numel()
        ratio = torch.rand(nb, generator=generator, device=generator.device).to(dev) * (self.high - self.low) + self.low
        counts = layout.counts()
        dense = layout.dense_shape
        if dense is not None:
            if n == 0:
                return torch.zeros(0, dtype=torch.bool, device=dev)
            offset = torch.randint(dense[1], (nb,), generator=generator, device=generator.device).to(dev)
        else:
            u = torch.rand(nb, generator=generator, dtype=torch.float64, device=generator.device).to(dev)
            offset = torch.minimum((u * counts).long(), (counts - 1).clamp(min=0))
            if n == 0:
                return torch.zeros(0, dtype=torch.bool, device=dev)
        # the seed row of every sample: its offset-th row in row order (rows of a sample need not be contiguous)
        order = torch.argsort(batch, stable=True)
        start = torch.cumsum(counts, 0) - counts
        seed = order[(start + offset).clamp(max=n - 1)]  # a sample without rows has no row to point at
        seed_of_row = seed[batch]
        d = (centers - centers[seed_of_row]).pow(2).sum(-1)
        d = torch.where(seed_of_row == torch.arange(n, device=dev), torch.full_like(d, -1.0), d)  # seed first
        rank = rank_within_samples(batch, d, nb)
        return rank < mask_counts(counts, ratio)[batch]

    def sample(self, centers: Tensor, generator: torch.Generator | None = None) -> Tensor:  # type: ignore[override]
        """Pre-layout entry point: ``self(PatchLayout(centers), generator).view(B, G)`` for ``[B, G, 3]`` centres."""
        b, g = centers.shape[:2]
        return self(PatchLayout(centers), generator).view(b, g)
