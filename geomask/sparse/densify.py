"""Densify: move a sparse tensor's features onto a fuller site set, a learnable mask token where it has none.

The decoders of SparK and MSM both do this at every scale: the encoder ran on the visible sites only, the
decoder needs every site of that stride, so each site of ``full`` takes the feature of the same site in ``x``
when ``x`` holds it, else the scale's mask token:

.. math::
    y_u = \\begin{cases} x_u & u \\in \\mathcal{S}(x) \\\\ m & \\text{otherwise} \\end{cases}
    \\qquad u \\in \\mathcal{S}(\\text{full})

One op for both methods (MSM's full sites come from its teacher's lineage, SparK's are the dense grid).
"""

from __future__ import annotations

import torch
from torch import Tensor

from geomask.sparse.tensor import SparseTensor

__all__ = ["densify", "site_rows"]


def site_rows(level: SparseTensor, coords: Tensor) -> Tensor:
    """Row in ``level`` of the parent site of each site ``coords [Q, 1 + D]`` (-1 where absent).

    ``coords`` are in input units (any stride that divides ``level``'s); the parent is ``⌊x / s⌋`` in grid units.
    """
    st = torch.tensor(level.stride, device=coords.device)
    lvl = level.cache.level(level.coords, level.stride)
    return lvl.lookup(coords[:, 0], torch.div(coords[:, 1:], st, rounding_mode="floor"))


def densify(x: SparseTensor, full: SparseTensor, token: Tensor) -> tuple[Tensor, Tensor]:
    """The features of ``x`` on the sites of ``full``, ``token`` on the sites ``x`` lacks.

    Args:
        x: features on a subset of ``full``'s sites (same stride; every site of ``x`` must be in ``full``).
        full: the site set to fill (its features are not read).
        token: the mask token ``[C]`` (learnable; gradients reach it through every filled site).

    Returns:
        ``(feats, hidden)``: ``feats [N_full, C]`` in ``full``'s row order and ``hidden [N_full]`` bool, True where
        ``x`` had no site (the token was placed).

    Shapes:
        x.feats ``[N, C]``, token ``[C]`` → ``[N_full, C]``, ``[N_full]``.
    """
    if x.coords is full.coords or (x.coords.shape == full.coords.shape and torch.equal(x.coords, full.coords)):
        return x.feats, torch.zeros(len(full), dtype=torch.bool, device=x.feats.device)
    rows = site_rows(full, x.coords)
    if len(rows) and bool((rows < 0).any()):
        raise ValueError("densify: some sites of x are not sites of full")
    present = torch.zeros(len(full), dtype=torch.bool, device=x.feats.device)
    present[rows] = True
    base = token.to(x.feats.dtype).expand(len(full), -1)
    return base.index_put((rows,), x.feats), ~present
