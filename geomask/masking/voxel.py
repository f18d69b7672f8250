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

from geomask.masking.base import Masker, check_int, check_ratio
from geomask.masking.layout import GridLayout, RowLayout, TokenGridLayout
from geomask.masking.registry import register_masker
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


@register_masker("voxel")
class VoxelMasker(Masker):
    """MSM voxel masking: round(ratio * n) of each scene's sites, or of its cell^D cubes hidden whole.

    ``cell = 1``: a :class:`~geomask.masking.uniform.UniformMasker` draw over the sites; ``cell = c``: one over
    the occupied cubes ``(b, floor(x / (c * stride)))`` (:func:`cell_ids`), each masked cube hiding all its
    sites.  Takes a :class:`~geomask.masking.layout.GridLayout` or a
    :class:`~geomask.masking.layout.TokenGridLayout` (there ``cell`` is SimMIM's mask-patch size in tokens).

    Args:
        ratio: share in ``[0, 1]`` (MSM: 0.4), exact per scene over voxels or cells (half rounds up).
        cell: cube edge in sites.

    Shapes:
        coords ``[N, 1 + D]`` → mask ``[N]`` bool (True = hidden from the student).
    """

    layouts = (GridLayout, TokenGridLayout)

    def __init__(self, ratio: float = 0.4, cell: int = 1) -> None:
        self.ratio = check_ratio("voxel", "ratio", ratio)
        self.cell = check_int("voxel", "cell", cell)
        self.inner = UniformMasker(self.ratio)

    def mask(self, layout: GridLayout | TokenGridLayout, generator: torch.Generator) -> Tensor:  # type: ignore[override]
        if layout.num_rows == 0:
            return torch.zeros(0, dtype=torch.bool, device=layout.device)
        if self.cell == 1:
            return self.inner(RowLayout(layout.batch, layout.num_samples), generator)
        if isinstance(layout, TokenGridLayout):
            layout = layout.to_grid()
        ids, cell_batch = cell_ids(layout.coords, self.cell * layout.stride)
        return self.inner(RowLayout(cell_batch, layout.num_samples), generator)[ids]

    def sample(  # type: ignore[override]
        self, coords: Tensor, generator: torch.Generator | None = None, num_scenes: int | None = None
    ) -> Tensor:
        """Pre-layout entry point: ``self(GridLayout(coords, num_scenes), generator)``, ``[N]`` bool."""
        return self(GridLayout(coords, num_scenes), generator)
