"""Softmax aggregation over in-neighbours, with a dense fan-in table for low in-degree graphs.

The aggregation of DeeperGCN's GENConv (PyG ``SoftmaxAggregation`` with a scalar inverse temperature
:math:`t`):

.. math::
    \\mathbf{a}_i = \\sum_{j \\in \\mathcal{N}(i)}
    \\frac{\\exp(t\\, \\mathbf{m}_j)}{\\sum_{k \\in \\mathcal{N}(i)} \\exp(t\\, \\mathbf{m}_k)} \\odot \\mathbf{m}_j

computed per channel; a node with no in-neighbour gets zero.  An AIG has in-degree at most 2 (AND 2,
NOT/PO 1, PI/CONST 0), so the neighbours of every node fit a ``[N, K]`` table (K = max in-degree): one
``index_select`` gathers all messages, the softmax runs over a short dense axis (for K = 2 it is a
sigmoid of the difference), and the backward is one ``index_add_``.  Graphs with a larger in-degree
fall back to the edge-wise scatter formulation.  Build the table once per batch with
:func:`build_neighbors` and reuse it in every layer.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor
from torch_geometric.utils import scatter, softmax

__all__ = ["NeighborTable", "build_neighbors", "dense_table", "softmax_aggregate"]


@dataclass(frozen=True, eq=False)
class NeighborTable:
    """In-neighbours of every node, dense (``table``) or edge-wise (``src``/``dst``).

    Args:
        num_nodes: N.
        table: ``[N, K]`` int64 source node per slot, ``N`` (a zero row) in unused slots; ``None`` in the
            edge-wise form.
        valid: ``[N, K]`` bool, True on used slots (slot 0 of a node without in-neighbours is marked used:
            it reads the zero row, so the node aggregates to zero without a NaN).
        full: ``[N, 1]`` float, 0 where a node has exactly two in-neighbours and ``+inf`` elsewhere (the
            K = 2 fast path adds it to the logit difference so that the weight of slot 0 becomes 1).
        src, dst: ``[E]`` edge endpoints (edge-wise form only).
    """

    num_nodes: int
    table: Tensor | None = None
    valid: Tensor | None = None
    full: Tensor | None = None
    src: Tensor | None = None
    dst: Tensor | None = None

    @property
    def dense(self) -> bool:
        return self.table is not None


def build_neighbors(edge_index: Tensor, num_nodes: int, max_dense: int = 8) -> NeighborTable:
    """Group the edges ``edge_index[0] → edge_index[1]`` by target node.

    Args:
        edge_index: ``[2, E]`` int64, source (driver) first.
        num_nodes: N.
        max_dense: largest in-degree stored as a dense table; above it the edge-wise form is used.

    Returns:
        The :class:`NeighborTable`.
    """
    src, dst = edge_index[0], edge_index[1]
    device = edge_index.device
    if src.numel() == 0:
        table = torch.full((num_nodes, 1), num_nodes, dtype=torch.long, device=device)
        valid = torch.ones(num_nodes, 1, dtype=torch.bool, device=device)
        return NeighborTable(num_nodes, table, valid, None)
    deg = torch.bincount(dst, minlength=num_nodes)
    k = int(deg.max())
    if k > max_dense:
        return NeighborTable(num_nodes, src=src, dst=dst)
    order = torch.argsort(dst, stable=True)
    dst_sorted = dst[order]
    start = torch.cumsum(deg, 0) - deg
    pos = torch.arange(dst.numel(), device=device) - start[dst_sorted]
    table = torch.full((num_nodes, k), num_nodes, dtype=torch.long, device=device)
    table[dst_sorted, pos] = src[order]
    return dense_table(table, num_nodes)


def dense_table(table: Tensor, num_src: int) -> NeighborTable:
    """Wrap a ``[T, K]`` table of source rows (``num_src`` in unused slots) as a :class:`NeighborTable`."""
    used = table < num_src
    valid = used.clone()
    valid[:, 0] = True
    full = None
    if table.shape[1] == 2:
        full = torch.where(used.all(1), 0.0, float("inf")).unsqueeze(1)
    return NeighborTable(table.shape[0], table, valid, full)


def softmax_aggregate(m: Tensor, neighbors: NeighborTable, t: Tensor) -> Tensor:
    """Per-channel softmax-weighted sum of the in-neighbours' messages.

    Args:
        m: ``[S, H]`` per-source messages (GENConv: ``relu(x) + eps``; the message depends only on the
            source node, so it is computed on nodes, not on edges).
        neighbors: from :func:`build_neighbors` (S = T = N), or a table over other source rows (the cone
            classes of :mod:`geomask.nn.classes`) whose unused slots hold ``S``.
        t: scalar (``[1]``) inverse temperature.

    Returns:
        ``[T, H]`` aggregated messages, T the number of table rows (targets).
    """
    s, h = m.shape
    if not neighbors.dense:
        src, dst = neighbors.src, neighbors.dst
        mj = m.index_select(0, src)
        alpha = softmax(mj * t, dst, num_nodes=neighbors.num_nodes)
        return scatter(mj * alpha, dst, 0, dim_size=neighbors.num_nodes, reduce="sum")
    table = neighbors.table
    n, k = table.shape
    m_pad = torch.cat([m, m.new_zeros(1, h)], 0)
    g = m_pad.index_select(0, table.reshape(-1)).view(n, k, h)
    if k == 1:
        return g[:, 0]
    if k == 2 and neighbors.full is not None:
        g0, g1 = g.unbind(1)
        d = g0 - g1
        a = torch.sigmoid(d * t + neighbors.full)
        return g1 + a * d
    logits = (g * t).masked_fill(~neighbors.valid.unsqueeze(-1), float("-inf"))
    return (torch.softmax(logits, dim=1) * g).sum(1)
