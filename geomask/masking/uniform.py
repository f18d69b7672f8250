"""Uniform per-sample ratio masking: exactly ``round(ratio * n_b)`` random rows of every sample, batched."""

from __future__ import annotations

import torch
from torch import Tensor

from geomask.masking.base import Masker, check_ratio, mask_counts
from geomask.masking.layout import Layout
from geomask.masking.registry import register_masker

__all__ = ["UniformMasker", "per_graph_counts"]


def per_graph_counts(batch: Tensor, ratio: float, num_graphs: int) -> Tensor:
    """:func:`~geomask.masking.base.mask_counts` of the rows of every graph (half rounds up), ``[B]`` int64."""
    return mask_counts(torch.bincount(batch, minlength=num_graphs), ratio)


@register_masker("uniform")
class UniformMasker(Masker):
    """Exactly round(ratio * n) uniformly random rows of every sample (nodes, points, tokens or sites).

    Every row draws a uniform float64 key; rows are sorted by ``sample + key`` (one sort for the whole
    batch) and the first ``round(ratio * n_b)`` of each sample are masked.  Takes any layout.

    Args:
        ratio: fraction in ``[0, 1]``.
    """

    def __init__(self, ratio: float):
        self.ratio = check_ratio("uniform", "ratio", ratio)

    def mask(self, layout: Layout, generator: torch.Generator) -> Tensor:
        batch, num = layout.batch, layout.num_samples
        n = batch.numel()
        if n == 0:
            return torch.zeros(0, dtype=torch.bool, device=batch.device)
        u = torch.rand(n, generator=generator, dtype=torch.float64, device=generator.device).to(batch.device)
        order = torch.argsort(batch.to(torch.float64) + u)
        counts = torch.bincount(batch, minlength=num)
        start = torch.cumsum(counts, 0) - counts
        rank = torch.empty_like(order)
        rank[order] = torch.arange(n, device=batch.device) - start[batch[order]]
        return rank < mask_counts(counts, self.ratio)[batch]
