"""``geomask info`` and ``geomask convert`` on AIGER and .bench files stay light: no torch, torch_geometric or
numba in the process (those imports cost seconds; speed itself is measured in benchmarks/bench_info.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import geomask

# ANDs listed out of order (ASCII AIGER allows it), so reading renumbers them through topological_order.
AAG = "aag 5 2 0 1 3\n2\n4\n10\n10 8 6\n6 2 4\n8 3 5\n"
BENCH = """# c17
INPUT(1)
INPUT(2)
INPUT(3)
INPUT(6)
INPUT(7)
OUTPUT(22)
OUTPUT(23)
10 = NAND(1, 3)
11 = NAND(3, 6)
16 = NAND(2, 11)
19 = NAND(11, 7)
22 = NAND(10, 16)
23 = NAND(16, 19)
"""

HEAVY = ("torch", "torch_geometric", "numba")

PROBE = """
import json, sys
from geomask.cli import main
rc = [main(["info", sys.argv[1]]), main(["info", "--json", sys.argv[2]]), main(["convert", sys.argv[2], sys.argv[3]])]
heavy = sorted(m for m in sys.modules if m.split(".")[0] in {heavy!r})
print(json.dumps({{"rc": rc, "heavy": heavy}}))
"""


def _run_fresh(code: str, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    root = str(Path(geomask.__file__).resolve().parents[1])  # the geomask this test imported
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, timeout=300)


def test_info_and_convert_import_no_torch_torch_geometric_or_numba(tmp_path):
    aag = tmp_path / "small.aag"
    aag.write_text(AAG)
    bench = tmp_path / "c17.bench"
    bench.write_text(BENCH)
    out = tmp_path / "c17.aig"
    proc = _run_fresh(PROBE.format(heavy=set(HEAVY)), str(aag), str(bench), str(out))
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    report = json.loads(lines[-1])
    assert report["rc"] == [0, 0, 0]
    assert "ands=3" in lines[0] and "levels=2" in lines[0]
    assert json.loads(lines[1])["ands"] == 6
    assert out.is_file()
    assert report["heavy"] == []


def test_circuits_package_names_still_resolve_lazily():
    code = (
        "import sys, geomask.circuits as gc\n"
        "assert 'torch_geometric' not in sys.modules\n"
        "from geomask.circuits import NodeType, aig_to_graph, circuit_stats, to_deepgate\n"
        "assert gc.circuit_stats is circuit_stats\n"
        "from geomask.circuits.graph import aig_to_graph as direct\n"
        "assert aig_to_graph is direct and NodeType.AND == 1 and callable(to_deepgate)\n"
        "assert not hasattr(gc, 'no_such_name')\n"
        "print('ok')\n"
    )
    proc = _run_fresh(code)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"
