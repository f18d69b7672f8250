"""prep circuits: dataset + qor.csv, labels equal to ABC's own, resumable after a kill, failures isolated."""

from __future__ import annotations

import csv
import hashlib
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
from geomask.errors import GeomaskError, UsageError
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


def test_temporaries_of_a_killed_run_are_swept_on_resume(tmp_path):
    """A SIGKILLed driver can die between a temporary file and its rename; the resumed run removes those files."""
    src = make_designs(tmp_path / "src")
    clean = tmp_path / "clean"
    prep_circuits(src, clean, recipes=4, recipe_length=4, seed=2, jobs=1, progress=False)
    out = tmp_path / "out"
    prep_circuits(src, out, recipes=4, recipe_length=4, seed=2, jobs=1, progress=False)
    (out / "labels" / "d1.csv").unlink()  # the design it was labelling when it died
    left = [out / "labels" / ".d1.csv.k1ll3d_0.tmp", out / "shards" / ".d2.pt.k1ll3d_0.tmp"]
    left += [out / "aig" / ".d0.aig.k1ll3d_0.tmp", out / ".qor.csv.k1ll3d_0.tmp"]
    for p in left:  # half-written, and no process holds them any more
        p.write_bytes(b"half")
    report = prep_circuits(src, out, recipes=4, recipe_length=4, seed=2, jobs=1, progress=False)
    assert not report.failures
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
    prep_circuits(src, tmp_path / "out", recipes=0, progress=False)
    with pytest.raises(GeomaskError, match="other settings: not_nodes=per_edge \\(this run: attr\\)"):
        prep_circuits(src, tmp_path / "out", recipes=0, not_nodes="attr", progress=False)


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


def test_designs_added_in_three_runs_equal_one_run(tmp_path):
    src = make_designs(tmp_path / "src", 5)
    opts = dict(recipes=3, recipe_length=4, seed=5, progress=False)
    one = tmp_path / "one"
    prep_circuits(src, one, **opts)
    many = tmp_path / "many"
    first = prep_circuits(src[:3], many, **opts)
    assert [(r["design"], r["status"]) for r in first.rows] == [("d0", "added"), ("d1", "added"), ("d2", "added")]
    second = prep_circuits([src[0], src[3]], many, **opts)  # d0 again: kept, not redone
    assert [(r["design"], r["status"]) for r in second.rows] == [
        ("d0", "kept"),
        ("d1", "kept"),
        ("d2", "kept"),
        ("d3", "added"),
    ]
    assert second.added == ["d3"] and all(r["labels"] == 3 for r in second.rows)
    # ABC's time per design: measured for what this run labelled, "-" for labels an earlier run made
    assert all(isinstance(r["abc_s"], float) and r["abc_s"] > 0 for r in first.rows)
    assert [r["abc_s"] == "-" for r in second.rows] == [True, True, True, False]
    third = prep_circuits([src[4]], many, **opts)
    assert len(third.rows) == 5 and third.added == ["d4"]
    # every file, byte for byte: manifest records, qor.csv, labels/, recipes.csv, aig/, shards/
    assert snapshot(many) == snapshot(one)
    rows = list(csv.DictReader(open(many / "qor.csv")))
    assert len(rows) == 15 and sorted({r["design"] for r in rows}) == ["d0", "d1", "d2", "d3", "d4"]
    assert len(CircuitDataset(many)) == 5


def test_other_recipe_options_are_refused_before_writing(tmp_path):
    src = make_designs(tmp_path / "src", 3)
    out = tmp_path / "out"
    prep_circuits(src[:1], out, recipes=2, recipe_length=3, seed=0, progress=False)
    before = snapshot(out)
    for change, named in [
        (dict(recipes=4), "recipes=2 (this run: 4)"),
        (dict(recipe_length=5), "recipe_length=3 (this run: 5)"),
        (dict(seed=7), "seed=0 (this run: 7)"),
        (dict(latches="cut"), "latches=keep (this run: cut)"),
        (dict(recipes=0), "recipes=2 (this run: 0)"),
    ]:
        kwargs = {**dict(recipes=2, recipe_length=3, seed=0), **change}
        with pytest.raises(UsageError) as info:
            prep_circuits(src[1:], out, progress=False, **kwargs)
        assert named in str(info.value) and "\n" not in str(info.value) and str(out) in str(info.value)
        assert snapshot(out) == before


def test_a_different_file_under_a_taken_name_fails_alone(tmp_path):
    src = make_designs(tmp_path / "src", 2)
    out = tmp_path / "out"
    prep_circuits(src[:1], out, recipes=0, progress=False)
    other = tmp_path / "elsewhere" / "d0.aag"
    other.parent.mkdir()
    other.write_text(src[1].read_text())  # same name, other circuit
    report = prep_circuits([other], out, recipes=0, progress=False)
    assert len(report.failures) == 1 and "already holds a design 'd0'" in report.failures[0][1]
    assert [r["design"] for r in report.rows] == ["d0"] and report.added == []
    (rec,) = CircuitDataset(out).reader.items
    assert rec["sha256"] == hashlib.sha256(src[0].read_bytes()).hexdigest()  # the first d0 is untouched


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(recipes=-1), "recipes must be >= 0"),
        (dict(recipe_length=0), "recipe length must be >= 1, got 0"),
        (dict(jobs=0), "jobs must be >= 1, got 0"),
        (dict(latches="scan"), "latches must be one of keep, cut"),
        (dict(not_nodes="none"), "not_nodes must be one of"),
    ],
)
def test_bad_options_are_usage_errors(tmp_path, kwargs, message):
    src = make_designs(tmp_path / "src", 1)
    with pytest.raises(UsageError, match=message):
        prep_circuits(src, tmp_path / "out", progress=False, **kwargs)
    assert not (tmp_path / "out").exists()


def test_default_labels_thirty_recipes_of_twenty_steps(tmp_path):
    src = tmp_path / "and2.aag"
    src.write_text("aag 3 2 0 1 1\n2\n4\n6\n6 2 4\n")
    prep_circuits([src], tmp_path / "out", progress=False)
    recipes = list(csv.DictReader(open(tmp_path / "out" / "recipes.csv")))
    assert len(recipes) == 30 and {len(r["recipe"].split(";")) for r in recipes} == {20}
    rows = list(csv.DictReader(open(tmp_path / "out" / "qor.csv")))
    assert len(rows) == 30 and {(r["ands"], r["levels"]) for r in rows} == {("1", "1")}


def test_verilog_warnings_reach_the_report_and_manifest(tmp_path):
    src = tmp_path / "half.v"
    src.write_text(
        "module half(input a, input b, output s, output [1:0] c);\n  assign s = a ^ b;\n  assign c[0] = a & b;\n"
        "endmodule\n"
    )
    report = prep_circuits([src], tmp_path / "out", recipes=0, progress=False)
    assert not report.failures
    assert len(report.warnings) == 1 and report.warnings[0][0] == str(src)
    assert "no driver" in report.warnings[0][1] and "c[1]" in report.warnings[0][1]
    (rec,) = CircuitDataset(tmp_path / "out").reader.items
    assert rec["undriven"] == ["c[1]"]
    again = prep_circuits([src], tmp_path / "out", recipes=0, progress=False)
    assert again.warnings == []  # reported once, when the design is added


def test_dataset_repr_summarises(tmp_path):
    src = make_designs(tmp_path / "src", 2)
    prep_circuits(src, tmp_path / "out", recipes=2, recipe_length=3, progress=False)
    ds = CircuitDataset(tmp_path / "out")
    nodes = sum(int(ds[i].num_nodes) for i in range(len(ds)))
    text = repr(ds)
    assert text == (
        f"CircuitDataset(root={str(tmp_path / 'out')!r}, designs=2, nodes={nodes}, not_nodes='per_edge', "
        "recipes=2, labelled=2)"
    )
    assert "\n" not in text and len(text) < 200 + len(str(tmp_path))
    assert ", nodes=" not in repr(CircuitDataset(tmp_path / "out", not_nodes="attr"))  # stored counts differ
    assert "not_nodes='attr'" in repr(CircuitDataset(tmp_path / "out", not_nodes="attr"))


@pytest.mark.parametrize("latches", ["keep", "cut"])
def test_the_table_says_how_many_latches_were_cut(tmp_path, latches):
    """A cut design has no latches left (they became inputs and outputs); the row says how many were cut."""
    src = tmp_path / "seq.aag"
    src.write_text("aag 4 1 2 1 1\n2\n4 8\n6 4\n4\n8 2 7\n")  # two latches: 4 <- 8 = a & !l2, 6 <- l1
    report = prep_circuits([src], tmp_path / "out", recipes=0, latches=latches, progress=False)
    (row,) = report.rows
    if latches == "cut":
        assert (row["latches"], row["latches_cut"], row["inputs"], row["outputs"]) == (0, 2, 3, 3)
    else:
        assert row["latches"] == 2 and "latches_cut" not in row and row["inputs"] == 1
