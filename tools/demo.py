#!/usr/bin/env python
"""The main job on the embedded default data (what `make demo` runs).

1. Build the embedded circuit corpus: the generated Verilog designs in ``data/corpus/verilog/`` → AIGs through
   yosys → an AIG dataset, with ABC QoR labels of seeded random synthesis recipes (``geomask prep circuits``).
2. Print the corpus table.

Outputs go to ``--out`` (default ``out/demo``); a second run resumes and skips finished work.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from geomask.cli import format_table
from geomask.datasets.prep_circuits import prep_circuits

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", type=Path, default=ROOT / "data" / "corpus" / "verilog")
    ap.add_argument("--out", type=Path, default=ROOT / "out" / "demo")
    ap.add_argument("--recipes", type=int, default=8, help="ABC recipes per design (default 8)")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--limit", type=int, default=0, help="use only the first N designs (0: all)")
    args = ap.parse_args()

    sources = sorted(args.corpus.glob("*.v"))
    if not sources:
        print(f"error: no Verilog designs in {args.corpus} (run tools/gen_corpus.py)", file=sys.stderr)
        return 1
    if args.limit:
        sources = sources[: args.limit]
    t0 = time.time()
    print(f"[1/2] corpus: {len(sources)} Verilog designs → AIGs (yosys) → {args.recipes} ABC recipes each")
    report = prep_circuits(
        sources, args.out / "corpus", recipes=args.recipes, recipe_length=20, seed=0, jobs=args.jobs, latches="cut"
    )
    print("[2/2] the corpus")
    print(format_table(report.rows))
    ands = [r["ands"] for r in report.rows]
    print(
        f"{len(report.rows)} designs, {sum(ands)} ANDs in all (min {min(ands)}, max {max(ands)}), "
        f"{sum(r.get('labels', 0) for r in report.rows)} QoR labels in {args.out / 'corpus' / 'qor.csv'}; "
        f"{time.time() - t0:.0f} s"
    )
    for _src, msg in report.failures:
        print(f"error: {msg}", file=sys.stderr)
    return 1 if report.failures else 0


if __name__ == "__main__":
    sys.exit(main())
