"""Run the Verilog corpora of ../shared/data through ``read_verilog`` and check each AIG with ABC.

For every design (the 14 OpenCores folders, the ISCAS'85 ``.v`` files, the ispras24 ``.v`` files) this
reads the design with :func:`geomask.io.verilog.read_verilog`, writes the AIG with
:func:`geomask.io.aiger.write_aiger`, reads that file back with ABC (``read F; print_stats``) and checks
that ABC's input/output/latch/AND counts equal the AIG's.  It prints one Markdown table row per design
(status ``ok``, ``MISMATCH`` or ``refused`` with yosys' reason) and a summary.

Usage::

    python tools/check_verilog_corpus.py [--data ../shared/data] [--jobs 2] [--timeout 600] [--only opencores]
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from geomask.errors import GeomaskError
from geomask.io.aiger import write_aiger
from geomask.io.verilog import read_verilog

# Designs whose intended top is not the one yosys' -auto-top would pick (IWLS'05 / OpenABC-D tops).
TOPS = {"aes_core": "aes_cipher_top", "des": "des"}
# ispras24 tests that instantiate a module defined in another file of the suite (its README).
COMPANIONS = {"hard_block_known_use": "hard_block_known.v", "mux_part_con_": "mux.v"}
_STATS = re.compile(r"i/o\s*=\s*(\d+)/\s*(\d+)\s+lat\s*=\s*(\d+)\s+and\s*=\s*(\d+)")


def designs(data: Path, only: str | None) -> list[tuple[str, str, Path, str | None]]:
    """``(suite, name, path, top)`` for every design of the three corpora."""
    out: list[tuple[str, str, Path, str | None]] = []
    circ = data / "circuits"
    for d in sorted(p for p in (circ / "opencores").iterdir() if p.is_dir()):
        out.append(("opencores", d.name, d, TOPS.get(d.name)))
    out += [("iscas85", f.stem, f, None) for f in sorted((circ / "iscas85").glob("*.v"))]
    out += [("ispras24", f.stem, f, None) for f in sorted((circ / "ispras24").glob("*.v"))]
    return [d for d in out if only is None or d[0] == only]


def abc_counts(aig_file: Path) -> tuple[int, int, int, int] | str:
    proc = subprocess.run(
        ["berkeley-abc", "-c", f"read {aig_file}; print_stats"], capture_output=True, text=True, timeout=600
    )
    m = _STATS.search(proc.stdout)
    return tuple(int(g) for g in m.groups()) if m else (proc.stdout + proc.stderr).strip().splitlines()[-1]


def check(item: tuple[str, str, Path, str | None], timeout: float) -> dict:
    suite, name, path, top = item
    row = {"suite": suite, "name": name, "top": top or "auto"}
    with tempfile.TemporaryDirectory(prefix="geomask-corpus-") as tmp:
        src = path
        companion = next((f for pre, f in COMPANIONS.items() if suite == "ispras24" and name.startswith(pre)), None)
        if companion:
            # The module this test instantiates lives in another file of the suite: read both as a folder.
            src = Path(tmp) / "design"
            src.mkdir()
            shutil.copyfile(path, src / path.name)
            shutil.copyfile(path.parent / companion, src / companion)
            row["top"] = top = name
        t0 = time.perf_counter()
        try:
            aig = read_verilog(src, top=top, timeout=timeout)
        except GeomaskError as exc:
            row.update(status="refused", seconds=time.perf_counter() - t0, reason=getattr(exc, "message", str(exc)))
            return row
        row["seconds"] = time.perf_counter() - t0
        out = Path(tmp) / f"{name}.aig"
        write_aiger(aig, out)
        ours = (aig.num_inputs, aig.num_outputs, aig.num_latches, aig.num_ands)
        theirs = abc_counts(out)
        row.update(module=aig.name, counts=ours, abc=theirs, status="ok" if theirs == ours else "MISMATCH")
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[1].parent / "shared" / "data")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--timeout", type=float, default=600.0)
    ap.add_argument("--only", choices=["opencores", "iscas85", "ispras24"])
    args = ap.parse_args()
    items = designs(args.data, args.only)
    with ProcessPoolExecutor(args.jobs) as pool:
        rows = list(pool.map(check, items, [args.timeout] * len(items)))
    print("| suite | design | top | I | O | L | A | ABC I/O/L/A | s | status |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        if r["status"] == "refused":
            print(
                f"| {r['suite']} | {r['name']} | {r['top']} | | | | | | {r['seconds']:.1f} | refused: {r['reason']} |"
            )
            continue
        i, o, lat, a = r["counts"]
        abc = "/".join(map(str, r["abc"])) if isinstance(r["abc"], tuple) else r["abc"]
        top = r["top"] if r["top"] != "auto" else f"auto ({r['module']})"
        print(
            f"| {r['suite']} | {r['name']} | {top} | {i} | {o} | {lat} | {a} | {abc} "
            f"| {r['seconds']:.1f} | {r['status']} |"
        )
    for suite in ("opencores", "iscas85", "ispras24"):
        sub = [r for r in rows if r["suite"] == suite]
        if sub:
            n = {s: sum(r["status"] == s for r in sub) for s in ("ok", "MISMATCH", "refused")}
            secs = sum(r["seconds"] for r in sub)
            print(
                f"{suite}: {len(sub)} designs, {n['ok']} ok, {n['MISMATCH']} mismatch, "
                f"{n['refused']} refused, {secs:.1f} s"
            )


if __name__ == "__main__":
    main()
