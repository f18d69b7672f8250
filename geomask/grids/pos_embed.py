"""Fixed sin-cos position embeddings of patch grids in any rank (MAE's ``get_2d_sincos_pos_embed``, N-D).

1-D (the Transformer's, MAE's ``get_1d_sincos_pos_embed_from_grid``): for ``E`` dims and position ``x``

.. math::
    \\omega_i = T^{-i / (E/2)},\\quad i = 0 .. E/2 - 1,\\qquad
    \\mathrm{emb}(x) = [\\sin(x\\omega_0) .. \\sin(x\\omega_{E/2-1}),\\ \\cos(x\\omega_0) .. \\cos(x\\omega_{E/2-1})]

with ``T = 10000``.  N-D: the ``E`` dims are split into ``D`` equal chunks, one 1-D embedding per axis, and the
chunks are concatenated **last axis first**.  In 2-D that is MAE's layout exactly: its
``np.meshgrid(grid_w, grid_h)`` puts the column (``w``) coordinate in ``grid[0]``, so the first half of the
dims encodes ``w`` and the second half ``h``.  Tokens are row-major over the grid (the order of
:func:`~geomask.grids.patches.patchify`); an optional all-zero row for a class token comes first.
Computed in float64 (MAE mixes float32 positions with float64 frequencies) and cast to ``dtype``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from geomask.errors import UsageError

__all__ = ["sincos_1d", "sincos_pos_embed"]


def sincos_1d(dim: int, positions: Tensor, temperature: float = 10000.0) -> Tensor:
    """The 1-D sin-cos embedding of every position (first half sines, second half cosines).

    Shapes:
        positions ``[M]`` (any real dtype) → ``[M, dim]`` float64; ``dim`` must be even.
    """
    if dim < 2 or dim % 2:
        raise UsageError(f"a sin-cos embedding needs an even dimension >= 2, got {dim}")
    half = dim // 2
    omega = 1.0 / temperature ** (torch.arange(half, dtype=torch.float64, device=positions.device) / half)
    out = positions.reshape(-1).to(torch.float64)[:, None] * omega[None, :]
    return torch.cat([out.sin(), out.cos()], dim=1)


def sincos_pos_embed(
    dim: int,
    grid: int | Sequence[int],
    cls_token: bool = False,
    temperature: float = 10000.0,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> Tensor:
    """Fixed sin-cos position embedding of a ``D``-dimensional patch grid (MAE's layout in 2-D).

    Args:
        dim: embedding width ``E``; a multiple of ``2 D``.
        grid: the patch grid ``(g_1 .. g_D)`` (an int is a 1-D grid); non-square allowed.
        cls_token: prepend one all-zero row (MAE's ``cls_token=True``).
        temperature: the base ``T`` of the frequencies.
        dtype, device: of the result.

    Shapes:
        → ``[L, E]`` or ``[1 + L, E]`` with ``L = Π g_d``; row ``1 + r`` (with a class token) is the token at
        row-major grid index ``r``, and dims ``[k E/D, (k+1) E/D)`` encode axis ``D - 1 - k``.
    """
    grid = (int(grid),) if isinstance(grid, int) else tuple(int(g) for g in grid)
    d = len(grid)
    if d == 0 or min(grid) < 0:
        raise UsageError(f"grid must be one or more sizes >= 0, got {grid}")
    if dim < 2 * d or dim % (2 * d):
        raise UsageError(f"a {d}-D sin-cos embedding needs a width divisible by {2 * d}, got {dim}")
    axes = [torch.arange(g, dtype=torch.float64, device=device) for g in grid]
    coords = torch.meshgrid(*axes, indexing="ij")  # D tensors of shape grid, row-major
    chunks = [sincos_1d(dim // d, coords[axis].reshape(-1), temperature) for axis in reversed(range(d))]
    emb = torch.cat(chunks, dim=1)
    if cls_token:
        emb = torch.cat([emb.new_zeros(1, dim), emb], dim=0)
    return emb.to(dtype)
