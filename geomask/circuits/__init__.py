"""Circuits: AIG graphs, their layouts, ABC recipes and QoR labels, simulation labels.

``geomask.circuits.read(path, **options)`` is the one-call entry: any supported file (AIGER, .bench,
Verilog file or folder) → the canonical AIG graph as a PyG ``Data``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from torch_geometric.data import Data

from geomask.circuits.graph import NOT_MODES, NodeType, aig_to_graph, graph_to_aig
from geomask.circuits.layouts import from_deepgate, from_openabc, to_deepgate, to_openabc
from geomask.io.aig import AIG
from geomask.io.circuit import circuit_format, read_aig
from geomask.ops.dag import and_levels

__all__ = [
    "AIG",
    "NOT_MODES",
    "NodeType",
    "aig_to_graph",
    "circuit_stats",
    "from_deepgate",
    "from_openabc",
    "graph_to_aig",
    "read",
    "read_aig",
    "to_deepgate",
    "to_openabc",
]


def read(
    path: str | Path,
    *,
    not_nodes: str = "per_edge",
    latches: str = "keep",
    top: str | None = None,
    timeout: float = 600.0,
) -> Data:
    """Read a circuit file (or Verilog folder) as the canonical AIG graph.

    Args:
        path: ``.aag``/``.aig``/``.bench``/``.v``/``.sv`` file, or a folder of Verilog files.
        not_nodes: ``"per_edge"``, ``"shared"`` or ``"attr"`` (see :mod:`geomask.circuits.graph`).
        latches: ``"keep"`` or ``"cut"`` (see :func:`geomask.io.circuit.read_aig`).
        top: Verilog top module.
        timeout: seconds allowed for yosys.

    Returns:
        The graph, with ``name`` and ``format`` set.
    """
    aig = read_aig(path, latches=latches, top=top, timeout=timeout)
    data = aig_to_graph(aig, not_nodes)
    data.name = aig.name
    data.format = circuit_format(path)
    return data


def circuit_stats(aig: AIG) -> dict[str, int]:
    """``inputs, outputs, latches, ands, levels`` as ABC's ``print_stats`` counts them (``lev``: ANDs on
    the longest path to an output or latch input)."""
    lv = and_levels(aig.ands >> 1, aig.first_and_var, aig.max_var + 1)
    sinks = np.concatenate([aig.outputs, aig.latches[:, 0]]) >> 1
    return {
        "inputs": aig.num_inputs,
        "outputs": aig.num_outputs,
        "latches": aig.num_latches,
        "ands": aig.num_ands,
        "levels": int(lv[sinks].max()) if len(sinks) else 0,
    }
