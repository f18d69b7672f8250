"""``geomask info`` start-to-finish on small AIGER files against ABC's ``read; print_stats``, in one run.

Both are whole processes, timed from launch to exit, best of ``--repeat`` runs each:

* geomask: the installed console script (``geomask`` beside this Python; else ``python -m geomask.cli``)
  ``info F``: start-up, reading the AIGER file, counting ANDs and levels;
* ABC: ``berkeley-abc -c "read F; print_stats"``.

The counts both print (ANDs, levels) are checked to agree.  Prints a table, whether geomask stays under the
1 s goal (issue #9), and last ``ratio info_vs_abc: X`` (total ABC time / total geomask time; X > 1: geomask
is faster).

    .venv/bin/python benchmarks/bench_info.py [--data ../shared/data/circuits/epfl] [--repeat 5]

``--data`` defaults to ``$GEOMASK_SHARED_DATA/circuits/epfl`` (``../shared/data`` beside the checkout without
it).  Missing data or a missing ABC prints one ``skipped: ...`` line and exits 0.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

FILES = ["ctrl", "dec", "int2float"]
GOAL_S = 1.0
# ../shared/data beside the checkout, or $GEOMASK_SHARED_DATA
SHARED = Path(os.environ.get("GEOMASK_SHARED_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data")


def best(cmd: list[str], repeat: int) -> tuple[float, str]:
    """Fastest wall time of ``repeat`` runs of ``cmd``, and its stdout."""
    times, out = [], ""
    for _ in range(repeat):
        t = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True)
        times.append(time.perf_counter() - t)
        if proc.returncode != 0:
            sys.exit(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr.strip()[-500:]}")
        out = proc.stdout
    return min(times), out


def geomask_command() -> list[str]:
    script = Path(sys.executable).with_name("geomask")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "geomask.cli"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=SHARED / "circuits" / "epfl", help="EPFL AIGER folder")
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    files = [args.data / f"{name}.aig" for name in FILES]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        where = args.data if not args.data.is_dir() else ", ".join(missing)
        print(f"skipped: EPFL AIGER files not found ({where}; pass --data or set GEOMASK_SHARED_DATA)")
        return
    abc = shutil.which("berkeley-abc")
    if abc is None:
        print("skipped: berkeley-abc is not installed (apt-get install berkeley-abc)")
        return
    gm = geomask_command()
    print(f"geomask: {' '.join(gm)} info F    ABC: {abc} -c 'read F; print_stats'    best of {args.repeat}")
    print(f"{'file':12s} {'ANDs':>6s} {'levels':>6s} {'geomask s':>10s} {'ABC s':>8s} {'ABC/geomask':>11s}")
    total_gm = total_abc = 0.0
    worst = 0.0
    for f in files:
        t_gm, out_gm = best([*gm, "info", str(f)], args.repeat)
        t_abc, out_abc = best([abc, "-c", f"read {f}; print_stats"], args.repeat)
        ours = dict(re.findall(r"(\w+)=(\d+)", out_gm))
        theirs = re.search(r"and\s*=\s*(\d+)\s+lev\s*=\s*(\d+)", re.sub(r"\x1b\[[0-9;]*m", "", out_abc))
        if theirs is None or (ours.get("ands"), ours.get("levels")) != theirs.groups():
            sys.exit(f"{f.name}: counts differ: geomask {out_gm.strip()!r}, ABC {out_abc.strip()!r}")
        print(f"{f.stem:12s} {ours['ands']:>6s} {ours['levels']:>6s} {t_gm:10.3f} {t_abc:8.3f} {t_abc / t_gm:11.2f}")
        total_gm += t_gm
        total_abc += t_abc
        worst = max(worst, t_gm)
    verdict = "under" if worst < GOAL_S else "OVER"
    print(f"goal: geomask info {verdict} {GOAL_S:g} s on every file (slowest {worst:.3f} s)")
    print(f"ratio info_vs_abc: {total_abc / total_gm:.2f}")


if __name__ == "__main__":
    main()
