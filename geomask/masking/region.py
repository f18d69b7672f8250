"""CPCM's RegionMask: split each scene into ``grid^D`` boxes at rank-based pivots, hide a random share of boxes.

Following CPCM (Liu et al., ICCV 2023): along every axis ``d`` the voxels of a scene are sorted, and the
``grid - 1`` pivots are the coordinates found at ranks ``floor(n_b i / grid)`` (``i = 1 .. grid-1``), i.e. the
axis quantiles, so every slab along an axis holds about ``n_b / grid`` voxels. A voxel's box is the tuple of
its slabs; ``round(ratio * grid^D)`` of the ``grid^D`` boxes of every scene are chosen uniformly (empty
boxes count: the ratio is exact over boxes) and the *input features* of their voxels are zeroed while the
geometry (the sites) stays. CPCM uses ``grid = 4`` at 0.1 % labels and ``grid = 8`` at 0.01 %, ratio 0.75.

Everything is batched over scenes through the batch column of the coordinates: one sort per axis for the
whole batch, and one :class:`~geomask.masking.uniform.UniformMasker` draw over all boxes.
"""

from __future__ import annotations

import torch
from torch import Tensor

from geomask.masking.base import Masker, check_int, check_ratio, resolve_generator
from geomask.masking.layout import GridLayout, RowLayout, TokenGridLayout
from geomask.masking.registry import register_masker
from geomask.masking.uniform import UniformMasker

__all__ = ["RegionMasker", "region_ids", "zero_masked"]


def region_ids(coords: Tensor, grid: int, num_scenes: int | None = None) -> Tensor:
    """Box index of every voxel: ``b * grid^D + Σ_d slab_d * grid^(D-1-d)``.

    A voxel's slab along axis ``d`` is the number of the scene's pivots ``<=`` its coordinate, so voxels
    with equal coordinates share a slab.

    Args:
        coords: ``[N, 1 + D]`` integer voxel coordinates, batch index first.
        grid: boxes per axis (>= 1).
        num_scenes: B (``coords[:, 0].max() + 1`` when ``None``).

    Returns:
        ``[N]`` int64 box ids in ``[0, B * grid^D)``.
    """
    if grid < 1:
        raise ValueError(f"grid must be >= 1, got {grid}")
    if coords.dim() != 2 or coords.size(1) < 2:
        raise ValueError(f"coords must be [N, 1 + D], got {tuple(coords.shape)}")
    n, dim = coords.size(0), coords.size(1) - 1
    device = coords.device
    if n == 0:
        return torch.zeros(0, dtype=torch.long, device=device)
    b = coords[:, 0].long()
    if num_scenes is None:
        num_scenes = int(b.max()) + 1
    counts = torch.bincount(b, minlength=num_scenes)
    start = torch.cumsum(counts, 0) - counts
    # rank offsets of the pivots inside each scene: floor(n_b * i / grid), i = 1 .. grid-1  → [B, grid-1]
    i = torch.arange(1, grid, device=device)
    pivot_rank = start[:, None] + torch.div(counts[:, None] * i[None, :], grid, rounding_mode="floor")
    pivot_rank = pivot_rank.clamp(max=n - 1)
    ids = b * grid**dim
    for d in range(dim):  # loop over the D axes, not over voxels
        x = coords[:, 1 + d].long()
        span = int(x.max() - x.min()) + 1
        key = b * span + (x - x.min())
        sorted_x = x[torch.argsort(key)]
        pivots = sorted_x[pivot_rank]  # [B, grid-1]
        if grid > 1:
            slab = (x[:, None] >= pivots[b]).sum(1)
            slab = torch.where(counts[b] > 0, slab, torch.zeros_like(slab))
        else:
            slab = torch.zeros_like(x)
        ids = ids + slab * grid ** (dim - 1 - d)
    return ids


@register_masker("region")
class RegionMasker(Masker):
    """CPCM RegionMask: round(ratio * grid^D) of each scene's grid^D quantile boxes, hidden whole.

    The boxes are :func:`region_ids`; the chosen boxes are a :class:`~geomask.masking.uniform.UniformMasker`
    draw over the ``B * grid^D`` boxes (empty boxes count).  Takes a
    :class:`~geomask.masking.layout.GridLayout` or a :class:`~geomask.masking.layout.TokenGridLayout`.

    Args:
        grid: boxes per axis (CPCM: 4 at 0.1 % labels, 8 at 0.01 %).
        ratio: share of each scene's ``grid^D`` boxes that are masked (exact, half rounds up).

    Shapes:
        coords ``[N, 1 + D]`` → mask ``[N]`` bool (True = the voxel's input features are hidden).
    """

    layouts = (GridLayout, TokenGridLayout)

    def __init__(self, grid: int = 4, ratio: float = 0.75) -> None:
        self.grid = check_int("region", "grid", grid)
        self.ratio = check_ratio("region", "ratio", ratio)
        self.boxes = UniformMasker(self.ratio)

    def mask_boxes(self, layout: GridLayout | TokenGridLayout, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """``(box id [N], box mask [B * grid^D])``: every row's box and which boxes are masked."""
        if isinstance(layout, TokenGridLayout):
            layout = layout.to_grid()
        coords, num_scenes = layout.coords, layout.num_samples
        ids = region_ids(coords, self.grid, num_scenes)
        per_scene = self.grid**layout.dim
        box_batch = torch.arange(num_scenes, device=coords.device).repeat_interleave(per_scene)
        if len(box_batch) == 0:
            return ids, torch.zeros(0, dtype=torch.bool, device=coords.device)
        return ids, self.boxes(RowLayout(box_batch, num_scenes), generator)

    def mask(self, layout: GridLayout | TokenGridLayout, generator: torch.Generator) -> Tensor:  # type: ignore[override]
        ids, box_mask = self.mask_boxes(layout, generator)
        return box_mask[ids] if len(ids) else torch.zeros(0, dtype=torch.bool, device=layout.device)

    def sample_boxes(
        self, coords: Tensor, generator: torch.Generator | None = None, num_scenes: int | None = None
    ) -> tuple[Tensor, Tensor]:
        """Pre-layout entry point of :meth:`mask_boxes` (``GridLayout(coords, num_scenes)``)."""
        return self.mask_boxes(GridLayout(coords, num_scenes), resolve_generator(generator))

    def sample(  # type: ignore[override]
        self, coords: Tensor, generator: torch.Generator | None = None, num_scenes: int | None = None
    ) -> Tensor:
        """Pre-layout entry point: ``self(GridLayout(coords, num_scenes), generator)``, ``[N]`` bool."""
        return self(GridLayout(coords, num_scenes), generator)


def zero_masked(feats: Tensor, mask: Tensor) -> Tensor:
    """Input features with the masked rows set to zero (a new tensor; the geometry is untouched).

    Shapes:
        feats ``[N, C]``, mask ``[N]`` bool → ``[N, C]``.
    """
    if mask.shape != feats.shape[:1]:
        raise ValueError(f"mask must be [{feats.size(0)}], got {tuple(mask.shape)}")
    return feats * (~mask).unsqueeze(1).to(feats.dtype)
