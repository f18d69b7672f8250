from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from geomask.circuits import abc
from geomask.circuits.abc import abc_cec, abc_stats, label_recipes, run_recipe
from geomask.errors import FormatError, ToolError, UsageError
from geomask.io.aig import AIG
from geomask.io.aiger import write_aiger

pytestmark = pytest.mark.skipif(shutil.which("berkeley-abc") is None, reason="berkeley-abc is not installed")

# Full adder over a, b, cin with sum = a ^ b ^ cin and carry = maj(a, b, cin), written by hand.
# vars: a=1 b=2 c=3; 4=a&b 5=!a&!b 6=a^b (as !4&!5) 7=6&c 8=!6&!c 9=sum=!7&!8 ... carry = !( !4 & !7 )
FULL_ADDER = """aag 10 3 0 2 7
2
4
6
18
21
8 2 4
10 3 5
12 9 11
14 12 6
16 13 7
18 15 17
20 9 15
"""
# the same functions, carry built as maj from OR terms: a&b | c&(a|b)
FULL_ADDER_2 = """aag 11 3 0 2 8
2
4
6
18
23
8 2 4
10 3 5
12 9 11
14 12 6
16 13 7
18 15 17
20 11 6
22 9 21
"""
AND2 = "aag 3 2 0 1 1\n2\n4\n6\n6 2 4\n"
OR2 = "aag 3 2 0 1 1\n2\n4\n7\n6 3 5\n"
STATS_RE = re.compile(r"and\s*=\s*(\d+)\s+lev\s*=\s*(\d+)")


def _write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def _redundant_aig(tmp_path: Path, seed: int = 0, n_and: int = 300) -> Path:
    """A random 8-input AIG with lots of redundancy, as binary .aig, which ABC shrinks."""
    rng = np.random.default_rng(seed)
    ands = np.zeros((n_and, 2), dtype=np.int64)
    for i in range(n_and):
        ands[i] = 2 * rng.integers(1, 9 + i, size=2) + rng.integers(0, 2, size=2)
    outs = 2 * np.arange(9 + n_and - 8, 9 + n_and) + 1
    path = tmp_path / f"rand{seed}.aig"
    write_aiger(AIG(8, ands, outputs=outs), path)
    return path


def test_stats_of_ascii_fixture(tmp_path: Path) -> None:
    fa = _write(tmp_path, "fa.aag", FULL_ADDER)
    assert abc_stats(fa) == {"inputs": 3, "outputs": 2, "latches": 0, "ands": 7, "levels": 4}


def test_run_recipe_matches_direct_abc_call(tmp_path: Path) -> None:
    path = _redundant_aig(tmp_path)
    recipe = [2, 6, 0, 5, 3, 1, 4]
    script = f"read {path}; strash; rewrite; balance; refactor; resub -z; rewrite -z; refactor -z; resub; print_stats"
    out = subprocess.run(["berkeley-abc", "-c", script], capture_output=True, text=True, check=True).stdout
    ands, levels = (int(x) for x in STATS_RE.findall(out)[-1])
    assert run_recipe(path, recipe) == (ands, levels)
    assert run_recipe(path, "rewrite; balance; refactor; resub -z; rewrite -z; refactor -z; resub") == (ands, levels)
    assert ands < abc_stats(path)["ands"]  # the recipe did something


def test_run_recipe_per_step(tmp_path: Path) -> None:
    path = _redundant_aig(tmp_path, seed=1)
    steps = run_recipe(path, [2, 0, 6], per_step=True)
    assert len(steps) == 3 and steps[-1] == run_recipe(path, [2, 0, 6])
    assert steps[0] == run_recipe(path, [2])
    assert steps[1] == run_recipe(path, [2, 0])


def test_cec(tmp_path: Path) -> None:
    fa1 = _write(tmp_path, "fa1.aag", FULL_ADDER)
    fa2 = _write(tmp_path, "fa2.aag", FULL_ADDER_2)
    assert abc_cec(fa1, fa2) is True
    assert abc_cec(_write(tmp_path, "and.aag", AND2), _write(tmp_path, "or.aag", OR2)) is False
    assert abc_cec(fa1, _write(tmp_path, "and2.aag", AND2)) is False  # different interfaces


def test_abc_errors_become_tool_errors(tmp_path: Path) -> None:
    fa = _write(tmp_path, "fa.aag", FULL_ADDER)
    with pytest.raises(ToolError, match="unknown command 'nosuchop'"):
        run_recipe(fa, "rewrite; nosuchop")
    bad = tmp_path / "bad.aig"
    bad.write_bytes(b"aig 5 2 0 1 3\n10\n\xff")
    with pytest.raises(ToolError, match=r"bad\.aig: abc: "):
        run_recipe(bad, [2], per_step=True)
    with pytest.raises(FormatError, match="missing"):
        abc_stats(tmp_path / "missing.aig")
    with pytest.raises(FormatError):
        abc_stats(_write(tmp_path, "garbage.aag", "hello\n"))


def test_timeout(tmp_path: Path) -> None:
    path = _redundant_aig(tmp_path, n_and=2000)
    with pytest.raises(ToolError, match="timed out after 0.001 s"):
        run_recipe(path, [4] * 20, timeout=0.001)


def test_missing_abc_binary(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(abc.shutil, "which", lambda name: None)
    with pytest.raises(ToolError, match="apt-get install berkeley-abc"):
        abc_stats(_write(tmp_path, "fa.aag", FULL_ADDER))


def test_label_recipes_matches_run_recipe(tmp_path: Path) -> None:
    designs = [_redundant_aig(tmp_path, 0), tmp_path / "missing.aig", _redundant_aig(tmp_path, 1)]
    recipes = np.array([[2, 6, 0], [1, 3, 5], [6, 6, 4]])
    labels = list(label_recipes(designs, recipes, jobs=2, per_step=True, progress=False, recipes_per_process=2))
    assert sorted((lab.design, lab.recipe) for lab in labels) == [(d, r) for d in range(3) for r in range(3)]
    for lab in labels:
        if lab.design == 1:
            assert isinstance(lab.error, FormatError) and lab.ands == -1
            continue
        assert lab.error is None
        want = run_recipe(designs[lab.design], recipes[lab.recipe], per_step=True)
        assert lab.steps is not None and lab.steps.tolist() == [list(s) for s in want]
        assert (lab.ands, lab.levels) == want[-1]


def test_label_recipes_timeout_is_per_chunk(tmp_path: Path) -> None:
    small = _write(tmp_path, "fa.aag", FULL_ADDER)
    big = _redundant_aig(tmp_path, n_and=3000)
    labels = list(label_recipes([big, small], [[4] * 20], timeout=0.001, progress=False))
    by_design = {lab.design: lab for lab in labels}
    assert isinstance(by_design[0].error, ToolError) and "timed out" in str(by_design[0].error)
    # the small design may also time out at 1 ms on a loaded machine; rerun it alone with time to spare
    (ok,) = label_recipes([small], [[4] * 20], timeout=30, progress=False)
    assert ok.error is None and (ok.ands, ok.levels) == run_recipe(small, [4] * 20)


def test_label_recipes_checks_arguments_eagerly(tmp_path: Path) -> None:
    fa = _write(tmp_path, "fa.aag", FULL_ADDER)
    with pytest.raises(ValueError, match="jobs"):
        label_recipes([fa], [[0]], jobs=0)  # raised at the call, not at the first next()
    with pytest.raises(ValueError, match="outside 0..6"):
        label_recipes([fa], [[9]])
    assert list(label_recipes([fa], [])) == []


def test_run_recipe_takes_op_names_and_abc_commands(tmp_path: Path) -> None:
    path = _redundant_aig(tmp_path, seed=2)
    script = f"read {path}; strash; balance; rewrite; refactor -z; print_stats"
    out = subprocess.run(["berkeley-abc", "-c", script], capture_output=True, text=True, check=True).stdout
    want = tuple(int(x) for x in STATS_RE.findall(out)[-1])
    assert run_recipe(path, ["balance", "rewrite", "refactor -z"]) == want
    assert run_recipe(path, [6, "rewrite", " refactor   -z "]) == want  # ids and names mixed, spacing free
    assert run_recipe(path, np.array([6, 2, 1])) == want
    assert len(run_recipe(path, ["balance", "rewrite"], per_step=True)) == 2


def test_bad_recipe_steps_are_usage_errors(tmp_path: Path) -> None:
    path = _redundant_aig(tmp_path, seed=3)
    with pytest.raises(UsageError, match="expected an op id 0..6, an op name"):
        run_recipe(path, ["balance", 2.5])
    with pytest.raises(UsageError, match="outside 0..6"):
        run_recipe(path, [7])
    with pytest.raises(UsageError, match="jobs must be >= 1"):
        label_recipes([path], [[0]], jobs=0)
