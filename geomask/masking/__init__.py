"""geomask.masking: maskers choose what to hide, ``masker(layout, generator) -> [N]`` bool (True = masked).

See :mod:`geomask.masking.base` for the protocol and the rounding rule, :mod:`geomask.masking.layout` for the
layouts, and :mod:`geomask.masking.registry` for building maskers by name.
"""

from geomask.masking.base import Masker, mask_counts, rank_within_samples, resolve_generator
from geomask.masking.block import BlockPatchMasker
from geomask.masking.image_block import BEiTBlockMasker, BlockDraws, beit_block_mask
from geomask.masking.image_disjoint import DisjointMasker, disjoint_masks
from geomask.masking.image_frequency import FrequencyMasker, centered_spectrum, frequency_disc, frequency_filter
from geomask.masking.image_random import RandomTokenMasker, ids_from_mask, mae_random_masking
from geomask.masking.image_simmim import SimMIMMasker, simmim_mask
from geomask.masking.layout import GridLayout, Layout, PatchLayout, RowLayout, TokenGridLayout, as_layout
from geomask.masking.random_patches import RandomPatchMasker, random_patch_mask
from geomask.masking.region import RegionMasker
from geomask.masking.registry import available_maskers, build_masker, register_masker
from geomask.masking.scored import ScoredLayout, ScoredMasker, easy_to_hard
from geomask.masking.sequence_causal import CausalMasker
from geomask.masking.sequence_layout import SequenceLayout
from geomask.masking.sequence_mlm import MLMMasker
from geomask.masking.sequence_ngram import NgramLayout, NgramMasker
from geomask.masking.sequence_replace import IGNORE_INDEX, mlm_replace
from geomask.masking.sequence_span import SpanMasker, geometric_lengths
from geomask.masking.sequence_terminus import TerminusLayout, TerminusMasker
from geomask.masking.sequence_whole_word import WholeWordMasker
from geomask.masking.uniform import UniformMasker, per_graph_counts
from geomask.masking.voxel import VoxelMasker

__all__ = [
    "BEiTBlockMasker",
    "BlockDraws",
    "BlockPatchMasker",
    "DisjointMasker",
    "FrequencyMasker",
    "GridLayout",
    "Layout",
    "Masker",
    "PatchLayout",
    "RandomPatchMasker",
    "RandomTokenMasker",
    "RegionMasker",
    "RowLayout",
    "ScoredLayout",
    "ScoredMasker",
    "SequenceLayout",
    "SpanMasker",
    "MLMMasker",
    "NgramLayout",
    "NgramMasker",
    "WholeWordMasker",
    "CausalMasker",
    "TerminusLayout",
    "TerminusMasker",
    "IGNORE_INDEX",
    "mlm_replace",
    "geometric_lengths",
    "SimMIMMasker",
    "TokenGridLayout",
    "UniformMasker",
    "VoxelMasker",
    "as_layout",
    "available_maskers",
    "beit_block_mask",
    "build_masker",
    "centered_spectrum",
    "disjoint_masks",
    "easy_to_hard",
    "frequency_disc",
    "frequency_filter",
    "ids_from_mask",
    "mae_random_masking",
    "mask_counts",
    "per_graph_counts",
    "random_patch_mask",
    "rank_within_samples",
    "register_masker",
    "resolve_generator",
    "simmim_mask",
]
