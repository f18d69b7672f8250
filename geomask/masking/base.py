"""The masker interface: pick which rows (nodes, sites, latent rows) to hide, per graph, from a generator."""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["Masker", "resolve_generator"]


def resolve_generator(generator: torch.Generator | None) -> torch.Generator:
    """The given generator, or a fresh one seeded from the operating system (never the global RNG)."""
    if generator is not None:
        return generator
    g = torch.Generator()
    g.seed()
    return g


class Masker:
    """Base class of maskers.  Subclasses implement :meth:`sample`.

    A masker is stateless apart from its configuration: all randomness comes from the generator, so the
    same seed gives the same mask.
    """

    def sample(self, batch: Tensor, generator: torch.Generator | None = None, num_graphs: int | None = None) -> Tensor:
        """Choose the masked rows.

        Args:
            batch: ``[N]`` int64 graph index of every row (``Batch.batch``).
            generator: source of randomness (a fresh OS-seeded one when ``None``).
            num_graphs: B (``batch.max() + 1`` when ``None``).

        Returns:
            ``[N]`` bool, True on masked rows, on ``batch``'s device.
        """
        raise NotImplementedError

    def __call__(
        self, batch: Tensor, generator: torch.Generator | None = None, num_graphs: int | None = None
    ) -> Tensor:
        return self.sample(batch, generator, num_graphs)
