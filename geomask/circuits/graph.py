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
from typing import TYPE_CHECKING

import numba
import numpy as np

from geomask.io.aig import AIG
from geomask.ops.dag import topological_order

if TYPE_CHECKING:
    from torch_geometric.data import Data

__all__ = ["NOT_MODES", "NodeType", "aig_to_graph", "graph_to_aig"]

NOT_MODES = ("per_edge", "shared", "attr")


class NodeType(IntEnum):
    """Node type ids of the canonical AIG graph."""

    PI = 0
    AND = 1
    NOT = 2
    PO = 3
    CONST = 4


_MODE_ID = {"per_edge": 0, "shared": 1, "attr": 2}


@numba.njit(cache=True, nogil=True)
def _build(ands, po_lits, n_pi, num_vars, mode):  # noqa: C901 - one pass per section, in machine code
    """All node and edge arrays of the canonical graph in one compiled pass (see aig_to_graph)."""
    n_and = ands.shape[0]
    n_po = po_lits.shape[0]
    first = n_pi + 1
    n_use = 2 * n_and + n_po
    # -- NOT nodes: per inverted use (0), per inverted source variable (1), none (2)
    uses_const = False
    not_of_var = np.full(num_vars, -1, dtype=np.int64)
    n_not = 0
    for j in range(n_use):
        lit = ands[j >> 1, j & 1] if j < 2 * n_and else po_lits[j - 2 * n_and]
        if lit >> 1 == 0:
            uses_const = True
        if lit & 1:
            if mode == 0:
                n_not += 1
            elif mode == 1 and not_of_var[lit >> 1] < 0:
                not_of_var[lit >> 1] = n_not
                n_not += 1
    const_node = n_pi + n_and
    n_base = const_node + (1 if uses_const else 0)
    po_base = n_base + n_not
    num_nodes = po_base + n_po
    var_node = np.empty(num_vars, dtype=np.int64)
    var_node[0] = const_node
    for v in range(1, num_vars):
        var_node[v] = v - 1
    # -- node attributes that do not need levels
    node_type = np.empty(num_nodes, dtype=np.int64)
    var = np.empty(num_nodes, dtype=np.int64)
    in_deg = np.zeros(num_nodes, dtype=np.int64)
    for k in range(n_pi):
        node_type[k] = 0
        var[k] = k + 1
    for i in range(n_and):
        node_type[n_pi + i] = 1
        var[n_pi + i] = first + i
        in_deg[n_pi + i] = 2
    if uses_const:
        node_type[const_node] = 4
        var[const_node] = 0
    for k in range(n_po):
        node_type[po_base + k] = 3
        var[po_base + k] = po_lits[k] >> 1
        in_deg[po_base + k] = 1
    # -- edges: NOT feeds first (source -> NOT), then one edge per use (driver or NOT -> consumer)
    n_edges = n_use + (n_not if mode != 2 else 0)
    edges = np.empty((2, n_edges), dtype=np.int64)
    src = edges[0]
    dst = edges[1]
    etype = np.zeros(n_edges, dtype=np.int64)
    not_consumer = np.full(n_not, -1, dtype=np.int64)
    e = n_not if mode != 2 else 0
    k_not = 0
    for j in range(n_use):
        if j < 2 * n_and:
            lit = ands[j >> 1, j & 1]
            cons = n_pi + (j >> 1)
        else:
            lit = po_lits[j - 2 * n_and]
            cons = po_base + j - 2 * n_and
        u = lit >> 1
        drv = var_node[u]
        if lit & 1 and mode != 2:
            t = k_not if mode == 0 else not_of_var[u]
            nid = n_base + t
            if mode == 0 or not_consumer[t] != -2:
                node_type[nid] = 2
                var[nid] = u
                in_deg[nid] = 1
                src[t] = drv
                dst[t] = nid
                if mode == 1:
                    not_consumer[t] = -2  # feed edge written
            if mode == 0:
                not_consumer[t] = cons
                k_not += 1
            drv = nid
        elif lit & 1:
            etype[e] = 1
        src[e] = drv
        dst[e] = cons
        e += 1
    out_deg = np.zeros(num_nodes, dtype=np.int64)
    for k in range(n_edges):
        out_deg[src[k]] += 1
    # -- levels: forward in variable order, reverse in reverse variable order; an inverted use costs one
    #    extra edge (through its NOT node) unless mode is attr.
    extra = 1 if mode != 2 else 0
    fwd_v = np.zeros(num_vars, dtype=np.int64)
    and_v = np.zeros(num_vars, dtype=np.int64)
    for i in range(n_and):
        bf = 0
        ba = 0
        for c in range(2):
            lit = ands[i, c]
            f = fwd_v[lit >> 1] + (extra if lit & 1 else 0)
            if f > bf:
                bf = f
            if and_v[lit >> 1] > ba:
                ba = and_v[lit >> 1]
        fwd_v[first + i] = bf + 1
        and_v[first + i] = ba + 1
    rev_v = np.zeros(num_vars, dtype=np.int64)
    rev_not = np.zeros(num_vars, dtype=np.int64)  # shared NOT of a variable
    for k in range(n_po):
        lit = po_lits[k]
        r = 1
        if lit & 1 and extra:
            if r > rev_not[lit >> 1]:
                rev_not[lit >> 1] = r
            r += 1
        if r > rev_v[lit >> 1]:
            rev_v[lit >> 1] = r
    for i in range(n_and - 1, -1, -1):
        for c in range(2):
            lit = ands[i, c]
            r = rev_v[first + i] + 1
            if lit & 1 and extra:
                if r > rev_not[lit >> 1]:
                    rev_not[lit >> 1] = r
                r += 1
            if r > rev_v[lit >> 1]:
                rev_v[lit >> 1] = r
    level = np.empty(num_nodes, dtype=np.int64)
    rev = np.zeros(num_nodes, dtype=np.int64)
    and_level = np.empty(num_nodes, dtype=np.int64)
    for nid in range(num_nodes):
        u = var[nid]
        and_level[nid] = and_v[u]
        if nid < n_base:
            level[nid] = fwd_v[u]
            rev[nid] = rev_v[u]
        elif nid < po_base:
            level[nid] = fwd_v[u] + 1
            if mode == 1:
                rev[nid] = rev_not[u]
            else:
                cons = not_consumer[nid - n_base]
                rev[nid] = 1 + (0 if cons >= po_base else rev_v[var[cons]])
        else:
            lit = po_lits[nid - po_base]
            level[nid] = fwd_v[u] + (extra if lit & 1 else 0) + 1
    return node_type, edges, etype, level, rev, and_level, in_deg, out_deg, var, po_base


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
    # Consumers: the two fanins of every AND, then every PO (outputs, then latch next-states).
    po_lits = np.concatenate([aig.outputs, aig.latches[:, 0]])
    ands = np.ascontiguousarray(aig.ands, dtype=np.int64)
    node_type, edges, etype, level, rev, and_level, in_deg, out_deg, var, po_base = _build(
        ands, po_lits, n_pi, aig.max_var + 1, _MODE_ID[not_nodes]
    )
    num_nodes = len(node_type)
    is_latch = np.zeros(num_nodes, dtype=bool)
    is_latch[aig.num_inputs : n_pi] = True
    is_latch[po_base + aig.num_outputs :] = True
    import torch  # here, not at the top: NodeType and NOT_MODES stay importable without torch
    from torch_geometric.data import Data

    t = torch.from_numpy
    return Data(
        node_type=t(node_type),
        edge_index=t(edges),
        edge_type=t(etype),
        level=t(level),
        rev_level=t(rev),
        and_level=t(and_level),
        in_degree=t(in_deg),
        out_degree=t(out_deg),
        var=t(var),
        is_latch=t(is_latch),
        pi_index=torch.arange(n_pi),
        po_index=torch.arange(int(po_base), num_nodes),
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
