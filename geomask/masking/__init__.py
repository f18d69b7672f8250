"""geomask.masking: maskers choose what to hide, ``masker(layout, generator) -> [N]`` bool (True = masked).

See :mod:`geomask.masking.base` for the protocol and the rounding rule, :mod:`geomask.masking.layout` for the
layouts, and :mod:`geomask.masking.registry` for building maskers by name.
"""

from geomask.masking.base import Masker, mask_counts, rank_within_samples, resolve_generator
from geomask.masking.block import BlockPatchMasker
from geomask.masking.layout import GridLayout, Layout, PatchLayout, RowLayout, TokenGridLayout, as_layout
from geomask.masking.random_patches import RandomPatchMasker, random_patch_mask
from geomask.masking.region import RegionMasker
from geomask.masking.registry import available_maskers, build_masker, register_masker
from geomask.masking.uniform import UniformMasker, per_graph_counts
from geomask.masking.voxel import VoxelMasker

__all__ = [
    "BlockPatchMasker",
    "GridLayout",
    "Layout",
    "Masker",
    "PatchLayout",
    "RandomPatchMasker",
    "RegionMasker",
    "RowLayout",
    "TokenGridLayout",
    "UniformMasker",
    "VoxelMasker",
    "as_layout",
    "available_maskers",
    "build_masker",
    "mask_counts",
    "per_graph_counts",
    "random_patch_mask",
    "rank_within_samples",
    "register_masker",
    "resolve_generator",
]
