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

The table and both paths live in the shared message-passing kernel (:mod:`geomask.ops.neighbor_aggregate`:
:func:`~geomask.ops.neighbor_aggregate.neighbor_aggregate`, which also does sum / mean / max and typed edges); this
module keeps the GENConv-facing names.
"""

from __future__ import annotations

import dataclasses

from torch import Tensor

from geomask.ops.neighbor_aggregate import NeighborTable, build_neighbors, dense_table, neighbor_aggregate

__all__ = ["NeighborTable", "build_neighbors", "dense_table", "softmax_aggregate"]


def softmax_aggregate(m: Tensor, neighbors: NeighborTable, t: Tensor) -> Tensor:
    """Per-channel softmax-weighted sum of the in-neighbours' messages.

    Args:
        m: ``[S, H]`` per-source messages (GENConv: ``relu(x) + eps``; the message depends only on the
            source node, so it is computed on nodes, not on edges).
        neighbors: from :func:`build_neighbors` (S = T = N), or a table over other source rows (the cone
            classes of :mod:`geomask.nn.classes`) whose unused slots hold ``S``.  Its edge types, if any,
            are not read here (use :func:`~geomask.ops.neighbor_aggregate.neighbor_aggregate` with ``edge_emb``).
        t: scalar (``[1]``) inverse temperature.

    Returns:
        ``[T, H]`` aggregated messages, T the number of table rows (targets).
    """
    if neighbors.etype is not None:
        neighbors = _untyped(neighbors)
    return neighbor_aggregate(m, neighbors, "softmax", t=t)


def _untyped(nb: NeighborTable) -> NeighborTable:
    return dataclasses.replace(nb, etype=None)
