"""prep circuits --recipe-family: varied recipes reach the labels (eval qor's own), a folder keeps its family,
and the default (uniform) folder is what it was before the option existed."""

from __future__ import annotations

import csv
import importlib.util
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from geomask.circuits.recipes import family_recipes, random_recipes, recipe_to_abc, unpad
from geomask.cli import main
from geomask.datasets.prep_circuits import prep_circuits
from geomask.errors import UsageError
from geomask.eval.qor import default_recipes, read_qor_csv
from geomask.io.aig import AIG
from geomask.io.aiger import write_aiger

pytestmark = pytest.mark.skipif(shutil.which("berkeley-abc") is None, reason="berkeley-abc not installed")


def make_designs(folder: Path, n: int = 2) -> list[Path]:
    """``n`` small random AIGs (40 + 15 k ANDs) as ASCII AIGER files."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    paths = []
    for k in range(n):
        n_in, n_and = 6 + k, 40 + 15 * k
        ands = np.array([rng.integers(2, 2 * (n_in + 1 + i), size=2) for i in range(n_and)])
        p = folder / f"d{k}.aag"
        write_aiger(AIG(num_inputs=n_in, ands=ands, outputs=2 * (n_in + n_and - np.arange(3))), p)
        paths.append(p)
    return paths


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def recipe_column(path: Path) -> list[str]:
    return [r["recipe"] for r in csv.DictReader(open(path, newline=""))]


def test_varied_flag_reaches_the_labels_with_eval_qors_recipes(tmp_path, capsys):
    src = make_designs(tmp_path / "src")
    out = tmp_path / "out"
    argv = ["prep", "circuits", *map(str, src), "--out", str(out), "--recipes", "8", "--recipe-length", "6"]
    assert main([*argv, "--seed", "3", "--recipe-family", "varied", "--quiet"]) == 0
    want = default_recipes(8, 6, 3, "varied")  # what `eval qor --recipe-family varied` draws
    text = [recipe_to_abc(r) for r in unpad(want)]
    assert recipe_column(out / "recipes.csv") == text
    assert len({len(t.split(";")) for t in text}) > 1  # lengths differ: not the uniform family
    assert not np.array_equal(want, random_recipes(8, 6, 3))
    labels = read_qor_csv(out / "qor.csv")  # what `eval qor --qor-csv` reads back: the same padded recipes
    assert labels.designs == ["d0", "d1"] and np.array_equal(labels.recipes, want)
    assert json.loads((out / "manifest.json").read_text())["options"]["recipe_family"] == "varied"
    # each label is ABC's own for that (short) recipe
    rows = list(csv.DictReader(open(out / "qor.csv", newline="")))
    for r in rows[::5]:
        f = out / "aig" / f"{r['design']}.aig"
        abc = ["berkeley-abc", "-c", f"read {f}; strash; {r['recipe']}; print_stats"]
        m = re.search(r"and =\s*(\d+)\s+lev =\s*(\d+)", subprocess.run(abc, capture_output=True, text=True).stdout)
        assert (int(r["ands"]), int(r["levels"])) == (int(m[1]), int(m[2]))


@pytest.mark.parametrize(("first", "then"), [("uniform", "varied"), ("varied", "uniform")])
def test_resume_with_another_family_is_one_error_line(tmp_path, capsys, first, then):
    src = make_designs(tmp_path / "src")
    out = tmp_path / "out"
    base = ["prep", "circuits", "--out", str(out), "--recipes", "3", "--recipe-length", "4", "--quiet"]
    assert main([*base, str(src[0]), "--recipe-family", first]) == 0
    before = snapshot(out)
    capsys.readouterr()
    assert main([*base, str(src[1]), "--recipe-family", then]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert f"recipe_family={first} (this run: {then})" in err and str(out) in err
    assert snapshot(out) == before  # nothing written, no mixed labels


def test_default_is_uniform_and_unchanged(tmp_path):
    src = make_designs(tmp_path / "src")
    default, explicit = tmp_path / "default", tmp_path / "explicit"
    prep_circuits(src, default, recipes=4, recipe_length=5, seed=1, progress=False)
    prep_circuits(src, explicit, recipes=4, recipe_length=5, seed=1, recipe_family="uniform", progress=False)
    assert snapshot(default) == snapshot(explicit)
    want = [recipe_to_abc(r) for r in family_recipes("uniform", 4, 5, 1)]
    assert want == [recipe_to_abc(r) for r in random_recipes(4, 5, 1)]
    assert recipe_column(default / "recipes.csv") == want and recipe_column(default / "qor.csv")[:4] == want
    # the options a folder recorded before the option existed: a uniform folder does not name its family
    header = json.loads((default / "header.json").read_text())
    assert header["options"] == {
        "latches": "keep",
        "not_nodes": "per_edge",
        "recipes": 4,
        "recipe_length": 5,
        "seed": 1,
    }


def test_bad_family_and_impossible_varied_counts_write_nothing(tmp_path):
    src = make_designs(tmp_path / "src", 1)
    with pytest.raises(UsageError, match="recipe_family must be one of uniform, varied"):
        prep_circuits(src, tmp_path / "a", recipe_family="random", progress=False)
    with pytest.raises(UsageError, match="fewer distinct recipes exist"):  # 7 recipes of length 1 exist
        prep_circuits(src, tmp_path / "b", recipes=8, recipe_length=1, recipe_family="varied", progress=False)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_demo_label_summary_reports_spread_and_rank_correlation(tmp_path):
    path = Path(__file__).resolve().parents[2] / "tools" / "demo.py"
    spec = importlib.util.spec_from_file_location("geomask_demo_family", path)
    demo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(demo)
    qor = tmp_path / "qor.csv"
    rows = ["design,recipe_id,recipe,ands,levels"]
    for d, ands in {"a": (100, 110, 120), "b": (50, 60, 75), "c": (10, 10, 10)}.items():
        rows += [f"{d},{r},balance,{v},3" for r, v in enumerate(ands)]
    qor.write_text("\n".join(rows) + "\n")
    a, b, c = (tmp_path / f"{n}.aag" for n in "abc")  # only their names matter here
    for f in (a, b, c):
        write_aiger(AIG(num_inputs=2, ands=[[2, 4]], outputs=[6]), f)
    text = demo.label_summary(qor, {"held-out": [a, b], "training": [c]})
    held, train = text.splitlines()
    assert "held-out: 2 designs x 3 recipes, 0 constant, median spread 35 %, cross-design rank correlation 1" in held
    assert "training: 1 designs x 3 recipes, 1 constant, median spread 0 %" in train
