"""Write the embedded circuit corpus (generated Verilog) and its index of AIG sizes.

Usage::

    python tools/gen_corpus.py --out data/corpus/verilog [--families adder_ripple counter ...] [--limit N]
        [--index data/corpus/index.csv | --no-index] [--lint] [--jobs 2] [--clean]

Writes ``<out>/<name>.v`` for every design (files are rewritten only when their text changed), then,
unless ``--no-index``, converts each with yosys (:func:`geomask.io.verilog.read_verilog`) and writes the
index CSV (name, family, params, sequential, ands, latches, inputs, outputs; default
``<out>/../index.csv``).  ``--lint`` also compiles each file with Icarus Verilog and fails on any message.
The generator itself is the package :mod:`tools.corpus` beside this script.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root: tools.corpus

from tools.corpus import FAMILIES, generate, index_rows, lint_iverilog, write_corpus, write_index  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True, help="folder for the .v files")
    ap.add_argument("--families", nargs="+", choices=list(FAMILIES), help="only these families")
    ap.add_argument("--limit", type=int, help="at most N designs per family")
    ap.add_argument("--index", type=Path, help="index CSV path (default: <out>/../index.csv)")
    ap.add_argument("--no-index", action="store_true", help="skip the yosys conversion and the index")
    ap.add_argument("--lint", action="store_true", help="also compile every file with iverilog")
    ap.add_argument("--jobs", type=int, default=2, help="parallel yosys processes")
    ap.add_argument("--clean", action="store_true", help="delete .v files in --out that are not generated")
    args = ap.parse_args(argv)

    designs = generate(args.families, args.limit)
    paths = write_corpus(designs, args.out, clean=args.clean)
    size = sum(p.stat().st_size for p in paths)
    print(f"wrote {len(paths)} designs ({size / 1e6:.2f} MB) to {args.out}")
    failed = 0
    if args.lint:
        for p in paths:
            msg = lint_iverilog(p)
            if msg is not None:
                failed += 1
                print(f"iverilog: {p.name}: {msg}", file=sys.stderr)
        print(f"iverilog: {len(paths) - failed}/{len(paths)} clean")
    if not args.no_index:
        t0 = time.perf_counter()
        rows = index_rows(designs, args.out, jobs=args.jobs)
        secs = time.perf_counter() - t0
        index = args.index if args.index is not None else args.out.parent / "index.csv"
        write_index(rows, index)
        ands = sorted(r.ands for r in rows)
        print(
            f"yosys: {len(rows)} designs in {secs:.1f} s ({secs / len(rows):.2f} s each, {args.jobs} jobs); "
            f"ANDs min {ands[0]}, median {ands[len(ands) // 2]}, max {ands[-1]}, total {sum(ands)} -> {index}"
        )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
