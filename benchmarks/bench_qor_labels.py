"""QoR-label throughput: ``label_recipes`` with 2 parallel ABC jobs against 1, on EPFL designs.

Also compares one ABC process per (design, recipe) pair with the default chunking (several recipes per
process, re-reading the design before each), which saves ABC's start-up per recipe.

    .venv/bin/python benchmarks/bench_qor_labels.py [--data ../shared/data] [--recipes 8] [--length 20]

``--data`` defaults to ``$GEOMASK_SHARED_DATA`` (``../shared/data`` beside the checkout without it).  Missing
designs or a missing ABC prints one ``skipped: ...`` line and exits 0.

Prints pairs/s per configuration, then ``ratio qor_labels jobs2/jobs1: X`` (X > 1: two jobs are faster)
and ``ratio qor_labels chunked/per_pair: X``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path

from geomask.circuits.abc import label_recipes
from geomask.circuits.recipes import random_recipes

DEFAULT_DESIGNS = "ctrl,int2float,router,cavlc,dec,priority,i2c,adder,bar"
# ../shared/data beside the checkout, or $GEOMASK_SHARED_DATA
SHARED = Path(os.environ.get("GEOMASK_SHARED_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data")


def _time(designs: list[Path], recipes, **kwargs) -> tuple[float, list]:
    t0 = time.perf_counter()
    labels = list(label_recipes(designs, recipes, progress=False, **kwargs))
    dt = time.perf_counter() - t0
    errors = [lab.error for lab in labels if lab.error is not None]
    if errors:
        sys.exit(f"ABC failed: {errors[0]}")
    return dt, sorted((lab.design, lab.recipe, lab.ands, lab.levels) for lab in labels)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=SHARED, help="the shared data folder (holds circuits/epfl)")
    ap.add_argument("--designs", default=DEFAULT_DESIGNS, help="comma-separated EPFL design names")
    ap.add_argument("--recipes", type=int, default=8)
    ap.add_argument("--length", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    epfl = args.data / "circuits" / "epfl"
    designs = [epfl / f"{name}.aig" for name in args.designs.split(",")]
    missing = [str(p) for p in designs if not p.exists()]
    if missing:
        where = epfl if not epfl.is_dir() else ", ".join(missing)
        print(f"skipped: EPFL designs not found ({where}; pass --data or set GEOMASK_SHARED_DATA)")
        return
    if shutil.which("berkeley-abc") is None:
        print("skipped: berkeley-abc is not installed (apt-get install berkeley-abc)")
        return
    recipes = random_recipes(args.recipes, args.length, seed=args.seed)
    pairs = len(designs) * len(recipes)
    print(f"{len(designs)} designs x {len(recipes)} recipes of length {args.length} = {pairs} QoR labels")

    t1, ref = _time(designs, recipes, jobs=1)
    t2, lab2 = _time(designs, recipes, jobs=2)
    tp, labp = _time(designs, recipes, jobs=1, recipes_per_process=1)
    if lab2 != ref or labp != ref:
        sys.exit("labels differ between configurations")
    for name, t in (("jobs=1 (chunked)", t1), ("jobs=2 (chunked)", t2), ("jobs=1 (one process per pair)", tp)):
        print(f"{name:32s} {t:7.2f} s  {pairs / t:7.1f} labels/s")
    print(f"ratio qor_labels jobs2/jobs1: {t1 / t2:.2f}")
    print(f"ratio qor_labels chunked/per_pair: {tp / t1:.2f}")


if __name__ == "__main__":
    main()
