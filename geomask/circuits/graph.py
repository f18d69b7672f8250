"""The canonical AIG graph: an :class:`~geomask.io.aig.AIG` as a PyG ``Data``.

Conventions:

* **Node types** (:class:`NodeType`): ``PI`` (primary inputs, then latch outputs as pseudo-inputs),
  ``AND``, ``CONST`` (constant FALSE, only when some literal uses it), ``NOT``, ``PO`` (primary outputs,
  then latch next-states as pseudo-outputs).  The graph is always combinational: a latch is cut into a
  pseudo-input (its output, flagged by ``is_latch``) and a pseudo-output (its next-state function).
* **Node order**: PIs (inputs, then latches) | ANDs in AIG order | CONST | NOTs | POs.
* **Edges** point from fanin to gate (``edge_index[0]`` is the driver), one per fanin, so a PO has one
  in-edge.  Inversion is explicit, by the ``not_nodes`` option:

  - ``"per_edge"``: one NOT node for each inverted fanin edge (MGVGA / OpenABC-D style graphs);
  - ``"shared"``: one NOT node for each inverted source, shared by its consumers (DeepGate);
  - ``"attr"``: no NOT nodes; ``edge_type`` is 1 on inverted edges.

  In every mode ``edge_type`` is ``[E]`` long, 0 for a plain edge and 1 for an inverted one (only
  ``"attr"`` has ones).
* **Levels**: ``level`` is the longest path in edges from a source (PI/CONST: 0), ``rev_level`` the longest
  path to a sink (PO: 0).  ``and_level`` counts ANDs only, as ABC's ``lev`` does.

Fields of the returned ``Data`` (N nodes, E edges):
``node_type [N]``, ``edge_index [2, E]``, ``edge_type [E]``, ``level [N]``, ``rev_level [N]``,
``and_level [N]``, ``in_degree [N]``, ``out_degree [N]``, ``var [N]`` (the AIG variable a node stands for;
for NOT nodes the variable they invert, for POs the variable they read), ``is_latch [N]`` bool,
``pi_index [P]`` / ``po_index [Q]`` (node ids of PIs / POs in port order), ``input_names``,
``output_names`` (lists of str), ``not_nodes`` (str), ``num_nodes``.
"""

from __future__ import annotations

from enum import IntEnum

import numpy as np
import torch
from torch_geometric.data import Data

from geomask.io.aig import AIG
from geomask.ops.dag import and_levels, reverse_levels

__all__ = ["NOT_MODES", "NodeType", "aig_to_graph", "graph_to_aig"]

NOT_MODES = ("per_edge", "shared", "attr")


class NodeType(IntEnum):
    """Node type ids of the canonical AIG graph."""

    PI = 0
    AND = 1
    NOT = 2
    PO = 3
    CONST = 4


def aig_to_graph(aig: AIG, not_nodes: str = "per_edge") -> Data:
    """Build the canonical graph of an AIG (see the module docstring for every field).

    Args:
        aig: the circuit.
        not_nodes: ``"per_edge"``, ``"shared"`` or ``"attr"``.

    Returns:
        A PyG ``Data``.
    """
    if not_nodes not in NOT_MODES:
        raise ValueError(f"not_nodes must be one of {NOT_MODES}, got {not_nodes!r}")
    n_pi = aig.num_inputs + aig.num_latches
    n_and = aig.num_ands
    first = aig.first_and_var
    # Consumers: the two fanins of every AND, then every PO (outputs, then latch next-states).
    po_lits = np.concatenate([aig.outputs, aig.latches[:, 0]])
    n_po = len(po_lits)
    src_lit = np.concatenate([aig.ands.reshape(-1), po_lits])
    and_nodes = n_pi + np.arange(n_and, dtype=np.int64)
    uses_const = bool(((src_lit >> 1) == 0).any())
    const_node = n_pi + n_and
    n_base = n_pi + n_and + int(uses_const)

    var_to_node = np.empty(aig.max_var + 1, dtype=np.int64)
    var_to_node[0] = const_node
    var_to_node[1:] = np.arange(aig.max_var, dtype=np.int64)  # PIs then ANDs, in variable order
    src_var = src_lit >> 1
    src = var_to_node[src_var]
    inv = (src_lit & 1).astype(bool)

    if not_nodes == "per_edge":
        n_not = int(inv.sum())
        not_src_var = src_var[inv]
    elif not_nodes == "shared":
        not_src_var, not_of_use = np.unique(src_var[inv], return_inverse=True)
        n_not = len(not_src_var)
    else:
        n_not = 0
        not_src_var = np.zeros(0, dtype=np.int64)
    not_base = n_base
    po_base = n_base + n_not
    num_nodes = po_base + n_po
    dst = np.concatenate([np.repeat(and_nodes, 2), po_base + np.arange(n_po, dtype=np.int64)])

    if not_nodes == "attr":
        e_src, e_dst, e_type = src, dst, inv.astype(np.int64)
    else:
        not_id = np.empty(len(src), dtype=np.int64)
        if not_nodes == "per_edge":
            not_id[inv] = not_base + np.arange(n_not)
            feed_src = var_to_node[not_src_var]
            feed_dst = not_base + np.arange(n_not)
        else:
            not_id[inv] = not_base + not_of_use.reshape(-1)
            feed_src = var_to_node[not_src_var]
            feed_dst = not_base + np.arange(n_not)
        use_src = np.where(inv, not_id, src)
        e_src = np.concatenate([feed_src, use_src])
        e_dst = np.concatenate([feed_dst, dst])
        e_type = np.zeros(len(e_src), dtype=np.int64)

    node_type = np.empty(num_nodes, dtype=np.int64)
    node_type[:n_pi] = NodeType.PI
    node_type[n_pi : n_pi + n_and] = NodeType.AND
    if uses_const:
        node_type[const_node] = NodeType.CONST
    node_type[not_base:po_base] = NodeType.NOT
    node_type[po_base:] = NodeType.PO

    var = np.empty(num_nodes, dtype=np.int64)
    var[: n_pi + n_and] = np.arange(1, n_pi + n_and + 1)
    if uses_const:
        var[const_node] = 0
    var[not_base:po_base] = not_src_var
    var[po_base:] = po_lits >> 1

    # A topological order without sorting edges: every node after the variables it reads.
    # Key: 3 * var for PIs/ANDs/CONST, 3 * var + 1 for NOTs, and POs last.
    key = 3 * var
    key[not_base:po_base] += 1
    key[po_base:] = 3 * (aig.max_var + 1) + np.arange(n_po)
    order = np.argsort(key, kind="stable")
    edge_index = np.stack([e_src, e_dst])
    fwd = reverse_levels(edge_index[::-1].copy(), order[::-1].copy(), num_nodes)
    rev = reverse_levels(edge_index, order, num_nodes)
    lv = and_levels(aig.ands >> 1, first, aig.max_var + 1)
    and_level = lv[var]
    in_deg = np.bincount(e_dst, minlength=num_nodes)
    out_deg = np.bincount(e_src, minlength=num_nodes)
    is_latch = np.zeros(num_nodes, dtype=bool)
    is_latch[aig.num_inputs : n_pi] = True
    is_latch[po_base + aig.num_outputs :] = True

    t = torch.from_numpy
    return Data(
        node_type=t(node_type),
        edge_index=t(edge_index),
        edge_type=t(e_type),
        level=t(fwd),
        rev_level=t(rev),
        and_level=t(and_level),
        in_degree=t(in_deg),
        out_degree=t(out_deg),
        var=t(var),
        is_latch=t(is_latch),
        pi_index=torch.arange(n_pi),
        po_index=torch.arange(po_base, num_nodes),
        input_names=list(aig.input_names) + list(aig.latch_names),
        output_names=list(aig.output_names) + [f"{n}$next" if n else "" for n in aig.latch_names],
        not_nodes=not_nodes,
        num_latches=aig.num_latches,
        num_nodes=num_nodes,
    )


def graph_to_aig(data: Data) -> AIG:
    """Rebuild the AIG from a canonical graph in any NOT mode (the inverse of :func:`aig_to_graph`).

    Node order may be arbitrary: AND nodes are renumbered in topological order.  Latches are returned cut
    (pseudo-inputs and pseudo-outputs), unless ``data.num_latches`` says how many of the last PIs and POs
    are latches, in which case they are rebuilt as latches with reset 0.
    """
    node_type = data.node_type.numpy()
    ei = data.edge_index.numpy()
    etype = data.edge_type.numpy() if "edge_type" in data else np.zeros(ei.shape[1], dtype=np.int64)
    n = len(node_type)
    # Resolve every node to a literal of the AIG being built: sources first, then through NOT chains and ANDs.
    pis = data.pi_index.numpy() if "pi_index" in data else np.flatnonzero(node_type == NodeType.PI)
    pos = data.po_index.numpy() if "po_index" in data else np.flatnonzero(node_type == NodeType.PO)
    ands = np.flatnonzero(node_type == NodeType.AND)
    n_lat = int(getattr(data, "num_latches", 0) or 0)
    n_pi = len(pis)
    # Order ANDs topologically by their forward level (fanins have strictly smaller levels).
    from geomask.ops.dag import topological_order

    in_order = np.argsort(ei[1], kind="stable")
    dsts = ei[1][in_order]
    srcs = ei[0][in_order]
    types = etype[in_order]
    start = np.searchsorted(dsts, np.arange(n + 1))
    deg = start[1:] - start[:-1]
    if bool((deg[ands] != 2).any()) or bool((deg[node_type == NodeType.NOT] != 1).any()):
        raise ValueError("not a canonical AIG graph: every AND needs 2 fanins and every NOT 1")
    fan = np.full((n, 2), -1, dtype=np.int64)
    has = deg > 0
    fan[has, 0] = srcs[start[:-1][has]]
    two = deg > 1
    fan[two, 1] = srcs[start[:-1][two] + 1]
    ftype = np.zeros((n, 2), dtype=np.int64)
    ftype[has, 0] = types[start[:-1][has]]
    ftype[two, 1] = types[start[:-1][two] + 1]
    is_src = np.isin(node_type, [NodeType.PI, NodeType.CONST])
    order, cyc = topological_order(fan, is_src)
    if cyc >= 0:
        raise ValueError(f"not a DAG: cycle through node {cyc}")
    lit = np.full(n, -1, dtype=np.int64)
    lit[node_type == NodeType.CONST] = 0
    lit[pis] = 2 * np.arange(1, n_pi + 1)
    and_rank = np.full(n, -1, dtype=np.int64)
    topo_ands = order[node_type[order] == NodeType.AND]
    and_rank[topo_ands] = np.arange(len(topo_ands))
    lit[topo_ands] = 2 * (n_pi + 1 + np.arange(len(topo_ands)))
    # NOT and PO nodes: follow fanins in topological order (NOT chains are short; this loop is per
    # NOT/PO level, vectorised over all nodes at that depth).
    pending = np.flatnonzero((node_type == NodeType.NOT) | (node_type == NodeType.PO))
    while len(pending):
        f = fan[pending, 0]
        ready = lit[f] >= 0
        if not bool(ready.any()):
            raise ValueError("graph has NOT/PO nodes whose driver cannot be resolved")
        p = pending[ready]
        neg = (node_type[p] == NodeType.NOT).astype(np.int64) ^ ftype[p, 0]
        lit[p] = lit[fan[p, 0]] ^ neg
        pending = pending[~ready]
    and_lits = lit[fan[topo_ands]] ^ ftype[topo_ands]
    out_lits = lit[pos]
    n_out = len(pos) - n_lat
    latches = np.stack([out_lits[n_out:], np.zeros(n_lat, dtype=np.int64)], axis=1)
    in_names = list(getattr(data, "input_names", []) or [])
    out_names = list(getattr(data, "output_names", []) or [])
    return AIG(
        num_inputs=n_pi - n_lat,
        ands=and_lits,
        outputs=out_lits[:n_out],
        latches=latches,
        input_names=in_names[: n_pi - n_lat],
        latch_names=in_names[n_pi - n_lat :],
        output_names=out_names[:n_out],
    )
