"""Circuits: AIG graphs, their layouts, ABC recipes and QoR labels, simulation labels.

``geomask.circuits.read(path, **options)`` is the one-call entry: any supported file (AIGER, .bench,
Verilog file or folder) → the canonical AIG graph as a PyG ``Data``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from geomask.circuits.stats import circuit_stats
from geomask.io.aig import AIG
from geomask.io.circuit import circuit_format, read_aig

if TYPE_CHECKING:
    from torch_geometric.data import Data

    from geomask.circuits.graph import NOT_MODES, NodeType, aig_to_graph, graph_to_aig
    from geomask.circuits.layouts import from_deepgate, from_openabc, to_deepgate, to_openabc

# Names whose modules import numba, torch or torch_geometric: loaded on first use (module __getattr__), so
# that reading a circuit and counting it (``geomask info`` / ``convert``) stays light.
_LAZY = {
    "NOT_MODES": "geomask.circuits.graph",
    "NodeType": "geomask.circuits.graph",
    "aig_to_graph": "geomask.circuits.graph",
    "graph_to_aig": "geomask.circuits.graph",
    "from_deepgate": "geomask.circuits.layouts",
    "from_openabc": "geomask.circuits.layouts",
    "to_deepgate": "geomask.circuits.layouts",
    "to_openabc": "geomask.circuits.layouts",
}

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
    from geomask.circuits.graph import aig_to_graph

    aig = read_aig(path, latches=latches, top=top, timeout=timeout)
    data = aig_to_graph(aig, not_nodes)
    data.name = aig.name
    data.format = circuit_format(path)
    return data


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
