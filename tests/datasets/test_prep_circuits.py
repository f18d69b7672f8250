"""prep circuits: dataset + qor.csv, labels equal to ABC's own, resumable after a kill, failures isolated."""

from __future__ import annotations

import csv
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

import geomask.datasets.prep_circuits as prep_mod
from geomask.circuits import graph_to_aig
from geomask.datasets.circuits import CircuitDataset
from geomask.datasets.prep_circuits import find_designs, prep_circuits
from geomask.io.aig import AIG
from geomask.io.aiger import read_aiger, write_aiger

pytestmark = pytest.mark.skipif(shutil.which("berkeley-abc") is None, reason="berkeley-abc not installed")


def make_designs(folder: Path, n: int = 3) -> list[Path]:
    rng = np.random.default_rng(42)
    paths = []
    for k in range(n):
        n_in, n_and = 6 + k, 50 + 20 * k
        ands = np.array([rng.integers(2, 2 * (n_in + 1 + i), size=2) for i in range(n_and)])
        aig = AIG(num_inputs=n_in, ands=ands, outputs=2 * (n_in + n_and - np.arange(3)))
        p = folder / f"d{k}.aag"
        write_aiger(aig, p)
        paths.append(p)
    return paths


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_dataset_and_labels(tmp_path):
    src = make_designs(tmp_path / "src")
    out = tmp_path / "out"
    report = prep_circuits(src, out, recipes=4, recipe_length=5, seed=1, jobs=2, progress=False)
    assert not report.failures
    assert [r["design"] for r in report.rows] == ["d0", "d1", "d2"]
    ds = CircuitDataset(out)
    assert len(ds) == 3 and ds.names == ["d0", "d1", "d2"]
    g = ds[1]
    assert graph_to_aig(g).same_structure(read_aiger(src[1]))
    assert torch.load(out / "shards" / "d1.pt", weights_only=True)["edge_index"].shape[0] == 2
    rows = list(csv.DictReader(open(out / "qor.csv")))
    assert list(rows[0].keys()) == ["design", "recipe_id", "recipe", "ands", "levels"]
    assert len(rows) == 12
    # Each label is exactly what ABC reports for the same AIG file and recipe.
    for r in rows[::5]:
        f = out / "aig" / f"{r['design']}.aig"
        text = subprocess.run(
            ["berkeley-abc", "-c", f"read {f}; strash; {r['recipe']}; print_stats"], capture_output=True, text=True
        ).stdout
        m = re.search(r"and =\s*(\d+)\s+lev =\s*(\d+)", text)
        assert (int(r["ands"]), int(r["levels"])) == (int(m[1]), int(m[2]))


def test_killed_run_resumes_to_the_same_result(tmp_path, monkeypatch):
    src = make_designs(tmp_path / "src")
    clean = tmp_path / "clean"
    prep_circuits(src, clean, recipes=6, recipe_length=4, seed=3, jobs=1, progress=False)

    real = prep_mod.label_recipes
    calls = {"n": 0}

    def dying(*args, **kwargs):
        for lab in real(*args, **kwargs):
            calls["n"] += 1
            if calls["n"] == 8:  # mid-way through the second design
                raise KeyboardInterrupt
            yield lab

    out = tmp_path / "resumed"
    monkeypatch.setattr(prep_mod, "label_recipes", dying)
    with pytest.raises(KeyboardInterrupt):
        prep_circuits(src, out, recipes=6, recipe_length=4, seed=3, jobs=1, progress=False)
    assert not (out / "manifest.json").exists()
    assert not list(out.rglob("*.tmp"))
    monkeypatch.setattr(prep_mod, "label_recipes", real)
    prep_circuits(src, out, recipes=6, recipe_length=4, seed=3, jobs=1, progress=False)
    assert snapshot(out) == snapshot(clean)


def test_bad_input_fails_alone(tmp_path):
    src = make_designs(tmp_path / "src", 2)
    bad = tmp_path / "src" / "broken.aig"
    bad.write_bytes(read_aiger(src[0]) and b"aig 90 6 0 3 84\n12\n")
    report = prep_circuits([*src, bad], tmp_path / "out", recipes=2, recipe_length=3, progress=False)
    assert [r["design"] for r in report.rows] == ["d0", "d1"]
    assert len(report.failures) == 1 and "broken.aig" in report.failures[0][1]
    assert "truncated" in report.failures[0][1]
    assert not (tmp_path / "out" / "shards" / "broken.pt").exists()


def test_options_must_match_on_resume(tmp_path):
    src = make_designs(tmp_path / "src", 1)
    prep_circuits(src, tmp_path / "out", progress=False)
    with pytest.raises(Exception, match="other settings"):
        prep_circuits(src, tmp_path / "out", not_nodes="attr", progress=False)


def test_find_designs_rules(tmp_path):
    (tmp_path / "coll" / "ip").mkdir(parents=True)
    (tmp_path / "coll" / "ip" / "a.v").write_text("module a(); endmodule\n")
    (tmp_path / "coll" / "ip" / "b.v").write_text("module b(); endmodule\n")
    (tmp_path / "coll" / "x.aig").write_bytes(b"aig 0 0 0 0 0\n")
    (tmp_path / "coll" / "x.bench").write_text("")
    (tmp_path / "coll" / "notes.txt").write_text("")
    keys = {d.key: d.path.name for d in find_designs([tmp_path / "coll"])}
    assert keys == {"ip": "ip", "x_aig": "x.aig", "x_bench": "x.bench"}


def test_find_designs_top_syntax(tmp_path):
    (tmp_path / "ip").mkdir()
    (tmp_path / "ip" / "a.v").write_text("module a(); endmodule\n")
    (d,) = find_designs([f"{tmp_path / 'ip'}@a"])
    assert (d.key, d.top) == ("ip", "a")
