"""AIG datasets on disk: the canonical graph and its AIG as plain tensors, loaded back as PyG ``Data``.

Schema (``kind = "aig"``, version :data:`SCHEMA_VERSION`), one item per design, N nodes, E edges:

======================  ==========  ==========================================================
field                   shape       meaning
======================  ==========  ==========================================================
``node_type``           ``[N]``     :class:`~geomask.circuits.graph.NodeType`
``edge_index``          ``[2, E]``  fanin → gate
``edge_type``           ``[E]``     1 on inverted edges (``not_nodes="attr"`` only)
``level``, ``rev_level``, ``and_level``, ``in_degree``, ``out_degree``, ``var``, ``is_latch``
                        ``[N]``     as in :mod:`geomask.circuits.graph`
``pi_index``            ``[P]``     PI node ids in port order
``po_index``            ``[Q]``     PO node ids in port order
``aig_ands``            ``[A, 2]``  the AIG itself (AIGER literals), so other NOT modes can be rebuilt
``aig_outputs``         ``[O]``
``aig_latches``         ``[L, 2]``
``aig_num_inputs``      ``[]``
======================  ==========  ==========================================================

The item's manifest record holds ``name``, ``format``, ``source``, ``sha256``, the counts of
``print_stats`` (``inputs, outputs, latches, ands, levels``), ``nodes``, ``edges`` and the port names.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch_geometric.data import Data

from geomask.circuits.graph import aig_to_graph
from geomask.datasets.store import DatasetReader
from geomask.io.aig import AIG

__all__ = ["SCHEMA_VERSION", "CircuitDataset", "graph_record", "item_to_aig", "item_to_graph"]

SCHEMA_VERSION = 1
GRAPH_FIELDS = (
    "node_type",
    "edge_index",
    "edge_type",
    "level",
    "rev_level",
    "and_level",
    "in_degree",
    "out_degree",
    "var",
    "is_latch",
    "pi_index",
    "po_index",
)


def graph_record(aig: AIG, not_nodes: str) -> tuple[dict[str, torch.Tensor], Data]:
    """The tensors stored for one design, and its graph."""
    g = aig_to_graph(aig, not_nodes)
    tensors = {k: g[k] for k in GRAPH_FIELDS}
    tensors["aig_ands"] = torch.from_numpy(aig.ands.copy())
    tensors["aig_outputs"] = torch.from_numpy(aig.outputs.copy())
    tensors["aig_latches"] = torch.from_numpy(aig.latches.copy())
    tensors["aig_num_inputs"] = torch.tensor(aig.num_inputs)
    return tensors, g


def item_to_aig(tensors: dict[str, torch.Tensor], meta: dict[str, Any] | None = None) -> AIG:
    """The AIG stored in a dataset item."""
    meta = meta or {}
    return AIG(
        num_inputs=int(tensors["aig_num_inputs"]),
        ands=tensors["aig_ands"].numpy(),
        outputs=tensors["aig_outputs"].numpy(),
        latches=tensors["aig_latches"].numpy(),
        input_names=meta.get("input_names", []),
        latch_names=meta.get("latch_names", []),
        output_names=meta.get("output_names", []),
        name=meta.get("name", ""),
    )


def item_to_graph(tensors: dict[str, torch.Tensor], meta: dict[str, Any], not_nodes: str | None = None) -> Data:
    """A PyG ``Data`` from a stored item; with ``not_nodes`` differing from the stored mode, rebuilt."""
    stored = meta.get("not_nodes")
    if not_nodes is not None and not_nodes != stored:
        data = aig_to_graph(item_to_aig(tensors, meta), not_nodes)
    else:
        data = Data(**{k: tensors[k] for k in GRAPH_FIELDS}, num_nodes=int(tensors["node_type"].numel()))
        data.not_nodes = stored
    data.name = meta.get("name", "")
    return data


class CircuitDataset(torch.utils.data.Dataset):
    """A dataset folder written by ``geomask prep circuits``, as PyG ``Data`` per design.

    Args:
        root: the dataset folder.
        not_nodes: rebuild graphs in another NOT mode than the stored one (``None``: as stored).
        transform: optional callable applied to each ``Data``.
    """

    def __init__(self, root: str | Path, not_nodes: str | None = None, transform: Any = None) -> None:
        self.reader = DatasetReader(root, kind="aig", max_schema=SCHEMA_VERSION)
        self.not_nodes = not_nodes
        self.transform = transform

    def __len__(self) -> int:
        return len(self.reader)

    def __repr__(self) -> str:
        """A one-line summary, e.g. ``CircuitDataset(root='P', designs=4, nodes=11210, not_nodes='per_edge',
        recipes=30, labelled=4)``: totals from the manifest, QoR labels as written by ``prep circuits``."""
        opts = self.reader.options
        stored = opts.get("not_nodes")
        parts = [f"root={str(self.reader.root)!r}", f"designs={len(self)}"]
        if self.not_nodes is None or self.not_nodes == stored:  # counts are of the stored graphs
            parts.append(f"nodes={sum(int(r.get('nodes', 0)) for r in self.reader.items)}")
        parts.append(f"not_nodes={(self.not_nodes or stored)!r}")
        if opts.get("recipes"):
            keys = set(self.reader.keys())
            labelled = sum((self.reader.root / "labels" / f"{k}.csv").is_file() for k in keys)
            parts += [f"recipes={opts['recipes']}", f"labelled={labelled}"]
        return f"{type(self).__name__}({', '.join(parts)})"

    @property
    def names(self) -> list[str]:
        return [r["name"] for r in self.reader.items]

    def record(self, i: int) -> dict[str, Any]:
        """The manifest record (counts, names, source) of item ``i``."""
        return self.reader.items[i]

    def aig(self, i: int) -> AIG:
        tensors, meta = self.reader[i]
        return item_to_aig(tensors, meta)

    def __getitem__(self, i: int) -> Data:
        tensors, meta = self.reader[i]
        data = item_to_graph(tensors, meta, self.not_nodes)
        return self.transform(data) if self.transform is not None else data
