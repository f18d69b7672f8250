"""``geomask prep circuits``: circuit files → an AIG dataset, ABC QoR labels and ``qor.csv``.

Output folder ``OUT``::

    OUT/manifest.json, OUT/header.json, OUT/shards/   the dataset (see geomask.datasets.circuits)
    OUT/aig/DESIGN.aig                                 each design's AIG, the file ABC labels
    OUT/recipes.csv                                    recipe_id,recipe
    OUT/labels/DESIGN.csv                              one design's QoR labels (complete when present)
    OUT/qor.csv                                        design,recipe_id,recipe,ands,levels (all designs)

The ABC labelling runs on ``jobs`` threads, or with ``executor="ray"`` as Ray tasks on a cluster
(:mod:`geomask.datasets.executors`); either way every job is the same pure function and this process writes
every file, so the outputs are the same bytes.  Conversions (yosys) always run here, on ``jobs`` threads.

Each step writes atomically and skips work already on disk, so a killed run started again finishes the
rest and ends with the same files as an uninterrupted run.  Designs can be added to a folder in several
runs: the manifest, ``labels/`` and ``qor.csv`` then hold every design of the folder, exactly as one run over
all of them writes them.  A run must use the options the folder was made with (recipes, recipe length,
recipe family, seed, latches, NOT nodes); otherwise it stops before writing anything.

Recipes come from :func:`geomask.circuits.recipes.family_recipes`, the one function ``eval qor`` draws from too:
``uniform`` (OpenABC-D's, the default) or ``varied`` (lengths ``1 .. recipe_length``, per-recipe op mixes).  The
options in ``header.json`` / ``manifest.json`` record the family only when it is not ``uniform``, so folders
made before the option existed, and uniform folders made since, are byte-identical and resume each other.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
from collections import defaultdict
from collections.abc import Sequence
from concurrent.futures import as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from geomask.circuits import circuit_stats
from geomask.circuits.abc import label_recipes
from geomask.circuits.recipes import (
    DEFAULT_RECIPE_LENGTH,
    DEFAULT_RECIPES,
    RECIPE_FAMILIES,
    check_recipe_options,
    family_recipes,
    recipe_to_abc,
    unpad,
)
from geomask.datasets.circuits import SCHEMA_VERSION, graph_record
from geomask.datasets.executors import check_executor, make_executor
from geomask.datasets.store import DatasetWriter, file_sha256
from geomask.errors import FormatError, GeomaskError, UsageError
from geomask.io.aiger import write_aiger
from geomask.io.atomic import atomic_write_text, sweep_temporaries
from geomask.io.circuit import LATCH_MODES, CircuitSource, circuit_format, expand_sources, read_aig
from geomask.progress import progress_bar

__all__ = ["Design", "PrepReport", "find_designs", "prep_circuits"]

#: One input design (the name this module used before :class:`geomask.io.circuit.CircuitSource`).
Design = CircuitSource
_NOT_MODES = ("per_edge", "shared", "attr")  # geomask.circuits.graph.NOT_MODES
#: Options a folder records only when they differ from these defaults (older folders do not record them).
_OPTION_DEFAULTS = {"recipe_family": RECIPE_FAMILIES[0]}


@dataclass
class PrepReport:
    """What a run did.

    Attributes:
        rows: one summary row per design in the output folder (not only this run's), sorted by design;
            ``status`` is ``added`` (converted by this run), ``kept`` (already there), ``failed`` (its labels
            failed in this run) or ``unlabelled`` (labels missing since an earlier run).
        failures: ``(source, message)`` per design that failed in this run (a failed conversion has no row).
        warnings: ``(source, message)`` per thing a conversion of this run changed or left out (undriven
            outputs, dropped simulation statements, unused modules; see :func:`geomask.io.circuit.read_aig`).
        added: the designs this run converted, sorted.
    """

    rows: list[dict[str, Any]] = field(default_factory=list)
    failures: list[tuple[str, str]] = field(default_factory=list)
    warnings: list[tuple[str, str]] = field(default_factory=list)
    added: list[str] = field(default_factory=list)


def find_designs(sources: Sequence[str | Path]) -> list[CircuitSource]:
    """Expand sources into designs: :func:`geomask.io.circuit.expand_sources` (kept under its old name)."""
    return expand_sources(sources)


def _check_options(out: Path, options: dict[str, Any]) -> None:
    """Refuse, before anything is written, a folder made with other options (naming each difference)."""
    header = out / "header.json"
    if not header.is_file():
        return
    try:
        have = json.loads(header.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise FormatError(header, f"cannot read the dataset header ({e})") from None
    if have.get("kind") != "aig":
        raise FormatError(out, f"holds a {have.get('kind')!r} dataset, not circuits; use another --out")
    old = {**_OPTION_DEFAULTS, **have.get("options", {})}
    new = {**_OPTION_DEFAULTS, **options}
    diff = [
        f"{k}={old.get(k)} (this run: {new.get(k)})"
        for k in sorted(old.keys() | new.keys())
        if old.get(k) != new.get(k)
    ]
    if diff:
        raise UsageError(
            f"{out}: already holds a dataset made with other settings: {', '.join(diff)}; "
            "add designs with the folder's settings, or use another --out"
        )


def _convert(design: Design, out: Path, writer: DatasetWriter, latches: str, not_nodes: str, timeout: float) -> dict:
    aig_path = out / "aig" / f"{design.key}.aig"
    if writer.has(design.key) and aig_path.exists():
        rec = json.loads((writer.shards / f"{design.key}.json").read_text())
        if rec.get("sha256") != file_sha256(design.path) or rec.get("top") != design.top:
            raise FormatError(
                design.path,
                f"{out} already holds a design {design.key!r} from {rec.get('source')} with other content; "
                "rename this one or use another --out",
            )
        return {**rec, "added": False}
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
        "latches_cut": int(getattr(aig, "latches_cut", 0)),
        "output_names": aig.output_names,
        "undriven": aig.undriven,
        "warnings": aig.warnings,
    }
    write_aiger(aig, aig_path)
    writer.write(design.key, tensors, meta)
    return {"key": design.key, **meta, "added": True}


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
    recipes: int = DEFAULT_RECIPES,
    recipe_length: int = DEFAULT_RECIPE_LENGTH,
    recipe_family: str = RECIPE_FAMILIES[0],
    seed: int = 0,
    jobs: int = 1,
    latches: str = "keep",
    not_nodes: str = "per_edge",
    timeout: float = 600.0,
    abc_timeout: float = 60.0,
    progress: bool = True,
    executor: str = "threads",
    address: str | None = None,
) -> PrepReport:
    """Build an AIG dataset (and QoR labels when ``recipes > 0``) in ``out``, or add designs to one.

    Args:
        sources: circuit files and folders (see :func:`geomask.io.circuit.expand_sources`).
        out: output folder; one made before must have been made with the same options (below).
        recipes: random recipes per design (the same recipes for every design); 0 labels nothing.
        recipe_length: steps per recipe (``varied``: the longest).
        recipe_family: ``"uniform"`` (OpenABC-D: every recipe ``recipe_length`` uniform ops) or ``"varied"``
            (lengths ``1 .. recipe_length`` and per-recipe op mixes): :func:`geomask.circuits.recipes.family_recipes`,
            the same recipes as ``eval qor --recipe-family`` for the same seed, count and length.
        seed: recipe seed.
        jobs: parallel conversions, and ABC processes on threads (or the CPUs of a local Ray cluster).
        latches: ``"keep"`` or ``"cut"``.
        not_nodes: NOT-node mode of the stored graphs.
        timeout: seconds per yosys run.
        abc_timeout: seconds per ABC recipe.
        progress: show progress bars.
        executor: where ABC runs: ``"threads"`` or ``"ray"`` (see :func:`geomask.datasets.executors.make_executor`).
        address: the Ray cluster's address (``"auto"``: a local ``ray start`` cluster); ``None`` with
            ``executor="ray"`` starts a private local cluster of ``jobs`` CPUs for this run.

    Returns:
        A :class:`PrepReport` over every design in ``out``; failures are listed there (the rest is complete).

    Raises:
        UsageError: a bad option value, ray missing with ``executor="ray"``, or ``out`` made with other options
            (nothing is written then).
        ToolError: the Ray cluster cannot be reached: before anything is written where nothing listens at a
            ``HOST:PORT`` address, else after the conversions (which are kept).
    """
    check_recipe_options(recipes, recipe_length, jobs, zero="0: no QoR labels")
    check_executor(executor, jobs, address)
    if latches not in LATCH_MODES:
        raise UsageError(f"latches must be one of {', '.join(LATCH_MODES)}, got {latches!r}")
    if not_nodes not in _NOT_MODES:
        raise UsageError(f"not_nodes must be one of {', '.join(_NOT_MODES)}, got {not_nodes!r}")
    if timeout <= 0 or abc_timeout <= 0:
        raise UsageError(f"timeouts must be positive, got {timeout} (yosys) and {abc_timeout} (ABC)")
    if recipe_family not in RECIPE_FAMILIES:
        raise UsageError(f"recipe_family must be one of {', '.join(RECIPE_FAMILIES)}, got {recipe_family!r}")
    ids = family_recipes(recipe_family, recipes, recipe_length, seed) if recipes > 0 else None  # checked up front
    out = Path(out)
    bad_sources: list[tuple[str, str]] = []
    designs = expand_sources(sources, bad_sources)  # a bad source is a failure; the others are still done
    options = {
        "latches": latches,
        "not_nodes": not_nodes,
        "recipes": recipes,
        "recipe_length": recipe_length,
        "seed": seed,
    }
    if recipe_family != _OPTION_DEFAULTS["recipe_family"]:
        options["recipe_family"] = recipe_family
    _check_options(out, options)
    for folder in (out / "aig", out / "labels"):  # what a killed run was writing (the writer sweeps its own)
        sweep_temporaries(folder)
    writer = DatasetWriter(out, "aig", SCHEMA_VERSION, options)
    report = PrepReport()
    report.failures.extend(bad_sources)
    records: dict[str, dict] = {}

    with (
        make_executor("threads", jobs) as pool,
        progress_bar(total=len(designs), desc="circuits", unit="design", disable=not progress) as bar,
    ):
        futs = {pool.submit(_convert, d, out, writer, latches, not_nodes, timeout): d for d in designs}
        for fut in as_completed(futs):
            d = futs[fut]
            try:
                records[d.key] = fut.result()
            except GeomaskError as e:
                report.failures.append((str(d.path), str(e)))  # printed once, in the report
            bar.update(1)
    for key in sorted(records):
        if records[key]["added"]:
            report.added.append(key)
            report.warnings += [(records[key]["source"], w) for w in records[key].get("warnings", [])]

    failed: set[str] = set()
    abc_seconds: dict[str, float] = defaultdict(float)  # ABC wall time per design labelled by this run
    if ids is not None:
        recipe_text = [recipe_to_abc(r) for r in unpad(ids)]
        rbuf = io.StringIO()
        w = csv.writer(rbuf, lineterminator="\n")
        w.writerow(["recipe_id", "recipe"])
        w.writerows(enumerate(recipe_text))
        atomic_write_text(out / "recipes.csv", rbuf.getvalue())
        todo = [key for key in sorted(records) if not (out / "labels" / f"{key}.csv").exists()]
        pending: dict[str, list[tuple[int, int, int]]] = defaultdict(list)
        errors: dict[str, str] = {}
        paths = [out / "aig" / f"{k}.aig" for k in todo]
        with make_executor(executor, jobs, address) if todo else contextlib.nullcontext() as ex:
            for lab in label_recipes(paths, unpad(ids), jobs=jobs, timeout=abc_timeout, progress=progress, executor=ex):
                key = todo[lab.design]
                abc_seconds[key] += lab.seconds
                if lab.error is not None:
                    errors.setdefault(key, str(lab.error))
                    continue
                pending[key].append((lab.recipe, lab.ands, lab.levels))
                if len(pending[key]) == recipes:
                    _write_labels(out / "labels" / f"{key}.csv", pending[key], recipe_text)
        for key, msg in sorted(errors.items()):
            report.failures.append((records[key]["source"], msg))
            failed.add(key)

    manifest = writer.finalize()
    labels: dict[str, list[tuple[int, int, int]]] = {}
    for rec in manifest["items"]:  # every design of the folder, this run's and earlier runs'
        lp = out / "labels" / f"{rec['key']}.csv"
        if recipes > 0 and lp.exists():
            labels[rec["key"]] = _read_labels(lp)
    if recipes > 0:
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["design", "recipe_id", "recipe", "ands", "levels"])
        for key in sorted(labels):
            for r, ands, lev in labels[key]:
                w.writerow([key, r, recipe_text[r], ands, lev])
        atomic_write_text(out / "qor.csv", buf.getvalue())

    for rec in manifest["items"]:
        key = rec["key"]
        row = {"design": key, **{k: rec[k] for k in ("format", "inputs", "outputs", "latches", "ands", "levels")}}
        if latches == "cut":  # the latches became inputs and outputs: how many
            row["latches_cut"] = rec.get("latches_cut", 0)  # (0 for designs prepared before it was recorded)
        row["nodes"] = rec["nodes"]
        if recipes > 0:
            row["labels"] = len(labels.get(key, []))
            # ABC's wall time for this design in this run (its processes' time; "-": labelled by an earlier run)
            row["abc_s"] = abc_seconds[key] if key in abc_seconds else "-"
        if key in failed:
            row["status"] = "failed"
        elif recipes > 0 and key not in labels:
            row["status"] = "unlabelled"
        else:
            row["status"] = "added" if key in report.added else "kept"
        report.rows.append(row)
    report.failures.sort()
    return report
