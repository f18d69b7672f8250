"""Patches of dense grids: ``patchify`` / ``unpatchify`` for any spatial rank, and patch masks at pixel level.

A dense batch is ``[B, C, *spatial]`` with ``D = len(spatial)`` (2: ``H, W`` images; 3: ``D, H, W`` volumes or
``T, H, W`` video; 1: sequences).  A patch size has one entry per spatial axis; every spatial size must be a
multiple of it, so the patch grid is ``spatial[d] // patch[d]`` per axis and ``L = prod(grid)``.

Token layout (MAE's, generalised): tokens are the patches in row-major order over the patch grid, and a
patch's vector lists its values with the **channel last**, ``(q_1, .., q_D, c)`` row-major -- MAE's
``nchpwq -> nhwpqc`` in 2-D, VideoMAE's ``(p0 p1 p2) c`` in 3-D.  So ``P = prod(patch) * C``.
``unpatchify(patchify(x)) == x`` exactly (both are reshapes and one permutation).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

import torch
from torch import Tensor

from geomask.errors import UsageError

__all__ = ["grid_shape", "patch_shape", "patch_mask_to_sites", "patchify", "unpatchify"]


def _positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or int(value) < 1:
        raise UsageError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def patch_shape(patch_size: int | Sequence[int], dim: int, temporal_patch_size: int | None = None) -> tuple[int, ...]:
    """The patch size as ``D`` ints.

    ``p`` → ``(p,) * D``; with ``temporal_patch_size=t`` the first axis (time of ``T, H, W`` video) gets
    ``t``: ``(t, p, .., p)`` (VideoMAE's tubelet).  A sequence of ``D`` ints is taken as-is.

    Raises:
        UsageError: a size < 1, a sequence of the wrong length, or a temporal size with a sequence.
    """
    dim = _positive_int("spatial rank", dim)
    if isinstance(patch_size, numbers.Integral) and not isinstance(patch_size, bool):
        p = _positive_int("patch_size", patch_size)
        if temporal_patch_size is None:
            return (p,) * dim
        if dim < 2:
            raise UsageError(f"a temporal patch size needs 2 or more axes (t, ...), got {dim}")
        return (_positive_int("temporal_patch_size", temporal_patch_size),) + (p,) * (dim - 1)
    if temporal_patch_size is not None:
        raise UsageError("give temporal_patch_size only with an int patch_size (else list every axis)")
    if not isinstance(patch_size, Sequence) or len(patch_size) != dim:
        raise UsageError(f"patch_size must be an int or {dim} ints, got {patch_size!r}")
    return tuple(_positive_int("patch_size", p) for p in patch_size)


def grid_shape(spatial: Sequence[int], patch: Sequence[int]) -> tuple[int, ...]:
    """Patches per axis, ``spatial[d] // patch[d]`` (UsageError unless every size is a multiple)."""
    if len(spatial) != len(patch):
        raise UsageError(f"patch size {tuple(patch)} has {len(patch)} axes, the grid {tuple(spatial)} {len(spatial)}")
    if any(s % p for s, p in zip(spatial, patch)):
        raise UsageError(f"spatial size {tuple(spatial)} is not a multiple of the patch size {tuple(patch)}")
    return tuple(s // p for s, p in zip(spatial, patch))


def patchify(x: Tensor, patch_size: int | Sequence[int], temporal_patch_size: int | None = None) -> Tensor:
    """Patch tokens of a dense batch (MAE's ``patchify`` for any rank, channel count and non-square size).

    Args:
        x: ``[B, C, *spatial]``.
        patch_size: an int or one int per spatial axis (see :func:`patch_shape`).
        temporal_patch_size: patch size of the first axis of ``T, H, W`` video when ``patch_size`` is an int.

    Shapes:
        ``[B, C, s_1 .. s_D]`` → ``[B, L, P]`` with ``L = Π s_d / p_d`` (row-major over the patch grid) and
        ``P = Π p_d · C`` (channel last inside a patch).
    """
    if x.dim() < 3:
        raise UsageError(f"x must be [B, C, *spatial] with 1 or more spatial axes, got {tuple(x.shape)}")
    b, c, spatial = x.size(0), x.size(1), tuple(x.shape[2:])
    d = len(spatial)
    patch = patch_shape(patch_size, d, temporal_patch_size)
    grid = grid_shape(spatial, patch)
    split = [b, c]
    for g, p in zip(grid, patch):
        split += [g, p]
    # [B, C, g_1, p_1, .., g_D, p_D] -> [B, g_1 .. g_D, p_1 .. p_D, C]
    perm = [0, *range(2, 2 + 2 * d, 2), *range(3, 3 + 2 * d, 2), 1]
    return x.reshape(split).permute(perm).reshape(b, math.prod(grid), math.prod(patch) * c)


def unpatchify(
    tokens: Tensor,
    patch_size: int | Sequence[int],
    spatial: Sequence[int],
    temporal_patch_size: int | None = None,
) -> Tensor:
    """The dense batch back from patch tokens, the exact inverse of :func:`patchify`.

    Args:
        tokens: ``[B, L, P]`` with ``P = Π p_d · C`` (the channel count is ``P / Π p_d``).
        patch_size: as given to :func:`patchify`.
        spatial: the dense spatial size ``(s_1 .. s_D)`` (it fixes the patch grid; non-square allowed).
        temporal_patch_size: as given to :func:`patchify`.

    Shapes:
        ``[B, L, P]`` → ``[B, C, s_1 .. s_D]``.
    """
    spatial = tuple(int(s) for s in spatial)
    d = len(spatial)
    patch = patch_shape(patch_size, d, temporal_patch_size)
    grid = grid_shape(spatial, patch)
    if tokens.dim() != 3 or tokens.size(1) != math.prod(grid) or tokens.size(2) % math.prod(patch):
        raise UsageError(
            f"tokens must be [B, {math.prod(grid)}, k * {math.prod(patch)}] for grid {grid} and patch {patch}, "
            f"got {tuple(tokens.shape)}"
        )
    b, c = tokens.size(0), tokens.size(2) // math.prod(patch)
    x = tokens.reshape(b, *grid, *patch, c)
    # [B, g_1 .. g_D, p_1 .. p_D, C] -> [B, C, g_1, p_1, .., g_D, p_D]
    perm = [0, 2 * d + 1]
    for i in range(d):
        perm += [1 + i, 1 + d + i]
    return x.permute(perm).reshape(b, c, *spatial)


def patch_mask_to_sites(mask: Tensor, patch_size: int | Sequence[int], grid: Sequence[int]) -> Tensor:
    """A per-patch mask spread to the sites (pixels) of every patch (SimMIM's ``repeat_interleave``).

    Args:
        mask: ``[B, L]`` or ``[B, *grid]`` (any dtype; True = masked by convention).
        patch_size: an int or one int per axis.
        grid: the patch grid ``(g_1 .. g_D)``.

    Shapes:
        ``[B, L]`` → ``[B, g_1 p_1, .., g_D p_D]``.
    """
    grid = tuple(int(g) for g in grid)
    patch = patch_shape(patch_size, len(grid))
    if mask.numel() != mask.size(0) * math.prod(grid):
        raise UsageError(f"mask must be [B, {math.prod(grid)}] or [B, *{grid}], got {tuple(mask.shape)}")
    out = mask.reshape(mask.size(0), *grid)
    for axis, p in enumerate(patch):
        if p > 1:
            out = torch.repeat_interleave(out, p, dim=1 + axis)
    return out
