"""geomask.grids: dense grids (images, volumes, ``T, H, W`` video) -- patches, positions and their views.

=====================  ======================================================================================
:class:`GridBatch`     ``[B, C, *spatial]`` with its patch grid; hands out every view below
``patchify``           ``[B, C, *spatial]`` → tokens ``[B, L, Π p · C]`` (MAE's layout, any rank); ``unpatchify``
``norm_pix``           MAE's per-patch normalised tokens (the ``norm_pix`` target of :mod:`geomask.targets`)
``sincos_pos_embed``   fixed N-D sin-cos position embedding (MAE's 2-D layout, optional class-token row)
``to_sparse``          visible pixel or patch sites as a :class:`~geomask.sparse.SparseTensor`; ``from_sparse``
``grid_graph``         visible sites as a PyG graph with 4/8 (2D / 3^D - 1) neighbours; ``from_graph``
=====================  ======================================================================================

Masks follow the masker protocol: True = masked (the site is zeroed or left out).
"""

from geomask.grids.batch import GridBatch
from geomask.grids.graph_view import from_graph, grid_graph, grid_offsets
from geomask.grids.norm_pix import norm_pix
from geomask.grids.patches import grid_shape, patch_mask_to_sites, patch_shape, patchify, unpatchify
from geomask.grids.pos_embed import sincos_1d, sincos_pos_embed
from geomask.grids.sparse_view import from_sparse, to_sparse

__all__ = [
    "GridBatch",
    "from_graph",
    "from_sparse",
    "grid_graph",
    "grid_offsets",
    "grid_shape",
    "norm_pix",
    "patch_mask_to_sites",
    "patch_shape",
    "patchify",
    "sincos_1d",
    "sincos_pos_embed",
    "to_sparse",
    "unpatchify",
]
