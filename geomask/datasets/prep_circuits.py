"""``geomask prep circuits``: circuit files → an AIG dataset, ABC QoR labels and ``qor.csv``.

Output folder ``OUT``::

    OUT/manifest.json, OUT/header.json, OUT/shards/   the dataset (see geomask.datasets.circuits)
    OUT/aig/DESIGN.aig                                 each design's AIG, the file ABC labels
    OUT/recipes.csv                                    recipe_id,recipe
    OUT/labels/DESIGN.csv                              one design's QoR labels (complete when present)
    OUT/qor.csv                                        design,recipe_id,recipe,ands,levels (all designs)

Each step writes atomically and skips work already on disk, so a killed run started again finishes the
rest and ends with the same files as an uninterrupted run.
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from geomask.circuits import circuit_stats
from geomask.circuits.abc import label_recipes
from geomask.circuits.recipes import random_recipes, recipe_to_abc
from geomask.datasets.circuits import SCHEMA_VERSION, graph_record
from geomask.datasets.store import DatasetWriter, file_sha256, safe_key
from geomask.errors import FormatError, GeomaskError
from geomask.io.aiger import write_aiger
from geomask.io.atomic import atomic_write_text
from geomask.io.circuit import CIRCUIT_SUFFIXES, circuit_format, read_aig

__all__ = ["Design", "PrepReport", "find_designs", "prep_circuits"]

_NETLIST = {".aig", ".aag", ".bench"}
_VERILOG = {".v", ".sv"}


@dataclass(frozen=True)
class Design:
    """One input design: a circuit file or a Verilog folder, and its unique key."""

    key: str
    path: Path
    top: str | None = None


@dataclass
class PrepReport:
    """What a run did: one summary row per design and one message per failure."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    failures: list[tuple[str, str]] = field(default_factory=list)


def _is_verilog_design_folder(folder: Path) -> bool:
    kids = list(folder.iterdir())
    has_v = any(p.is_file() and p.suffix.lower() in _VERILOG for p in kids)
    has_other = any(p.is_dir() or p.suffix.lower() in _NETLIST for p in kids)
    return has_v and not has_other


def find_designs(sources: Sequence[str | Path]) -> list[Design]:
    """Expand sources into designs.

    ``PATH@TOP`` names a Verilog design's top module (e.g. ``opencores/aes_core@aes_cipher_top``).
    A file is a design named by its stem.  A folder holding only Verilog files (and no subfolders or
    netlists) is one design named by the folder.  Any other folder is a collection: each AIGER / .bench /
    Verilog file in it is a design, and each subfolder is expanded the same way.  Names that collide get
    their suffix appended (``adder`` and ``adder_v``).

    Raises:
        FormatError: a source that does not exist or has an unknown suffix.
    """
    found: list[Path] = []
    tops: dict[Path, str] = {}

    def expand(p: Path, top: bool) -> None:
        if p.is_dir():
            kids = sorted(k for k in p.iterdir() if k.is_dir() or k.suffix.lower() in CIRCUIT_SUFFIXES)
            if _is_verilog_design_folder(p) or not kids:
                found.append(p)  # a design; a folder without circuits fails to read with a clear message
                return
            for kid in kids:
                expand(kid, False)
        elif p.is_file():
            if top:
                circuit_format(p)  # raises on an unknown suffix
            found.append(p)
        else:
            raise FormatError(p, "no such file or folder")

    for s in sources:
        text, _, top = str(s).partition("@")
        if top:
            tops[Path(text)] = top
        expand(Path(text), True)
    designs, seen = [], defaultdict(int)
    stems = [p.name if p.is_dir() else p.stem for p in found]
    counts = defaultdict(int)
    for s in stems:
        counts[s] += 1
    for p, stem in zip(found, stems):
        key = safe_key(stem if counts[stem] == 1 or p.is_dir() else f"{stem}_{p.suffix.lstrip('.').lower()}")
        seen[key] += 1
        if seen[key] > 1:
            key = f"{key}_{seen[key]}"
        designs.append(Design(key, p, tops.get(p)))
    return designs


def _convert(design: Design, out: Path, writer: DatasetWriter, latches: str, not_nodes: str, timeout: float) -> dict:
    aig_path = out / "aig" / f"{design.key}.aig"
    if writer.has(design.key) and aig_path.exists():
        import json

        return json.loads((writer.shards / f"{design.key}.json").read_text())
    aig = read_aig(design.path, latches=latches, top=design.top, timeout=timeout)
    aig.name = design.key
    tensors, g = graph_record(aig, not_nodes)
    stats = circuit_stats(aig)
    meta = {
        "name": design.key,
        "format": circuit_format(design.path),
        "source": str(design.path),
        "top": design.top,
        "sha256": file_sha256(design.path),
        **stats,
        "nodes": int(g.num_nodes),
        "edges": int(g.edge_index.shape[1]),
        "not_nodes": not_nodes,
        "input_names": aig.input_names,
        "latch_names": aig.latch_names,
        "output_names": aig.output_names,
    }
    write_aiger(aig, aig_path)
    writer.write(design.key, tensors, meta)
    return {"key": design.key, **meta}


def _write_labels(path: Path, labels: list[tuple[int, int, int]], recipes_text: list[str]) -> None:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["recipe_id", "ands", "levels"])
    for r, ands, lev in sorted(labels):
        w.writerow([r, ands, lev])
    atomic_write_text(path, buf.getvalue())


def _read_labels(path: Path) -> list[tuple[int, int, int]]:
    with open(path, newline="") as f:
        return [(int(r["recipe_id"]), int(r["ands"]), int(r["levels"])) for r in csv.DictReader(f)]


def prep_circuits(
    sources: Sequence[str | Path],
    out: str | Path,
    *,
    recipes: int = 0,
    recipe_length: int = 20,
    seed: int = 0,
    jobs: int = 1,
    latches: str = "keep",
    not_nodes: str = "per_edge",
    timeout: float = 600.0,
    abc_timeout: float = 60.0,
    progress: bool = True,
) -> PrepReport:
    """Build an AIG dataset (and QoR labels when ``recipes > 0``) in ``out``.

    Args:
        sources: circuit files and folders (see :func:`find_designs`).
        out: output folder.
        recipes: random recipes per design (the same recipes for every design); 0 labels nothing.
        recipe_length: steps per recipe.
        seed: recipe seed.
        jobs: parallel conversions and ABC processes.
        latches: ``"keep"`` or ``"cut"``.
        not_nodes: NOT-node mode of the stored graphs.
        timeout: seconds per yosys run.
        abc_timeout: seconds per ABC recipe.
        progress: show progress bars.

    Returns:
        A :class:`PrepReport`; failures are listed there (the rest is complete).
    """
    out = Path(out)
    designs = find_designs(sources)
    options = {
        "latches": latches,
        "not_nodes": not_nodes,
        "recipes": recipes,
        "recipe_length": recipe_length,
        "seed": seed,
    }
    writer = DatasetWriter(out, "aig", SCHEMA_VERSION, options)
    report = PrepReport()
    records: dict[str, dict] = {}

    with (
        ThreadPoolExecutor(max_workers=max(1, jobs)) as pool,
        tqdm(total=len(designs), desc="circuits", unit="design", disable=not progress) as bar,
    ):
        futs = {pool.submit(_convert, d, out, writer, latches, not_nodes, timeout): d for d in designs}
        for fut in as_completed(futs):
            d = futs[fut]
            try:
                records[d.key] = fut.result()
            except GeomaskError as e:
                report.failures.append((str(d.path), str(e)))
                if progress:
                    bar.write(f"error: {e}")
            bar.update(1)

    labels: dict[str, list[tuple[int, int, int]]] = {}
    if recipes > 0:
        ids = random_recipes(recipes, recipe_length, seed)
        recipe_text = [recipe_to_abc(r) for r in ids]
        rbuf = io.StringIO()
        w = csv.writer(rbuf, lineterminator="\n")
        w.writerow(["recipe_id", "recipe"])
        w.writerows(enumerate(recipe_text))
        atomic_write_text(out / "recipes.csv", rbuf.getvalue())
        todo = []
        for key in sorted(records):
            lp = out / "labels" / f"{key}.csv"
            if lp.exists():
                labels[key] = _read_labels(lp)
            else:
                todo.append(key)
        pending: dict[str, list[tuple[int, int, int]]] = defaultdict(list)
        errors: dict[str, str] = {}
        paths = [out / "aig" / f"{k}.aig" for k in todo]
        for lab in label_recipes(paths, ids, jobs=jobs, timeout=abc_timeout, progress=progress):
            key = todo[lab.design]
            if lab.error is not None:
                errors.setdefault(key, str(lab.error))
                continue
            pending[key].append((lab.recipe, lab.ands, lab.levels))
            if len(pending[key]) == recipes:
                _write_labels(out / "labels" / f"{key}.csv", pending[key], recipe_text)
                labels[key] = sorted(pending[key])
        for key, msg in sorted(errors.items()):
            report.failures.append((records[key]["source"], msg))
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["design", "recipe_id", "recipe", "ands", "levels"])
        for key in sorted(labels):
            for r, ands, lev in labels[key]:
                w.writerow([key, r, recipe_text[r], ands, lev])
        atomic_write_text(out / "qor.csv", buf.getvalue())

    writer.finalize()
    failed_sources = {src for src, _ in report.failures}
    for key in sorted(records):
        rec = records[key]
        row = {k: rec[k] for k in ("format", "inputs", "outputs", "latches", "ands", "levels", "nodes")}
        row = {"design": key, **row}
        if recipes > 0:
            row["labels"] = len(labels.get(key, []))
        row["status"] = "failed" if rec["source"] in failed_sources else "ok"
        report.rows.append(row)
    report.failures.sort()
    return report
