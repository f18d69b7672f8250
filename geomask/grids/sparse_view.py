"""The sparse-grid view of a dense batch: a :class:`~geomask.sparse.SparseTensor` of its visible sites.

A dense image is a fully occupied 2-D grid; a masked image is the same grid without its masked sites
(SparK's idea, with true sparsity).  Two site levels:

* **pixel sites** (``patch_size=None``): coordinates ``(b, i_1 .. i_D)`` in pixels, stride 1, features the
  ``C`` channels of the pixel; the mask is ``[B, *spatial]``
  (spread a patch mask with :func:`~geomask.grids.patches.patch_mask_to_sites`);
* **patch sites** (``patch_size=p``): coordinates ``(b, g_1 p_1 .. g_D p_D)`` -- in pixels and multiples of
  the tensor stride ``p`` (MinkowskiEngine's convention, as :mod:`geomask.sparse`) -- features the patch
  token ``[P]`` of :func:`~geomask.grids.patches.patchify`; the mask is ``[B, L]`` or ``[B, *grid]``.

Rows are in row-major order ``(b, site)`` (the order of ``mask.nonzero()``).  True in a mask = masked =
removed.  :func:`from_sparse` scatters back, with zeros at the removed sites.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from geomask.errors import UsageError
from geomask.grids.patches import grid_shape, patch_shape, patchify, unpatchify
from geomask.sparse import SparseTensor

__all__ = ["from_sparse", "to_sparse"]


def _keep(mask: Tensor | None, shape: tuple[int, ...], device: torch.device, what: str) -> Tensor:
    """``~mask`` as ``[B, *grid]`` bool (everything when ``mask`` is None)."""
    if mask is None:
        return torch.ones(shape, dtype=torch.bool, device=device)
    if mask.numel() != math.prod(shape) or mask.size(0) != shape[0]:
        raise UsageError(f"mask must cover the {what} {list(shape)} (True = masked), got {tuple(mask.shape)}")
    return ~mask.to(device=device, dtype=torch.bool).reshape(shape)


def to_sparse(
    x: Tensor,
    mask: Tensor | None = None,
    patch_size: int | Sequence[int] | None = None,
    temporal_patch_size: int | None = None,
) -> SparseTensor:
    """The visible pixel (or patch) sites of a dense batch as a sparse tensor.

    Args:
        x: ``[B, C, *spatial]`` with 1 to 4 spatial axes.
        mask: True = masked (the site is left out); ``[B, *spatial]`` for pixel sites, ``[B, L]`` or
            ``[B, *grid]`` for patch sites; ``None`` keeps every site.
        patch_size: ``None`` for pixel sites, else the patch size of patch sites.
        temporal_patch_size: the first axis' patch size when ``patch_size`` is an int (video).

    Shapes:
        ``[B, C, *spatial]`` → coords ``[N, 1 + D]``, feats ``[N, C]`` (pixels) or ``[N, P]`` (patches), with
        ``N`` the visible sites; stride 1 (pixels) or the patch size (patches).
    """
    if x.dim() < 3 or x.dim() > 6:
        raise UsageError(f"x must be [B, C, *spatial] with 1 to 4 spatial axes, got {tuple(x.shape)}")
    b, spatial = x.size(0), tuple(x.shape[2:])
    if patch_size is None:
        keep = _keep(mask, (b, *spatial), x.device, "pixel grid")
        return SparseTensor(keep.nonzero(), x.movedim(1, -1)[keep])
    patch = patch_shape(patch_size, len(spatial), temporal_patch_size)
    grid = grid_shape(spatial, patch)
    keep = _keep(mask, (b, *grid), x.device, "patch grid")
    coords = keep.nonzero()
    coords[:, 1:] *= torch.tensor(patch, dtype=coords.dtype, device=coords.device)
    tokens = patchify(x, patch).reshape(b, *grid, -1)
    return SparseTensor(coords, tokens[keep], stride=patch)


def from_sparse(
    st: SparseTensor,
    batch_size: int,
    spatial: Sequence[int],
    patch_size: int | Sequence[int] | None = None,
    temporal_patch_size: int | None = None,
) -> Tensor:
    """The dense batch back from a sparse view, zeros at the sites the view does not hold.

    Args:
        st: pixel sites (``patch_size=None``) or patch sites as :func:`to_sparse` builds them.
        batch_size: ``B`` (samples without sites come back all zero).
        spatial: the dense spatial size.
        patch_size, temporal_patch_size: as given to :func:`to_sparse`.

    Shapes:
        coords ``[N, 1 + D]``, feats ``[N, C]`` or ``[N, P]`` → ``[B, C, *spatial]``.
    """
    spatial = tuple(int(s) for s in spatial)
    coords, feats = st.coords, st.feats
    if coords.size(1) - 1 != len(spatial):
        raise UsageError(
            f"the sparse tensor has {coords.size(1) - 1} spatial axes, spatial {spatial} has {len(spatial)}"
        )
    if patch_size is None:
        shape, sites = spatial, coords[:, 1:]
    else:
        patch = patch_shape(patch_size, len(spatial), temporal_patch_size)
        shape = grid_shape(spatial, patch)
        sites = torch.div(coords[:, 1:], torch.tensor(patch, device=coords.device), rounding_mode="floor")
    bounds = torch.tensor((batch_size, *shape), device=coords.device)
    idx = torch.cat([coords[:, :1], sites], dim=1)
    if len(idx) and bool(((idx < 0) | (idx >= bounds)).any()):
        raise UsageError(f"sites fall outside the batch of {batch_size} grids of size {shape}")
    out = feats.new_zeros(batch_size, *shape, feats.size(1))
    out[tuple(idx.unbind(1))] = feats
    if patch_size is None:
        return out.movedim(-1, 1)
    return unpatchify(out.reshape(batch_size, math.prod(shape), -1), patch, spatial)
