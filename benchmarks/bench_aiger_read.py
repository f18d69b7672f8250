"""AIGER → full graph: geomask against aigverse (mockturtle) and ABC, in one run.

For each EPFL file, the best of ``--repeat`` runs of:

* geomask: ``geomask.circuits.read(path)`` — parse, canonical graph with NOT nodes, forward and reverse
  levels, AND levels, degrees;
* aigverse: ``read_aiger_into_aig`` + ``Aig.to_graph_tensors(levels=True, fanouts=True)``;
* ABC: ``berkeley-abc -c "read F; print_stats"`` (a whole process, so it includes ABC's start-up;
  reported for scale, no ratio).

Prints ``ratio read NAME geomask/aigverse: X`` per file (X > 1: geomask is faster) last.

    python benchmarks/bench_aiger_read.py [--data ../shared/data/circuits/epfl] [--repeat 5]

``--data`` defaults to ``$GEOMASK_SHARED_DATA/circuits/epfl`` (``../shared/data`` beside the checkout without
it).  Missing data or a missing aigverse prints one ``skipped: ...`` line and exits 0.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import time
from pathlib import Path

import geomask.circuits as gc

FILES = ["hyp", "div", "mem_ctrl", "multiplier"]
# ../shared/data beside the checkout, or $GEOMASK_SHARED_DATA
SHARED = Path(os.environ.get("GEOMASK_SHARED_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data")


def best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=SHARED / "circuits" / "epfl", help="EPFL AIGER folder")
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    try:
        from aigverse.io import read_aiger_into_aig
    except ImportError:
        print("skipped: aigverse is not installed (pip install aigverse)")
        return
    files = [args.data / f"{name}.aig" for name in ["ctrl", *FILES]]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        where = args.data if not args.data.is_dir() else ", ".join(missing)
        print(f"skipped: EPFL AIGER files not found ({where}; pass --data or set GEOMASK_SHARED_DATA)")
        return
    abc = shutil.which("berkeley-abc")

    gc.read(args.data / "ctrl.aig")  # load the compiled kernels once, as any long-lived process would
    ratios = []
    print(f"{'file':12s} {'ANDs':>8s} {'nodes':>8s} {'geomask s':>10s} {'aigverse s':>10s} {'ABC proc s':>10s}")
    for name in FILES:
        f = args.data / f"{name}.aig"
        g = gc.read(f)
        t_gm = best(lambda f=f: gc.read(f), args.repeat)

        def run_aigverse(f=f):
            aig = read_aiger_into_aig(str(f))
            return aig.to_graph_tensors(levels=True, fanouts=True)

        t_av = best(run_aigverse, args.repeat)
        t_abc = float("nan")
        if abc:
            t_abc = best(lambda f=f: subprocess.run([abc, "-c", f"read {f}; print_stats"], capture_output=True), 3)
        ands = int((g.node_type == gc.NodeType.AND).sum())
        print(f"{name:12s} {ands:8d} {g.num_nodes:8d} {t_gm:10.4f} {t_av:10.4f} {t_abc:10.4f}")
        ratios.append((name, t_av / t_gm))
    for name, r in ratios:
        print(f"ratio read {name} geomask/aigverse: {r:.2f}")


if __name__ == "__main__":
    main()
