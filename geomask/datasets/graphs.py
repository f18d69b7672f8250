"""Generic graph datasets: raw Planetoid (Cora, CiteSeer) and TU (MUTAG, PROTEINS, ENZYMES) files → plain tensors.

Three folder forms are read by :func:`load_graph_set` (and so by the ``graphs`` data kind and ``geomask eval graphs``):

* a raw **Planetoid** folder (``ind.<name>.{x,tx,allx,y,ty,ally,graph,test.index}``, directly or under ``raw/``).
  The ``x``/``tx``/``allx``/``y``/``ty``/``ally``/``graph`` files are Python pickles of scipy / numpy objects, as
  Kipf's GCN code wrote them; they are loaded with :mod:`pickle` (``encoding='latin1'``, as PyG does) through an
  unpickler that only builds numpy arrays, scipy sparse matrices and ``dict``/``list``/``defaultdict`` (anything
  else is refused: one error line naming the file).  The public split is the default: the first ``len(y)``
  nodes train (140 on Cora), the next 500 validate, the ``test.index`` nodes (1,000) test; CiteSeer's isolated
  test ids get zero features and class 0, as in PyG.  Features are row-normalised (bag of words → frequencies, as
  the DGL and PyG loaders the GraphMAE numbers come from).
* a raw **TU** folder (``<DS>_A.txt``, ``<DS>_graph_indicator.txt``, ``<DS>_graph_labels.txt``, optional
  ``<DS>_node_labels.txt`` and ``<DS>_node_attributes.txt``, directly or under ``raw/``): node features are the
  one-hot node labels (GraphMAE's choice), else the node attributes, else a constant 1; graph labels are mapped to
  ``0..C-1`` in sorted order.
* a **prepared** folder (``geomask prep graphs``): ``manifest.json`` (``kind: graphs``, ``schema``
  :data:`SCHEMA`) and ``graphs.pt``, a dict of plain tensors loaded with ``weights_only=True``.

Schema 1 of ``graphs.pt`` (all graphs concatenated; ``G`` graphs, ``N`` nodes, ``E`` directed edges):
``x [N, F]`` float32, ``edge_index [2, E]`` int64 (node ids local to their graph), ``node_ptr [G+1]``,
``edge_ptr [G+1]`` int64, ``y`` int64 (``[N]`` node classes for ``level == "node"``, ``[G]`` graph classes for
``level == "graph"``), and for node-level sets ``train_mask``, ``val_mask``, ``test_mask [N]`` bool.
"""

from __future__ import annotations

import io
import json
import pickle
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch_geometric.data import Batch, Data

from geomask.errors import FormatError, MissingFileError

__all__ = [
    "MANIFEST_KIND",
    "SCHEMA",
    "GraphDataset",
    "GraphSet",
    "collate_graph_batch",
    "load_graph_set",
    "open_graphs",
    "prep_graphs",
    "read_planetoid",
    "read_tu",
    "write_graph_set",
]

SCHEMA = 1
"""Version of the ``graphs.pt`` layout (see the module docstring)."""
MANIFEST_KIND = "graphs"
_PLANETOID = ("x", "tx", "allx", "y", "ty", "ally", "graph")


@dataclass
class GraphSet:
    """Graphs as concatenated plain tensors (schema :data:`SCHEMA`).

    Attributes:
        name: dataset name (``Cora``, ``MUTAG``).
        level: ``"node"`` (one graph, node classes and split masks) or ``"graph"`` (graph classes).
        tensors: the ``graphs.pt`` dict.
    """

    name: str
    level: str
    tensors: dict[str, torch.Tensor] = field(default_factory=dict)

    @property
    def num_graphs(self) -> int:
        return int(self.tensors["node_ptr"].numel() - 1)

    @property
    def num_features(self) -> int:
        return int(self.tensors["x"].shape[1])

    @property
    def num_classes(self) -> int:
        return int(self.tensors["y"].max()) + 1 if self.tensors["y"].numel() else 0

    def graph(self, i: int) -> Data:
        """Graph ``i`` as PyG ``Data`` (``x``, ``edge_index``, ``y``; node-level: the split masks too)."""
        t = self.tensors
        n0, n1 = int(t["node_ptr"][i]), int(t["node_ptr"][i + 1])
        e0, e1 = int(t["edge_ptr"][i]), int(t["edge_ptr"][i + 1])
        d = Data(x=t["x"][n0:n1], edge_index=t["edge_index"][:, e0:e1], num_nodes=n1 - n0)
        if self.level == "node":
            d.y = t["y"][n0:n1]
            for k in ("train_mask", "val_mask", "test_mask"):
                d[k] = t[k][n0:n1]
        else:
            d.y = t["y"][i : i + 1]
        return d

    def graphs(self) -> list[Data]:
        return [self.graph(i) for i in range(self.num_graphs)]

    def summary(self) -> dict[str, Any]:
        t = self.tensors
        return {
            "name": self.name,
            "level": self.level,
            "graphs": self.num_graphs,
            "nodes": int(t["x"].shape[0]),
            "edges": int(t["edge_index"].shape[1]),
            "features": self.num_features,
            "classes": self.num_classes,
        }


# ---------------------------------------------------------------------------------------------------
# Planetoid


class _PlanetoidUnpickler(pickle.Unpickler):
    """Builds numpy arrays, scipy sparse matrices and plain containers only."""

    def find_class(self, module: str, name: str) -> Any:
        if module.split(".")[0] in ("numpy", "scipy") or (module, name) in {
            ("collections", "defaultdict"),
            ("_codecs", "encode"),  # bytes of numpy arrays in protocol-2 pickles written by Python 3
            ("builtins", "list"),
            ("builtins", "dict"),
            ("builtins", "set"),
            ("__builtin__", "list"),
            ("copy_reg", "_reconstructor"),
            ("copyreg", "_reconstructor"),
            ("__builtin__", "object"),
            ("builtins", "object"),
        }:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def _unpickle(path: Path) -> Any:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise MissingFileError(path) from None
    try:
        return _PlanetoidUnpickler(io.BytesIO(data), encoding="latin1").load()
    except Exception as e:  # noqa: BLE001 - any unpickling failure is a bad file
        raise FormatError(path, f"not a Planetoid pickle ({type(e).__name__}: {e})") from None


def _dense(a: Any, path: Path) -> np.ndarray:
    if hasattr(a, "toarray"):
        a = a.toarray()
    a = np.asarray(a)
    if a.ndim != 2:
        raise FormatError(path, f"expected a 2-D matrix, got shape {a.shape}")
    return a.astype(np.float32)


def _raw_dir(root: Path, pattern: str) -> Path:
    if any(root.glob(pattern)):
        return root
    if (root / "raw").is_dir() and any((root / "raw").glob(pattern)):
        return root / "raw"
    return root


def read_planetoid(root: str | Path, name: str | None = None) -> GraphSet:
    """Read a raw Planetoid folder (see the module docstring).

    Raises:
        FormatError: a missing or malformed file (the message names it).
    """
    root = _raw_dir(Path(root), "ind.*.x")
    if name is None:
        found = sorted(p.name.split(".")[1] for p in root.glob("ind.*.x"))
        if len(found) != 1:
            raise FormatError(root, "not a Planetoid folder (expected exactly one ind.<name>.x file)")
        name = found[0]
    objs = {k: _unpickle(root / f"ind.{name}.{k}") for k in _PLANETOID}
    tpath = root / f"ind.{name}.test.index"
    try:
        test_index = np.array([int(line) for line in tpath.read_text().split()], dtype=np.int64)
    except FileNotFoundError:
        raise MissingFileError(tpath) from None
    except ValueError:
        raise FormatError(tpath, "expected one integer node id per line") from None
    x, tx, allx = (_dense(objs[k], root / f"ind.{name}.{k}") for k in ("x", "tx", "allx"))
    y, ty, ally = (_dense(objs[k], root / f"ind.{name}.{k}") for k in ("y", "ty", "ally"))
    if tx.shape[0] != test_index.size or ty.shape[0] != tx.shape[0]:
        raise FormatError(tpath, f"{test_index.size} test ids for {tx.shape[0]} tx rows and {ty.shape[0]} ty rows")
    if allx.shape[0] != ally.shape[0] or x.shape[1] != allx.shape[1] != tx.shape[1]:
        raise FormatError(root / f"ind.{name}.allx", "feature / label row counts or widths disagree")
    lo, hi = int(test_index.min()), int(test_index.max())
    if lo < allx.shape[0]:
        raise FormatError(tpath, f"test id {lo} falls among the {allx.shape[0]} allx rows")
    full = np.arange(lo, hi + 1)
    # CiteSeer has test ids without a row (isolated nodes): they keep zero features and class 0, as in PyG
    tx_ext = np.zeros((full.size, tx.shape[1]), np.float32)
    ty_ext = np.zeros((full.size, ty.shape[1]), np.float32)
    tx_ext[test_index - lo], ty_ext[test_index - lo] = tx, ty
    feats = np.concatenate([allx, tx_ext])
    labels = np.concatenate([ally, ty_ext]).argmax(1)
    n = feats.shape[0]
    graph = objs["graph"]
    if not isinstance(graph, dict):
        raise FormatError(root / f"ind.{name}.graph", f"expected a dict of adjacency lists, got {type(graph).__name__}")
    src = np.fromiter((s for s, nbrs in graph.items() for _ in nbrs), np.int64)
    dst = np.fromiter((d for nbrs in graph.values() for d in nbrs), np.int64)
    if src.size and (min(src.min(), dst.min()) < 0 or max(src.max(), dst.max()) >= n):
        raise FormatError(root / f"ind.{name}.graph", f"node ids outside 0..{n - 1}")
    ei = np.unique(np.stack([np.concatenate([src, dst]), np.concatenate([dst, src])]), axis=1)
    ei = ei[:, ei[0] != ei[1]]  # self-loops are the model's business (GAT adds them)
    rs = feats.sum(1, keepdims=True)
    feats = feats / np.where(rs == 0, 1.0, rs)
    masks = {k: np.zeros(n, bool) for k in ("train_mask", "val_mask", "test_mask")}
    masks["train_mask"][: y.shape[0]] = True
    masks["val_mask"][y.shape[0] : y.shape[0] + 500] = True
    masks["test_mask"][test_index] = True
    t = {
        "x": torch.from_numpy(np.ascontiguousarray(feats, dtype=np.float32)),
        "edge_index": torch.from_numpy(np.ascontiguousarray(ei)),
        "node_ptr": torch.tensor([0, n]),
        "edge_ptr": torch.tensor([0, ei.shape[1]]),
        "y": torch.from_numpy(labels.astype(np.int64)),
        **{k: torch.from_numpy(v) for k, v in masks.items()},
    }
    display = {"cora": "Cora", "citeseer": "CiteSeer", "pubmed": "PubMed"}.get(name.lower(), name)
    return GraphSet(display, "node", t)


# ---------------------------------------------------------------------------------------------------
# TU


def _read_ints(path: Path, cols: int | None = None) -> np.ndarray:
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise MissingFileError(path) from None
    except UnicodeDecodeError:
        raise FormatError(path, "not a text file") from None
    try:
        a = np.array([[int(v) for v in line.replace(",", " ").split()] for line in text.splitlines() if line.strip()])
    except ValueError:
        raise FormatError(path, "expected integers separated by commas") from None
    if a.size == 0 or a.ndim != 2 or (cols is not None and a.shape[1] != cols):
        raise FormatError(path, f"expected {cols or 'a fixed number of'} integer column(s) per line")
    return a


def _read_floats(path: Path) -> np.ndarray:
    try:
        rows = [[float(v) for v in line.split(",")] for line in path.read_text().splitlines() if line.strip()]
        a = np.array(rows, dtype=np.float32)
    except (ValueError, UnicodeDecodeError):
        raise FormatError(path, "expected numbers separated by commas, one row per node") from None
    if a.ndim != 2:
        raise FormatError(path, "rows of different lengths")
    return a


def read_tu(root: str | Path, name: str | None = None) -> GraphSet:
    """Read a raw TU folder (see the module docstring).

    Raises:
        FormatError: a missing or malformed file (the message names it).
    """
    root = _raw_dir(Path(root), "*_A.txt")
    if name is None:
        found = sorted(p.name[: -len("_A.txt")] for p in root.glob("*_A.txt"))
        if len(found) != 1:
            raise FormatError(root, "not a TU folder (expected exactly one <DS>_A.txt file)")
        name = found[0]
    parts = ("A", "graph_indicator", "graph_labels", "node_labels", "node_attributes")
    f = {k: root / f"{name}_{k}.txt" for k in parts}
    gi = _read_ints(f["graph_indicator"], 1)[:, 0] - 1
    n = gi.size
    if gi.min() != 0 or np.any(np.diff(gi) < 0) or np.any(np.diff(gi) > 1):
        raise FormatError(f["graph_indicator"], "graph ids must start at 1 and be sorted and contiguous")
    num_graphs = int(gi[-1]) + 1
    ei = _read_ints(f["A"], 2).T - 1
    if ei.min() < 0 or ei.max() >= n:
        raise FormatError(f["A"], f"node ids outside 1..{n}")
    if np.any(gi[ei[0]] != gi[ei[1]]):
        raise FormatError(f["A"], "an edge joins nodes of two graphs")
    gl = _read_ints(f["graph_labels"], 1)[:, 0]
    if gl.size != num_graphs:
        raise FormatError(f["graph_labels"], f"{gl.size} labels for {num_graphs} graphs")
    _, y = np.unique(gl, return_inverse=True)
    if f["node_labels"].is_file():
        nl = _read_ints(f["node_labels"])[:, 0]
        if nl.size != n:
            raise FormatError(f["node_labels"], f"{nl.size} labels for {n} nodes")
        nl = nl - nl.min()
        x = np.zeros((n, int(nl.max()) + 1), np.float32)
        x[np.arange(n), nl] = 1.0
    elif f["node_attributes"].is_file():
        x = _read_floats(f["node_attributes"])
        if x.shape[0] != n:
            raise FormatError(f["node_attributes"], f"{x.shape[0]} rows for {n} nodes")
    else:
        x = np.ones((n, 1), np.float32)
    ei = np.unique(np.concatenate([ei, ei[::-1]], 1), axis=1)  # undirected, sorted by source → grouped by graph
    node_ptr = np.concatenate([[0], np.cumsum(np.bincount(gi, minlength=num_graphs))])
    edge_ptr = np.concatenate([[0], np.cumsum(np.bincount(gi[ei[0]], minlength=num_graphs))])
    local = ei - node_ptr[gi[ei[0]]]
    t = {
        "x": torch.from_numpy(x),
        "edge_index": torch.from_numpy(np.ascontiguousarray(local, dtype=np.int64)),
        "node_ptr": torch.from_numpy(node_ptr.astype(np.int64)),
        "edge_ptr": torch.from_numpy(edge_ptr.astype(np.int64)),
        "y": torch.from_numpy(y.astype(np.int64)),
    }
    return GraphSet(name, "graph", t)


# ---------------------------------------------------------------------------------------------------
# prepared folders


def write_graph_set(gs: GraphSet, out: str | Path, source: str = "") -> Path:
    """Write ``gs`` as a prepared folder (``manifest.json`` + ``graphs.pt``) and return it."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    torch.save({k: v.contiguous() for k, v in gs.tensors.items()}, out / "graphs.pt")
    manifest = {"kind": MANIFEST_KIND, "schema": SCHEMA, **gs.summary(), "source": source}
    if gs.level == "node":
        manifest["split"] = {k: int(gs.tensors[f"{k}_mask"].sum()) for k in ("train", "val", "test")}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return out


def _read_prepared(root: Path) -> GraphSet:
    mpath = root / "manifest.json"
    try:
        m = json.loads(mpath.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise FormatError(mpath, "not a valid dataset manifest") from None
    if not isinstance(m, dict) or m.get("kind") != MANIFEST_KIND:
        raise FormatError(mpath, f"holds {m.get('kind') if isinstance(m, dict) else None!r} items, not graphs")
    if m.get("schema") != SCHEMA:
        raise FormatError(mpath, f"graphs schema {m.get('schema')!r}; this geomask reads schema {SCHEMA}")
    tpath = root / "graphs.pt"
    try:
        t = torch.load(tpath, weights_only=True, map_location="cpu")
    except FileNotFoundError:
        raise MissingFileError(tpath) from None
    except Exception as e:  # noqa: BLE001 - a damaged tensor file
        raise FormatError(tpath, f"not a graphs tensor file ({type(e).__name__})") from None
    need = {"x", "edge_index", "node_ptr", "edge_ptr", "y"}
    if not isinstance(t, dict) or not need <= set(t):
        raise FormatError(tpath, f"missing tensors {sorted(need - set(t) if isinstance(t, dict) else need)}")
    return GraphSet(str(m.get("name", root.name)), str(m.get("level", "graph")), t)


def load_graph_set(root: str | Path) -> GraphSet:
    """A prepared folder, a raw Planetoid folder or a raw TU folder (by what it holds).

    Raises:
        FormatError: none of the three, or a bad file (one line naming it).
    """
    root = Path(root)
    if not root.exists():
        raise MissingFileError(root, "folder")
    if (root / "manifest.json").is_file():
        return _read_prepared(root)
    if any(_raw_dir(root, "ind.*.x").glob("ind.*.x")):
        return read_planetoid(root)
    if any(_raw_dir(root, "*_A.txt").glob("*_A.txt")):
        return read_tu(root)
    raise FormatError(root, "not a graphs folder (no manifest.json, Planetoid ind.* or TU *_A.txt files)")


def prep_graphs(sources: Sequence[str | Path], out: str | Path) -> tuple[list[dict], list[tuple[str, str]]]:
    """``geomask prep graphs``: each source folder → a prepared folder (``out``, or ``out/<name>`` for several).

    Returns ``(rows, failures)``: a summary row per written dataset and ``(source, one-line message)`` per failure.
    """
    rows: list[dict] = []
    failures: list[tuple[str, str]] = []
    for src in sources:
        try:
            gs = load_graph_set(src)
        except FormatError as e:
            failures.append((str(src), str(e)))
            continue
        dest = Path(out) if len(sources) == 1 else Path(out) / gs.name
        write_graph_set(gs, dest, source=str(src))
        rows.append({**gs.summary(), "out": str(dest)})
    return rows, failures


# ---------------------------------------------------------------------------------------------------
# the ``graphs`` data kind


class GraphDataset(torch.utils.data.Dataset):
    """The graphs of one :class:`GraphSet` as PyG ``Data`` items (a node-level set is one item)."""

    def __init__(self, gs: GraphSet) -> None:
        self.set = gs
        self.items = gs.graphs()

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> Data:
        return self.items[i]


def open_graphs(root: Path, cfg: Any, seed: int) -> GraphDataset:
    """Reader of the ``graphs`` data kind: a prepared, raw Planetoid or raw TU folder."""
    return GraphDataset(load_graph_set(root))


def collate_graph_batch(items: Sequence[Data]) -> Batch:
    """PyG ``Batch`` of generic graphs (``x [sum N, F]``, ``edge_index``, ``batch``, ``y``)."""
    return Batch.from_data_list(list(items))
