"""Verilog-AIG pairs: each design's AIG (yosys) and K ABC-recipe variants, all aligned to its Verilog.

Output folder ``OUT`` (``kind = "verilog_aig_pairs"``, schema :data:`SCHEMA_VERSION`)::

    OUT/manifest.json, OUT/header.json, OUT/shards/   the dataset (geomask.datasets.store layout)
    OUT/aig/DESIGN__orig.aig, OUT/aig/DESIGN__rJJJ.aig the AIG of every item (binary AIGER)
    OUT/embeddings/                                   the embedding cache (geomask.datasets.embedding_cache)

Items, keyed ``DESIGN__orig`` (the yosys AIG, latches cut full-scan: MGVGA works on combinational graphs)
and ``DESIGN__rJJJ`` (that AIG after recipe ``J``: ``read; strash; RECIPE; write_aiger`` in ABC, so
functionally equivalent and structurally different).  Every item of one design holds the same Verilog:

=================  ==========  ==============================================================
field              shape       meaning
=================  ==========  ==============================================================
graph fields       ...         as :func:`geomask.datasets.circuits.graph_record` stores them
``verilog_emb``    ``[C, D]``  float32 chunk embeddings (statement- or module-level chunks)
``verilog_vec``    ``[1, D]``  float32 whole-design vector
=================  ==========  ==============================================================

Manifest records add ``design``, ``variant`` (``"original"`` or ``"recipe_J"``), ``recipe`` (ABC text,
``""`` for the original), ``source``, ``sha256`` (of the Verilog), ``encoder``, ``chunks`` and the
``print_stats`` counts.  Each design's recipes are drawn from ``(seed, crc32(design key))``, so adding
designs does not change the others'.  A design is complete when all its K + 1 items are; a killed run
resumes with the designs left, and a failing design costs one line in the report, not the run.
"""

from __future__ import annotations

import tempfile
import zlib
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch_geometric.data import Data

from geomask.circuits import circuit_stats
from geomask.circuits.abc import run_abc
from geomask.circuits.recipes import DEFAULT_RECIPE_LENGTH, check_recipe_options, random_recipes, recipe_to_abc
from geomask.datasets.circuits import graph_record, item_to_graph
from geomask.datasets.embedding_cache import VECTOR_MODES, EmbeddingCache
from geomask.datasets.store import DatasetReader, DatasetWriter, file_sha256
from geomask.errors import GeomaskError, ToolError, UsageError
from geomask.io.aig import AIG
from geomask.io.aiger import read_aiger, write_aiger
from geomask.io.circuit import CircuitSource, circuit_format, expand_sources
from geomask.io.verilog import read_verilog
from geomask.io.verilog_chunks import LEVELS
from geomask.progress import progress_bar

if TYPE_CHECKING:
    from geomask.nn.text_encoder import TextEncoder

__all__ = ["KIND", "SCHEMA_VERSION", "PairDataset", "PairsReport", "build_pairs"]

KIND = "verilog_aig_pairs"
SCHEMA_VERSION = 1


@dataclass
class PairsReport:
    """What :func:`build_pairs` did: one row per design, one ``(source, message)`` per failure, and one per
    warning of a conversion (undriven outputs, dropped simulation statements, unused modules)."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    failures: list[tuple[str, str]] = field(default_factory=list)
    warnings: list[tuple[str, str]] = field(default_factory=list)


def _keys(design: str, k: int) -> list[str]:
    return [f"{design}__orig"] + [f"{design}__r{j:03d}" for j in range(k)]


def _recipes(key: str, k: int, length: int, seed: int) -> np.ndarray:
    return random_recipes(k, length, np.random.default_rng([seed, zlib.crc32(key.encode())]))


def _abc_variants(path: Path, recipes: list[str], timeout: float) -> list[AIG]:
    """One ABC process: ``read; strash; RECIPE; write_aiger`` per recipe, the results read back."""
    with tempfile.TemporaryDirectory(prefix="geomask-pairs-") as tmp:
        script = "; ".join(
            f'read "{path.resolve()}"; strash; {r}; write_aiger "{Path(tmp) / f"r{j}.aig"}"'
            for j, r in enumerate(recipes)
        )
        run_abc(path, script, timeout, tmp)  # ToolError with ABC's own line on a failure or timeout
        missing = [j for j in range(len(recipes)) if not (Path(tmp) / f"r{j}.aig").is_file()]
        if missing:
            raise ToolError(path, "abc", f"ABC wrote no AIG for recipes {missing}")
        return [read_aiger(Path(tmp) / f"r{j}.aig") for j in range(len(recipes))]


def _variants(design: CircuitSource, out: Path, k: int, length: int, seed: int, timeout: float, abc_timeout: float):
    """The design's AIG and its K recipe variants (AIGER files written into ``out/aig``)."""
    aig = read_verilog(design.path, top=design.top, latches="cut", timeout=timeout)
    aig.name = design.key
    keys = _keys(design.key, k)
    write_aiger(aig, out / "aig" / f"{keys[0]}.aig", binary=True)
    texts = [recipe_to_abc(r) for r in _recipes(design.key, k, length, seed)]
    variants = _abc_variants(out / "aig" / f"{keys[0]}.aig", texts, abc_timeout * max(k, 1)) if k else []
    result = [(keys[0], "original", "", aig)]
    for j, (v, text) in enumerate(zip(variants, texts)):
        if v.num_inputs == aig.num_inputs and v.num_outputs == aig.num_outputs:
            v.input_names, v.output_names = list(aig.input_names), list(aig.output_names)
        v.name = design.key
        write_aiger(v, out / "aig" / f"{keys[j + 1]}.aig", binary=True)
        result.append((keys[j + 1], f"recipe_{j}", text, v))
    return result


def _write_items(
    writer: DatasetWriter, d: CircuitSource, items: list, sha: str, emb, encoder: str, not_nodes: str
) -> None:
    """Write every item of one design, all with the same Verilog embedding."""
    for key, variant, recipe, aig in items:
        tensors, g = graph_record(aig, not_nodes)
        tensors["verilog_emb"] = emb.emb
        tensors["verilog_vec"] = emb.vec
        meta = {
            "name": key,
            "design": d.key,
            "variant": variant,
            "recipe": recipe,
            "source": str(d.path),
            "sha256": sha,
            "encoder": encoder,
            "chunks": int(emb.emb.shape[0]),
            **circuit_stats(aig),
            "nodes": int(g.num_nodes),
            "edges": int(g.edge_index.shape[1]),
            "not_nodes": not_nodes,
            "input_names": aig.input_names,
            "output_names": aig.output_names,
        }
        writer.write(key, tensors, meta)


def build_pairs(
    designs: Sequence[str | Path],
    out: str | Path,
    *,
    recipes_per_design: int = 4,
    recipe_length: int = DEFAULT_RECIPE_LENGTH,
    encoder: TextEncoder | str | None = None,
    level: str = "statement",
    max_chars: int | None = 2000,
    vector: str = "mean",
    not_nodes: str = "per_edge",
    jobs: int = 1,
    seed: int = 0,
    batch_size: int = 32,
    cache: EmbeddingCache | str | Path | None = None,
    timeout: float = 600.0,
    abc_timeout: float = 60.0,
    progress: bool = True,
) -> PairsReport:
    """Build (or resume) a Verilog-AIG pairs dataset in ``out``.

    Args:
        designs: Verilog files and design folders, or collections of them (expanded by
            :func:`geomask.io.circuit.expand_sources`, ``PATH@TOP`` included; non-Verilog designs fail).
        out: output folder.
        recipes_per_design: ``K`` ABC variants per design (0: the original only).
        recipe_length: ops per recipe (over the OpenABC-D alphabet).
        encoder: a text encoder, a spec for :func:`geomask.nn.text_encoder.resolve_text_encoder`, or
            ``None`` for the offline default.
        level, max_chars: Verilog chunking (:func:`geomask.io.verilog_chunks.split_verilog`).
        vector: whole-design vector mode (:data:`geomask.datasets.embedding_cache.VECTOR_MODES`).
        not_nodes: NOT-node mode of the stored graphs.
        jobs: designs converted in parallel (yosys and ABC processes); embedding runs alongside.
        seed: recipe seed.
        batch_size: texts per encoder call.
        cache: the embedding cache (default ``out/embeddings``).
        timeout: seconds per yosys run; abc_timeout: seconds per recipe.
        progress: show a progress bar.

    Returns:
        A :class:`PairsReport`; every design that failed has one line there, the rest is complete.

    Raises:
        UsageError: bad arguments (a negative recipe count, ``recipe_length < 1``, ``jobs < 1``, ...).
        FormatError: a source that does not exist, or ``out`` holding a dataset made with other options.
    """
    if level not in LEVELS or vector not in VECTOR_MODES:
        raise UsageError(f"level must be one of {LEVELS} and vector one of {VECTOR_MODES}; got {level!r}, {vector!r}")
    check_recipe_options(
        recipes_per_design, recipe_length, jobs, what="recipes per design", zero="0: the original AIG only"
    )
    from geomask.nn.text_encoder import resolve_text_encoder  # the peer layer, needed only here

    enc = resolve_text_encoder(encoder)
    out = Path(out)
    cache = cache if isinstance(cache, EmbeddingCache) else EmbeddingCache(cache or out / "embeddings")
    bad_sources: list[tuple[str, str]] = []
    found = expand_sources(designs, bad_sources)  # a bad source is a failure; the others are still done
    k = recipes_per_design
    options = {
        "recipes_per_design": k,
        "recipe_length": recipe_length,
        "seed": seed,
        "encoder": enc.name,
        "dim": enc.dim,
        "level": level,
        "max_chars": max_chars,
        "vector": vector,
        "not_nodes": not_nodes,
        "latches": "cut",
    }
    writer = DatasetWriter(out, KIND, SCHEMA_VERSION, options)
    report = PairsReport()
    report.failures.extend(bad_sources)
    todo, failed = [], set()
    for d in found:
        try:
            fmt = circuit_format(d.path)
        except GeomaskError as e:
            fmt = str(e)
        if fmt != "verilog":
            report.failures.append((str(d.path), f"{d.path}: not Verilog ({fmt}); pairs need Verilog source"))
            failed.add(d.key)
        elif not all(writer.has(key) for key in _keys(d.key, k)):
            todo.append(d)
    with (
        ThreadPoolExecutor(max_workers=jobs) as pool,
        progress_bar(total=len(todo), desc="pairs", unit="design", disable=not progress) as bar,
    ):
        pending = {pool.submit(_variants, d, out, k, recipe_length, seed, timeout, abc_timeout): d for d in todo}
        embs: dict[str, Any] = {}

        def finish(fut) -> None:  # write a design whose AIGs and embedding are both ready
            d = pending.pop(fut)
            bar.update(1)
            try:
                items, got = fut.result(), embs[d.key]
                if isinstance(got, GeomaskError):
                    raise got
            except GeomaskError as e:
                report.failures.append((str(d.path), str(e)))
                failed.add(d.key)
                return
            _write_items(writer, d, items, *got, enc.name, not_nodes)
            report.warnings += [(str(d.path), w) for w in getattr(items[0][3], "warnings", [])]

        for d in todo:  # embeddings on this thread while the pool runs yosys and ABC
            try:
                sha = file_sha256(d.path)
                embs[d.key] = (sha, cache.embed(d.path, enc, level, max_chars, vector, batch_size, source_hash=sha))
            except GeomaskError as e:
                embs[d.key] = e
            for fut in [f for f, x in pending.items() if f.done() and x.key in embs]:
                finish(fut)
        for fut in as_completed(list(pending)):
            finish(fut)
    manifest = writer.finalize()
    per_design: dict[str, list[dict]] = {}
    for rec in manifest["items"]:
        per_design.setdefault(rec["design"], []).append(rec)
    for d in found:
        recs = per_design.get(d.key, [])
        orig = next((r for r in recs if r["variant"] == "original"), None)
        row = {"design": d.key, "items": len(recs), "chunks": orig["chunks"] if orig else 0}
        row.update({"ands": orig["ands"] if orig else -1, "status": "failed" if d.key in failed else "ok"})
        report.rows.append(row)
    report.failures.sort()
    report.warnings.sort()
    return report


class PairDataset(torch.utils.data.Dataset):
    """A folder written by :func:`build_pairs`, as PyG ``Data`` per (design, variant).

    Each item has the graph fields of :func:`geomask.datasets.circuits.item_to_graph` plus
    ``verilog_emb [C, D]``, ``verilog_vec [1, D]``, ``design_id [1]`` (index into :attr:`designs`; all
    variants of a design share it), and ``design``, ``variant`` strings.  Batch with
    ``torch_geometric.loader.DataLoader(ds, follow_batch=["verilog_emb"])`` to get
    ``verilog_emb_batch [sum C]``.

    Args:
        root: the dataset folder.
        not_nodes: rebuild graphs in another NOT mode than the stored one (``None``: as stored).
        transform: optional callable applied to each ``Data``.
    """

    def __init__(self, root: str | Path, not_nodes: str | None = None, transform: Any = None) -> None:
        self.reader = DatasetReader(root, kind=KIND, max_schema=SCHEMA_VERSION)
        self.not_nodes = not_nodes
        self.transform = transform
        self.designs = sorted({r["design"] for r in self.reader.items})
        self._design_id = {name: i for i, name in enumerate(self.designs)}

    def __len__(self) -> int:
        return len(self.reader)

    @property
    def options(self) -> dict[str, Any]:
        """The options the dataset was built with (encoder, level, recipes, ...)."""
        return self.reader.options

    def record(self, i: int) -> dict[str, Any]:
        """The manifest record of item ``i``."""
        return self.reader.items[i]

    def variants_of(self, design: str) -> list[int]:
        """Item indices of one design (its original first)."""
        idx = [i for i, r in enumerate(self.reader.items) if r["design"] == design]
        return sorted(idx, key=lambda i: self.reader.items[i]["variant"] != "original")

    def __getitem__(self, i: int) -> Data:
        tensors, meta = self.reader[i]
        data = item_to_graph(tensors, meta, self.not_nodes)
        data.verilog_emb = tensors["verilog_emb"]
        data.verilog_vec = tensors["verilog_vec"]
        data.design_id = torch.tensor([self._design_id[meta["design"]]])
        data.design = meta["design"]
        data.variant = meta["variant"]
        return self.transform(data) if self.transform is not None else data
