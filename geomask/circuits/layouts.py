"""Converters between the canonical AIG graph and the layouts of two published codebases.

* **OpenABC-D** (Chowdhury et al., 2021; also used by MGVGA and HOGA): nodes ``node_type`` 0 = PI,
  1 = PO, 2 = internal AND; no NOT nodes; edges point from a gate to each of its fanins
  (``edge_index[0]`` is the gate); ``edge_type`` 0 = BUFF (plain), 1 = NOT (inverted);
  ``num_inverted_predecessors [N]`` per node.  A constant fanin becomes a PI-typed node named ``CONST0``.
* **DeepGate** (Li et al., 2022): nodes PI / AND / NOT with ``gate`` ids 0 / 1 / 2 and a one-hot ``x``;
  one NOT node per inverted source (shared); edges fanin → gate; no PO nodes (outputs are the nodes
  listed in ``po_index``); ``forward_level`` / ``backward_level`` and the ``forward_index`` /
  ``backward_index`` node-id lists.  A constant becomes a PI-typed node.

Each ``to_*`` takes an :class:`~geomask.io.aig.AIG`; each ``from_*`` returns one, so a round trip can be
checked structurally.
"""

from __future__ import annotations

import torch
from torch_geometric.data import Data

from geomask.circuits.graph import NodeType, aig_to_graph, graph_to_aig
from geomask.io.aig import AIG
from geomask.ops.dag import reverse_levels

__all__ = ["from_deepgate", "from_openabc", "to_deepgate", "to_openabc"]

_OPENABC = {NodeType.PI: 0, NodeType.CONST: 0, NodeType.PO: 1, NodeType.AND: 2}


def to_openabc(aig: AIG) -> Data:
    """The OpenABC-D layout of ``aig`` (latches cut into pseudo PIs/POs)."""
    g = aig_to_graph(aig, "attr")
    lut = torch.full((len(NodeType),), -1, dtype=torch.long)
    for k, v in _OPENABC.items():
        lut[k] = v
    ei = g.edge_index.flip(0)  # gate -> fanin
    n_inv = torch.zeros(g.num_nodes, dtype=torch.long).index_add_(0, g.edge_index[1], g.edge_type)
    return Data(
        node_type=lut[g.node_type],
        edge_index=ei,
        edge_type=g.edge_type.clone(),
        num_inverted_predecessors=n_inv,
        is_const=g.node_type == NodeType.CONST,
        num_latches=g.num_latches,
        num_nodes=g.num_nodes,
    )


def from_openabc(data: Data) -> AIG:
    """Rebuild an AIG from the OpenABC-D layout.  PIs and POs keep their node order as port order."""
    nt = data.node_type
    canon = torch.empty_like(nt)
    canon[nt == 0] = NodeType.PI
    canon[nt == 1] = NodeType.PO
    canon[nt == 2] = NodeType.AND
    if "is_const" in data:
        canon[data.is_const] = NodeType.CONST
    g = Data(
        node_type=canon,
        edge_index=data.edge_index.flip(0),
        edge_type=data.edge_type,
        num_latches=int(getattr(data, "num_latches", 0) or 0),
        num_nodes=int(nt.numel()),
    )
    return graph_to_aig(g)


def to_deepgate(aig: AIG) -> Data:
    """The DeepGate layout of ``aig`` (shared NOT nodes, no PO nodes)."""
    g = aig_to_graph(aig, "shared")
    keep = g.node_type != NodeType.PO
    n_keep = int(keep.sum())
    new_id = torch.full((g.num_nodes,), -1, dtype=torch.long)
    new_id[keep] = torch.arange(n_keep)
    # PO nodes are dropped: each output is the node that drives it.
    po_drivers = torch.empty(g.po_index.numel(), dtype=torch.long)
    is_po_edge = g.node_type[g.edge_index[1]] == NodeType.PO
    po_rank = g.edge_index[1][is_po_edge] - g.po_index[0]
    po_drivers[po_rank] = new_id[g.edge_index[0][is_po_edge]]
    ei = new_id[g.edge_index[:, ~is_po_edge]]
    gate = g.node_type[keep].clone()
    gate[gate == NodeType.CONST] = NodeType.PI
    gate_id = torch.tensor([0, 1, 2, -1, 0])[gate]  # PI, AND, NOT
    # Levels on the PO-less graph: node order is topological except NOT nodes; sort by the canonical key.
    key = 3 * g.var[keep] + (gate == NodeType.NOT).long()
    order = torch.argsort(key, stable=True).numpy()
    e = ei.numpy()
    fwd = reverse_levels(e[::-1].copy(), order[::-1].copy(), n_keep)
    bwd = reverse_levels(e, order, n_keep)
    return Data(
        x=torch.nn.functional.one_hot(gate_id, 3).float(),
        gate=gate_id,
        edge_index=ei,
        forward_level=torch.from_numpy(fwd),
        backward_level=torch.from_numpy(bwd),
        forward_index=torch.arange(n_keep),
        backward_index=torch.arange(n_keep),
        po_index=po_drivers,
        pi_index=g.pi_index.clone(),
        num_latches=g.num_latches,
        num_nodes=n_keep,
    )


def from_deepgate(data: Data) -> AIG:
    """Rebuild an AIG from the DeepGate layout (outputs from ``po_index``, else the nodes without fanout)."""
    gate = data.gate
    n = int(gate.numel())
    if "po_index" in data:
        drivers = data.po_index
    else:
        drivers = torch.nonzero(torch.bincount(data.edge_index[0], minlength=n) == 0).flatten()
    m = drivers.numel()
    canon = torch.tensor([NodeType.PI, NodeType.AND, NodeType.NOT])[gate]
    pis = data.pi_index if "pi_index" in data else torch.nonzero(gate == 0).flatten()
    const = (gate == 0) & ~torch.isin(torch.arange(n), pis)
    canon[const] = NodeType.CONST
    node_type = torch.cat([canon, torch.full((m,), int(NodeType.PO))])
    ei = torch.cat([data.edge_index, torch.stack([drivers, n + torch.arange(m)])], 1)
    g = Data(
        node_type=node_type,
        edge_index=ei,
        edge_type=torch.zeros(ei.shape[1], dtype=torch.long),
        pi_index=pis,
        po_index=n + torch.arange(m),
        num_latches=int(getattr(data, "num_latches", 0) or 0),
        num_nodes=n + m,
    )
    return graph_to_aig(g)
