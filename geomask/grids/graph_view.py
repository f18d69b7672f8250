"""The grid-graph view of a dense batch: its visible pixel (or patch) sites as a PyG graph, 4/8 neighbours.

Nodes are the sites that :func:`~geomask.grids.sparse_view.to_sparse` keeps, in the same order (row-major
``(b, site)``), so the graph and the sparse view of one batch and mask line up row for row.  Edges join
visible sites at the grid offsets of :func:`grid_offsets`; an edge ``u + o_k → u`` (source the neighbour,
target the site, as :meth:`geomask.sparse.SparseTensor.to_pyg`) has ``edge_type = k``, so both directions of
every neighbour pair are present, with opposite offsets.  A masked site is not a node and has no edges.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from geomask.errors import UsageError
from geomask.grids.patches import grid_shape, patch_shape
from geomask.grids.sparse_view import from_sparse, to_sparse
from geomask.sparse import SparseTensor, kernel_offsets

__all__ = ["from_graph", "grid_graph", "grid_offsets"]


def grid_offsets(dim: int, neighbours: int) -> Tensor:
    """Neighbour offsets of a ``D``-dimensional grid, ``[K, D]`` int64.

    ``neighbours = 2 D`` (4 in 2-D, 6 in 3-D): the face neighbours; ``3^D - 1`` (8 in 2-D, 26 in 3-D): every
    cell of the ``3^D`` window but the centre.  Row-major over the window (the order of
    :func:`geomask.sparse.kernel_offsets`), so in 2-D the 4 are ``(-1, 0), (0, -1), (0, 1), (1, 0)``.
    """
    window = kernel_offsets((3,) * dim)
    size = window.abs().sum(1)
    if neighbours == 2 * dim:
        return window[size == 1]
    if neighbours == 3**dim - 1:
        return window[size > 0]
    raise UsageError(f"a {dim}-D grid has {2 * dim} or {3**dim - 1} neighbours, got {neighbours!r}")


def grid_graph(
    x: Tensor,
    mask: Tensor | None = None,
    neighbours: int = 4,
    patch_size: int | Sequence[int] | None = None,
    temporal_patch_size: int | None = None,
):
    """The visible sites of a dense batch as one PyG graph (all samples, told apart by ``batch``).

    Args:
        x: ``[B, C, *spatial]`` with 1 to 4 spatial axes.
        mask: True = masked (the site is not a node): ``[B, *spatial]`` for pixels, ``[B, L]`` / ``[B, *grid]``
            for patches; ``None`` keeps every site.
        neighbours: ``2 D`` or ``3^D - 1`` (see :func:`grid_offsets`); 4 and 8 for images.
        patch_size: ``None`` for pixel nodes, else the patch size of patch nodes (features the patch tokens).
        temporal_patch_size: the first axis' patch size when ``patch_size`` is an int (video).

    Returns:
        a ``torch_geometric.data.Data`` with ``x`` ``[N, C]`` or ``[N, P]``, ``pos`` ``[N, D]`` float (site index
        per axis, in pixels or patches), ``batch`` ``[N]``, ``edge_index`` ``[2, E]`` (source = neighbour),
        ``edge_type`` ``[E]`` (row of :func:`grid_offsets`) and ``num_nodes``.
    """
    from torch_geometric.data import Data

    st = to_sparse(x, mask, patch_size, temporal_patch_size)
    spatial = tuple(x.shape[2:])
    d = len(spatial)
    if patch_size is None:
        shape, sites = spatial, st.coords[:, 1:]
    else:
        patch = patch_shape(patch_size, d, temporal_patch_size)
        shape = grid_shape(spatial, patch)
        sites = torch.div(st.coords[:, 1:], torch.tensor(patch, device=x.device), rounding_mode="floor")
    n, b = len(st), st.coords[:, 0]
    node = torch.full((x.size(0), *shape), -1, dtype=torch.long, device=x.device)
    node[(b, *sites.unbind(1))] = torch.arange(n, device=x.device)
    offsets = grid_offsets(d, neighbours).to(x.device)  # [K, D]
    nb = sites.unsqueeze(0) + offsets.unsqueeze(1)  # [K, N, D]
    size = torch.tensor(shape, device=x.device)
    inside = ((nb >= 0) & (nb < size)).all(-1)
    nb = torch.minimum(nb.clamp(min=0), size - 1)
    source = node[(b.expand(len(offsets), n), *nb.unbind(-1))]  # [K, N], -1 where the neighbour is masked
    valid = inside & (source >= 0)
    target = torch.arange(n, device=x.device).expand(len(offsets), n)
    kind = torch.arange(len(offsets), device=x.device).unsqueeze(1).expand(len(offsets), n)
    return Data(
        x=st.feats,
        pos=sites.to(st.feats.dtype if st.feats.is_floating_point() else torch.float32),
        batch=b,
        edge_index=torch.stack([source[valid], target[valid]]),
        edge_type=kind[valid],
        num_nodes=n,
    )


def from_graph(
    data,
    batch_size: int,
    spatial: Sequence[int],
    patch_size: int | Sequence[int] | None = None,
    temporal_patch_size: int | None = None,
) -> Tensor:
    """The dense batch back from a grid graph's ``x``, ``pos`` and ``batch``, zeros at the missing sites.

    Shapes:
        ``x`` ``[N, C]`` or ``[N, P]``, ``pos`` ``[N, D]``, ``batch`` ``[N]`` → ``[B, C, *spatial]``.
    """
    spatial = tuple(int(s) for s in spatial)
    sites = data.pos.round().long()
    if patch_size is not None:
        patch = patch_shape(patch_size, len(spatial), temporal_patch_size)
        sites = sites * torch.tensor(patch, device=sites.device)
        stride: int | tuple[int, ...] = patch
    else:
        stride = 1
    st = SparseTensor(torch.cat([data.batch.long().unsqueeze(1), sites], dim=1), data.x, stride)
    return from_sparse(st, batch_size, spatial, patch_size, temporal_patch_size)
