"""The dense grid batch: images ``[B, C, H, W]``, volumes and ``T, H, W`` video ``[B, C, *spatial]`` with a patch grid.

:class:`GridBatch` holds the values, the patch size (one int per spatial axis) and optional labels, and
hands out the views of the same batch: patch tokens (transformers), a sparse tensor of the visible pixel or
patch sites (sparse CNNs), a grid graph (GNNs), the token layout its maskers take, MAE's normalised patch
target and the fixed position embedding of its patch grid.  It never changes its tensors in place.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

from geomask.errors import UsageError
from geomask.grids.graph_view import grid_graph
from geomask.grids.norm_pix import norm_pix
from geomask.grids.patches import grid_shape, patch_mask_to_sites, patch_shape, patchify, unpatchify
from geomask.grids.pos_embed import sincos_pos_embed
from geomask.grids.sparse_view import to_sparse
from geomask.masking.layout import TokenGridLayout
from geomask.sparse import SparseTensor

__all__ = ["GridBatch"]


@dataclass(frozen=True, eq=False)
class GridBatch:
    """A batch of dense grids with its patch grid (``D = 1 .. 4`` spatial axes, any channel count).

    Args:
        values: ``[B, C, *spatial]`` floats; every spatial size a multiple of the patch size.
        patch_size: an int (every axis), or one int per spatial axis.
        temporal_patch_size: with an int ``patch_size``, the first axis' patch size (video's tubelet).
        labels: optional per-sample labels ``[B, ...]``.

    Shapes:
        values ``[B, C, s_1 .. s_D]``; patch grid ``g_d = s_d / p_d``; ``L = Π g_d`` tokens of ``P = Π p_d · C``.
    """

    values: Tensor
    patch_size: int | Sequence[int] = 16
    temporal_patch_size: int | None = None
    labels: Tensor | None = None
    patch: tuple[int, ...] = field(init=False)

    def __post_init__(self) -> None:
        v = self.values
        if not isinstance(v, Tensor) or v.dim() < 3 or v.dim() > 6:
            got = tuple(v.shape) if isinstance(v, Tensor) else type(v).__name__
            raise UsageError(f"values must be a [B, C, *spatial] tensor with 1 to 4 spatial axes, got {got}")
        patch = patch_shape(self.patch_size, v.dim() - 2, self.temporal_patch_size)
        grid_shape(v.shape[2:], patch)  # raises unless every size is a multiple
        if self.labels is not None and (not isinstance(self.labels, Tensor) or self.labels.size(0) != v.size(0)):
            raise UsageError(f"labels must be a tensor with {v.size(0)} rows")
        object.__setattr__(self, "patch", patch)

    # ---- shape ---------------------------------------------------------------------------------------------------

    @property
    def batch_size(self) -> int:
        return self.values.size(0)

    @property
    def channels(self) -> int:
        return self.values.size(1)

    @property
    def spatial_shape(self) -> tuple[int, ...]:
        return tuple(self.values.shape[2:])

    @property
    def dim(self) -> int:
        """Spatial rank ``D``."""
        return self.values.dim() - 2

    @property
    def grid_shape(self) -> tuple[int, ...]:
        """Patches per axis."""
        return grid_shape(self.spatial_shape, self.patch)

    @property
    def num_patches(self) -> int:
        return math.prod(self.grid_shape)

    @property
    def patch_dim(self) -> int:
        """``P = Π p_d · C``, the width of a patch token."""
        return math.prod(self.patch) * self.channels

    @property
    def device(self) -> torch.device:
        return self.values.device

    def replace(self, values: Tensor) -> GridBatch:
        """The same patch size and labels with new values (e.g. a filtered or normalised image)."""
        return GridBatch(values, self.patch, labels=self.labels)

    # ---- views ---------------------------------------------------------------------------------------------------

    def tokens(self) -> Tensor:
        """Patch tokens ``[B, L, P]`` (:func:`~geomask.grids.patches.patchify`)."""
        return patchify(self.values, self.patch)

    def from_tokens(self, tokens: Tensor) -> Tensor:
        """Dense ``[B, C', *spatial]`` from tokens ``[B, L, Π p_d · C']`` on this patch grid."""
        return unpatchify(tokens, self.patch, self.spatial_shape)

    def layout(self) -> TokenGridLayout:
        """The patch grid as a masker layout: ``TokenGridLayout(B, grid_shape)``; masks are ``[B * L]``."""
        return TokenGridLayout(self.batch_size, self.grid_shape, self.device)

    def pixel_layout(self) -> TokenGridLayout:
        """Every pixel (site) as a masker layout: ``TokenGridLayout(B, spatial_shape)``."""
        return TokenGridLayout(self.batch_size, self.spatial_shape, self.device)

    def pixel_mask(self, mask: Tensor) -> Tensor:
        """A patch mask ``[B, L]`` (or ``[B * L]``) spread to the pixels, ``[B, *spatial]``."""
        return patch_mask_to_sites(mask.reshape(self.batch_size, -1), self.patch, self.grid_shape)

    def to_sparse(self, mask: Tensor | None = None, level: str = "pixel") -> SparseTensor:
        """Visible sites as a sparse tensor (:func:`~geomask.grids.sparse_view.to_sparse`).

        Args:
            mask: True = masked: a patch mask ``[B, L]`` (either level; spread to pixels for ``"pixel"``) or a
                pixel mask ``[B, *spatial]`` (``"pixel"`` only); ``None`` keeps everything.
            level: ``"pixel"`` (features ``[N, C]``, stride 1) or ``"patch"`` (features ``[N, P]``, stride = patch).
        """
        if level == "patch":
            return to_sparse(self.values, mask, self.patch)
        if level != "pixel":
            raise UsageError(f"level must be 'pixel' or 'patch', got {level!r}")
        return to_sparse(self.values, self._pixel_level(mask))

    def to_graph(self, mask: Tensor | None = None, neighbours: int = 4, level: str = "pixel"):
        """Visible sites as a PyG grid graph (:func:`~geomask.grids.graph_view.grid_graph`); ``mask`` as
        :meth:`to_sparse`."""
        if level == "patch":
            return grid_graph(self.values, mask, neighbours, self.patch)
        if level != "pixel":
            raise UsageError(f"level must be 'pixel' or 'patch', got {level!r}")
        return grid_graph(self.values, self._pixel_level(mask), neighbours)

    def _pixel_level(self, mask: Tensor | None) -> Tensor | None:
        if mask is None or mask.numel() == self.batch_size * math.prod(self.spatial_shape):
            return mask
        return self.pixel_mask(mask)

    # ---- targets and positions -----------------------------------------------------------------------------------

    def norm_pix(self, eps: float = 1e-6) -> Tensor:
        """MAE's per-patch normalised tokens ``[B, L, P]`` (:func:`~geomask.grids.norm_pix.norm_pix`)."""
        return norm_pix(self.values, self.patch, eps)

    def pos_embed(self, dim: int, cls_token: bool = False) -> Tensor:
        """Fixed sin-cos embedding of the patch grid, ``[L (+1), dim]`` on this batch's device and dtype."""
        return sincos_pos_embed(dim, self.grid_shape, cls_token, dtype=self.values.dtype, device=self.device)
