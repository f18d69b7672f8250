"""Tests of geomask.io.bench: .bench netlists → AIG, checked against an independent gate interpreter."""

from __future__ import annotations

import itertools
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from geomask.errors import FormatError
from geomask.io.aig import AIG
from geomask.io.bench import parse_bench, read_bench

C17 = """\
# c17 iscas example, gates out of order
INPUT(G1)
INPUT(G2)
INPUT(G3)
INPUT(G6)
INPUT(G7)
OUTPUT(G22)
OUTPUT(G23)
G22 = NAND(G10, G16)
G23 = NAND(G16, G19)   # trailing comment
G10 = NAND(G1, G3)
G11 = NAND(G3, G6)
G16 = NAND(G2, G11)
G19 = NAND(G11, G7)
"""

GATES = {
    "AND": all,
    "NAND": lambda v: not all(v),
    "OR": any,
    "NOR": lambda v: not any(v),
    "XOR": lambda v: sum(v) % 2 == 1,
    "XNOR": lambda v: sum(v) % 2 == 0,
    "NOT": lambda v: not v[0],
    "BUF": lambda v: v[0],
    "BUFF": lambda v: v[0],
}


def interpret(text: str, inputs: dict[str, bool], state: dict[str, bool]) -> dict[str, bool]:
    """Independent reference: evaluate every signal of a combinational/.bench netlist by recursion."""
    defs = {}
    for raw in text.splitlines():
        line = raw.split("#")[0].strip()
        if "=" in line:
            lhs, rhs = (s.strip() for s in line.split("="))
            op, args = rhs.split("(")
            defs[lhs] = (op.strip().upper(), [a.strip() for a in args.rstrip(")").split(",") if a.strip()])
    memo: dict[str, bool] = {"vdd": True, "gnd": False}

    def value(sig: str) -> bool:
        if sig in inputs:
            return inputs[sig]
        if sig not in memo:
            op, args = defs[sig]
            memo[sig] = state[sig] if op == "DFF" else bool(GATES[op]([value(a) for a in args]))
        return memo[sig]

    return (
        dict(inputs)
        | {sig: value(sig) for sig in defs}
        | {f"{s}@next": value(defs[s][1][0]) for s in defs if defs[s][0] == "DFF"}
    )


def simulate(aig: AIG, x: np.ndarray, state: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Tiny AIG evaluator: ``x [P, I]``, ``state [P, L]`` → (outputs ``[P, O]``, next state ``[P, L]``)."""
    val = np.zeros((aig.max_var + 1, x.shape[0]), dtype=bool)
    val[1 : aig.num_inputs + 1] = x.T
    val[aig.num_inputs + 1 : aig.first_and_var] = state.T
    for i, (a, b) in enumerate(aig.ands.tolist()):
        val[aig.first_and_var + i] = (val[a >> 1] ^ bool(a & 1)) & (val[b >> 1] ^ bool(b & 1))

    def lits(ls: np.ndarray) -> np.ndarray:
        return (val[ls >> 1] ^ (ls & 1).astype(bool)[:, None]).T

    return lits(aig.outputs), lits(aig.latches[:, 0])


def check_against_interpreter(text: str, aig: AIG) -> None:
    i, lat = aig.num_inputs, aig.num_latches
    vecs = np.array(list(itertools.product([False, True], repeat=i + lat)), dtype=bool).reshape(-1, i + lat)
    outs, nxt = simulate(aig, vecs[:, :i], vecs[:, i:])
    for row, x in enumerate(vecs.tolist()):
        ref = interpret(text, dict(zip(aig.input_names, x[:i])), dict(zip(aig.latch_names, x[i:])))
        assert outs[row].tolist() == [ref[n] for n in aig.output_names], (row, x)
        assert nxt[row].tolist() == [ref[f"{n}@next"] for n in aig.latch_names], (row, x)


def test_c17(tmp_path: Path) -> None:
    f = tmp_path / "c17.bench"
    f.write_text(C17)
    aig = read_bench(f)
    assert (aig.num_inputs, aig.num_outputs, aig.num_latches, aig.num_ands) == (5, 2, 0, 6)
    assert aig.input_names == ["G1", "G2", "G3", "G6", "G7"]
    assert aig.output_names == ["G22", "G23"]
    assert aig.name == "c17"
    fan = aig.ands >> 1
    assert np.all(fan < np.arange(aig.first_and_var, aig.max_var + 1)[:, None])  # topologically sorted
    check_against_interpreter(C17, aig)


ALL_GATES = """\
INPUT(a)
INPUT(b)
INPUT(c)
INPUT(d)
OUTPUT(o_and)
OUTPUT(o_nand)
OUTPUT(o_or)
OUTPUT(o_nor)
OUTPUT(o_xor)
OUTPUT(o_xnor)
OUTPUT(o_not)
OUTPUT(o_buf)
OUTPUT(q)
OUTPUT(o_const)
OUTPUT(a)
o_and = and(a, b, c, d)
o_nand = NAND(a, b, c)
o_or = OR(a, b, c, d)
o_nor = NOR(b, d)
o_xor = XOR(a, b, c)
o_xnor = XNOR(a, b, c, d)
o_not = NOT(o_buf)
o_buf = BUFF(t)
t = BUF(q)
q = DFF(n)
n = XOR(q, a)
o_const = AND(vdd, b)
"""


def test_all_gate_types_and_latches() -> None:
    aig = parse_bench(ALL_GATES)
    assert aig.num_inputs == 4 and aig.num_latches == 1 and aig.num_outputs == 11
    assert aig.latch_names == ["q"] and aig.latches[0, 1] == 0  # DFF resets to 0
    assert aig.outputs[-1] == 2  # OUTPUT(a) is input a's literal
    check_against_interpreter(ALL_GATES, aig)


def test_constants_and_single_input_gates() -> None:
    text = "INPUT(a)\nOUTPUT(x)\nOUTPUT(y)\nOUTPUT(z)\nOUTPUT(w)\nx = GND()\ny = vdd\nz = NOR(a)\nw = AND(a, gnd)\n"
    aig = parse_bench(text)
    out = simulate(aig, np.array([[False], [True]]), np.zeros((2, 0), bool))[0]
    assert out.tolist() == [[False, True, True, False], [False, True, False, False]]


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ("INPUT(a)\nOUTPUT(y)\ny = AND(a, b)\n", 3, "undefined signal 'b'"),
        ("INPUT(a)\nOUTPUT(y)\ny = NOT(a)\ny = BUF(a)\n", 4, "defined twice"),
        ("INPUT(a)\nINPUT(a)\n", 2, "defined twice"),
        ("INPUT(a)\nOUTPUT(y)\ny = MAJ(a, a, a)\n", 3, "unknown gate 'MAJ'"),
        ("INPUT(a)\nOUTPUT(y)\ny = NOT(a, a)\n", 3, "NOT takes 1"),
        ("INPUT(a)\nOUTPUT(y)\ny = AND()\n", 3, "AND takes at least 1"),
        ("INPUT(a)\nOUTPUT(y)\ny = AND(a, z)\nz = OR(y, a)\n", None, "combinational cycle"),
        ("INPUT(a)\nOUTPUT(y)\nthis is garbage\n", 3, "cannot parse"),
        ("INPUT(a)\nOUTPUT(y)\ny = AND(a,, a)\n", 3, "bad gate inputs"),
        ("INPUT(a)\nOUTPUT(y)\n", 2, "undefined signal 'y'"),
        ("# only a comment\n\n", None, "empty netlist"),
    ],
)
def test_errors_name_the_line(text: str, line: int | None, words: str) -> None:
    with pytest.raises(FormatError, match=words) as info:
        parse_bench(text, "bad.bench")
    assert info.value.path == "bad.bench"
    if line is not None:
        assert info.value.line == line
    if "cycle" in words:
        assert info.value.line in (3, 4)
    assert "\n" not in str(info.value)


def test_dff_breaks_cycles_and_binary_garbage(tmp_path: Path) -> None:
    aig = parse_bench("INPUT(a)\nOUTPUT(q)\nq = DFF(n)\nn = AND(q, a)\n")
    assert aig.num_latches == 1 and aig.num_ands == 1
    f = tmp_path / "x.bench"
    f.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(FormatError, match="not a text file"):
        read_bench(f)


def random_bench(rng: np.random.Generator, n_in: int, n_gates: int, max_xor: int = 4) -> str:
    ops = ["AND", "NAND", "OR", "NOR", "XOR", "XNOR", "NOT", "BUFF"]
    lines = [f"INPUT(i{k})" for k in range(n_in)]
    sigs = [f"i{k}" for k in range(n_in)]
    body = []
    for g in range(n_gates):
        op = ops[rng.integers(len(ops))]
        k = 1 if op in ("NOT", "BUFF") else int(rng.integers(2, (max_xor if "XOR" in op or "XNOR" in op else 4) + 1))
        args = [sigs[j] for j in rng.integers(0, len(sigs), size=k)]
        body.append(f"g{g} = {op}({', '.join(args)})")
        sigs.append(f"g{g}")
    rng.shuffle(body)  # definitions in any order
    lines += [f"OUTPUT(g{g})" for g in range(n_gates - 8, n_gates)]
    return "\n".join(lines + body) + "\n"


def test_random_netlists_against_interpreter() -> None:
    rng = np.random.default_rng(7)
    for _ in range(3):
        text = random_bench(rng, 6, 40)
        check_against_interpreter(text, parse_bench(text))


@pytest.mark.skipif(shutil.which("berkeley-abc") is None, reason="berkeley-abc not installed")
def test_equivalent_to_abc_read_bench(tmp_path: Path) -> None:
    from geomask.io.aiger import write_aiger

    text = random_bench(np.random.default_rng(3), 12, 300, max_xor=2)  # ABC's read_bench: 2-input XOR only
    (tmp_path / "r.bench").write_text(text)
    write_aiger(parse_bench(text), tmp_path / "ours.aig")
    proc = subprocess.run(
        ["berkeley-abc", "-c", "read_bench r.bench; strash; &get; &cec ours.aig"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "Networks are equivalent" in proc.stdout, proc.stdout
