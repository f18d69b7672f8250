"""Masked Scene Modeling's voxel masking: hide a random share of each scene's voxels (or of its cells).

With ``cell = 1`` exactly ``round(ratio * V_b)`` voxels of every scene are masked. With ``cell = c > 1`` the
voxels are grouped into cubes ``floor(x / c)`` and exactly ``round(ratio * cells_b)`` cubes are masked
whole. Single voxels of a 2-5 cm grid are trivially inpainted from their neighbours; a cell equal to the
coarsest decoder stride (8) hides whole sites of every level of the U-Net, which is what a feature target
at every level needs (a masked stride-8 site then has no visible voxel below it).
"""

from __future__ import annotations

import torch
from torch import Tensor

from geomask.masking.base import resolve_generator
from geomask.masking.uniform import UniformMasker

__all__ = ["VoxelMasker", "cell_ids"]


def cell_ids(coords: Tensor, cell: int) -> tuple[Tensor, Tensor]:
    """``(cell id [N], batch of each cell [M])`` of the cubes ``(b, floor(x / cell))``; ids are ``0 .. M-1``."""
    if cell < 1:
        raise ValueError(f"cell must be >= 1, got {cell}")
    c = coords.long()
    if cell > 1:
        c = torch.cat([c[:, :1], torch.div(c[:, 1:], cell, rounding_mode="floor")], dim=1)
    uniq, inverse = torch.unique(c, dim=0, return_inverse=True)
    return inverse, uniq[:, 0]


class VoxelMasker:
    """Mask a fixed share of every scene's voxels (``cell = 1``) or cubes of ``cell^D`` voxels.

    Args:
        ratio: share in ``[0, 1]`` (MSM: 0.4), exact per scene over voxels or cells (half rounds up).
        cell: cube edge in voxels.

    Shapes:
        coords ``[N, 1 + D]`` → mask ``[N]`` bool (True = hidden from the student).
    """

    def __init__(self, ratio: float = 0.4, cell: int = 1) -> None:
        if cell < 1:
            raise ValueError(f"cell must be >= 1, got {cell}")
        self.inner = UniformMasker(ratio)
        self.ratio = self.inner.ratio
        self.cell = int(cell)

    def sample(self, coords: Tensor, generator: torch.Generator | None = None, num_scenes: int | None = None) -> Tensor:
        if len(coords) == 0:
            return torch.zeros(0, dtype=torch.bool, device=coords.device)
        gen = resolve_generator(generator)
        if num_scenes is None:
            num_scenes = int(coords[:, 0].max()) + 1
        if self.cell == 1:
            return self.inner.sample(coords[:, 0].long(), gen, num_scenes)
        ids, cell_batch = cell_ids(coords, self.cell)
        return self.inner.sample(cell_batch, gen, num_scenes)[ids]

    def __call__(
        self, coords: Tensor, generator: torch.Generator | None = None, num_scenes: int | None = None
    ) -> Tensor:
        return self.sample(coords, generator, num_scenes)

    def __repr__(self) -> str:
        return f"VoxelMasker(ratio={self.ratio}, cell={self.cell})"
