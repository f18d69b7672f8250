"""Uniform per-graph ratio masking: exactly ``round(ratio * n_g)`` random rows of every graph, batched."""

from __future__ import annotations

import torch
from torch import Tensor

from geomask.masking.base import Masker, resolve_generator

__all__ = ["UniformMasker", "per_graph_counts"]


def per_graph_counts(batch: Tensor, ratio: float, num_graphs: int) -> Tensor:
    """``floor(ratio * n_g + 0.5)`` per graph (half rounds up), ``[B]`` int64."""
    n = torch.bincount(batch, minlength=num_graphs)
    return torch.floor(n.to(torch.float64) * ratio + 0.5).to(torch.long)


class UniformMasker(Masker):
    """Mask a fixed fraction of the rows of every graph, chosen uniformly without replacement.

    Every row draws a uniform key; rows are sorted by ``graph + key`` (one sort for the whole batch) and
    the first ``round(ratio * n_g)`` of each graph are masked.

    Args:
        ratio: fraction in ``[0, 1]``.
    """

    def __init__(self, ratio: float):
        if not 0.0 <= ratio <= 1.0:
            raise ValueError(f"mask ratio must be in [0, 1], got {ratio}")
        self.ratio = float(ratio)

    def sample(self, batch: Tensor, generator: torch.Generator | None = None, num_graphs: int | None = None) -> Tensor:
        n = batch.numel()
        if n == 0:
            return torch.zeros(0, dtype=torch.bool, device=batch.device)
        if num_graphs is None:
            num_graphs = int(batch.max()) + 1
        gen = resolve_generator(generator)
        u = torch.rand(n, generator=gen, dtype=torch.float64, device=gen.device).to(batch.device)
        order = torch.argsort(batch.to(torch.float64) + u)
        counts = torch.bincount(batch, minlength=num_graphs)
        start = torch.cumsum(counts, 0) - counts
        rank = torch.empty_like(order)
        rank[order] = torch.arange(n, device=batch.device) - start[batch[order]]
        return rank < per_graph_counts(batch, self.ratio, num_graphs)[batch]

    def __repr__(self) -> str:
        return f"UniformMasker(ratio={self.ratio})"
