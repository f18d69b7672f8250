"""AIGER reader/writer: round trips, ABC agreement, canonical renumbering, and every malformed-input error."""

from __future__ import annotations

import re
import shutil
import subprocess

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from geomask.errors import FormatError
from geomask.io.aig import AIG
from geomask.io.aiger import aiger_bytes, read_aiger, read_aiger_bytes, write_aiger

# A half adder with a latch, bad/constraint sections, symbols and comments, written by hand (canonical).
HALF_ADDER = b"""aag 6 2 1 2 3 1 1
2
4
6 13 1
12
9
13
6
8 2 4
10 3 5
12 11 9
i0 a
i1 b
l0 r
o0 sum
o1 carry
b0 never
c0 always
c
made by hand
"""


def random_aig(rng: np.random.Generator, n_in: int, n_and: int, n_out: int, n_latch: int = 0) -> AIG:
    ands = np.zeros((n_and, 2), dtype=np.int64)
    first = n_in + n_latch + 1
    for i in range(n_and):  # test helper, tiny sizes
        v = first + i
        ands[i] = rng.integers(0, 2 * v, size=2)
    m = n_in + n_latch + n_and
    outs = rng.integers(0, 2 * m + 2, size=n_out)
    latches = np.stack([rng.integers(0, 2 * m + 2, size=n_latch), np.zeros(n_latch, dtype=np.int64)], 1)
    return AIG(num_inputs=n_in, ands=ands, outputs=outs, latches=latches)


def binary_order(aig: AIG) -> AIG:
    """The same AIG with each AND's fanins stored larger first, as binary AIGER requires."""
    out = AIG(**{k: getattr(aig, k) for k in aig.__dataclass_fields__})
    out.ands = np.sort(aig.ands, axis=1)[:, ::-1].copy()
    return out


def test_ascii_sections_and_symbols():
    aig = read_aiger_bytes(HALF_ADDER, "ha.aag")
    assert (aig.num_inputs, aig.num_latches, aig.num_outputs, aig.num_ands) == (2, 1, 2, 3)
    assert aig.latches.tolist() == [[13, 1]]
    assert aig.ands.tolist() == [[2, 4], [3, 5], [11, 9]]
    assert aig.bad.tolist() == [13] and aig.constraints.tolist() == [6]
    assert aig.input_names == ["a", "b"] and aig.output_names == ["sum", "carry"]
    assert aig.latch_names == ["r"] and aig.bad_names == ["never"] and aig.constraint_names == ["always"]
    assert aig.comments == ["made by hand"]
    assert aiger_bytes(aig, binary=False) == HALF_ADDER


def test_binary_ascii_round_trip(tmp_path):
    aig = read_aiger_bytes(HALF_ADDER, "ha.aag")
    write_aiger(aig, tmp_path / "ha.aig")
    back = read_aiger(tmp_path / "ha.aig")
    assert back == binary_order(aig)
    assert (tmp_path / "ha.aig").read_bytes().startswith(b"aig 6 2 1 2 3 1 1\n")
    write_aiger(back, tmp_path / "ha2.aag")
    assert read_aiger(tmp_path / "ha2.aag") == back


def test_ascii_any_order_is_renumbered_topologically():
    # ANDs listed consumer-first and inputs with non-consecutive literals.
    text = b"aag 9 2 0 1 2\n10\n4\n18\n18 16 5\n16 10 4\n"
    aig = read_aiger_bytes(text, "x.aag")
    # input 10 -> var 1 (lit 2), input 4 -> var 2 (lit 4); AND 16 -> var 3 (lit 6); AND 18 -> var 4 (lit 8)
    assert aig.ands.tolist() == [[2, 4], [6, 5]]
    assert aig.outputs.tolist() == [8]
    assert aig.max_var == 4


@pytest.mark.parametrize("binary", [True, False])
def test_random_round_trip(binary):
    rng = np.random.default_rng(0)
    for _ in range(20):
        aig = random_aig(rng, int(rng.integers(0, 6)), int(rng.integers(0, 40)), int(rng.integers(0, 5)), 2)
        back = read_aiger_bytes(aiger_bytes(aig, binary=binary))
        assert back.same_structure(binary_order(aig) if binary else aig)


def test_large_deltas_round_trip():
    # Varints of several bytes: an AND far from its fanins.
    n_in = 300_000
    aig = AIG(num_inputs=n_in, ands=[[2, 4], [2 * n_in, 3]], outputs=[2 * n_in + 4])
    assert read_aiger_bytes(aiger_bytes(aig)).same_structure(binary_order(aig))


BAD_CASES = [
    (b"", "empty file"),
    (b"\x00\xff\x13garbage", "not an AIGER file"),
    (b"aag 3 2 0 1 1\n2\n4\n6\n6 2", "AND section"),
    (b"aag 3 2 0 1 1\n2\n4\n6\n", "truncated"),
    (b"aag 3 2 0 1\n", "header has 4 numbers"),
    (b"aag 3 2 0 1 1\n2\n4\n9\n6 2 4\n", "exceeds 2*M+1"),
    (b"aag 3 2 0 1 1\n2\n4\n6\n6 2 40\n", "exceeds 2*M+1"),
    (b"aag 4 2 0 1 2\n2\n4\n6\n6 2 4\n6 2 5\n", "defined twice"),
    (b"aag 4 2 0 1 2\n2\n4\n8\n6 8 4\n8 6 2\n", "combinational cycle"),
    (b"aag 3 2 0 1 1\n2\n4\n6\n6 2 7\n", "combinational cycle"),
    (b"aag 4 2 0 1 1\n2\n4\n6\n6 2 8\n", "never defined"),
    (b"aag 3 2 0 1 1\n2\n3\n6\n6 2 4\n", "negated"),
    (b"aag 3 2 0 1 1\n2\n4\n6\n6 2 x4\n", "expected an unsigned integer"),
    (b"aig 3 2 0 1 2\n6\n\x02", "M = I + L + A"),
    (b"aig 3 2 0 1 1\n6\n", "truncated"),
    (b"aig 3 2 0 1 1\n6\n\x00\x01", "delta out of range"),
    (b"aig 3 2 0 1 1\n6\n\x02\x09", "delta out of range"),
    (b"aig 3 2 0 1 1\n6\n\x82\x82\x82\x82\x82\x82\x82\x82\x82\x82\x01\x00", "too long"),
]


@pytest.mark.parametrize("data,message", BAD_CASES)
def test_bad_input_names_file_and_problem(data, message):
    with pytest.raises(FormatError) as e:
        read_aiger_bytes(data, "bad.aig")
    text = str(e.value)
    assert text.startswith("bad.aig"), text
    assert message in text, text
    assert "\n" not in text


def test_missing_file(tmp_path):
    with pytest.raises(FormatError, match="cannot read"):
        read_aiger(tmp_path / "nope.aig")


def test_error_carries_line_number():
    with pytest.raises(FormatError) as e:
        read_aiger_bytes(b"aag 4 2 0 1 2\n2\n4\n6\n6 2 4\n6 2 5\n", "d.aag")
    assert e.value.line == 6


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_fuzz_mutated_files_raise_only_format_error(data):
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    base = aiger_bytes(random_aig(rng, 3, 12, 2, 1), binary=data.draw(st.booleans()))
    buf = bytearray(base)
    for _ in range(data.draw(st.integers(1, 6))):
        op = data.draw(st.sampled_from(["flip", "cut", "insert", "delete"]))
        pos = data.draw(st.integers(0, max(len(buf) - 1, 0)))
        if op == "flip" and buf:
            buf[pos] = data.draw(st.integers(0, 255))
        elif op == "cut":
            del buf[pos:]
        elif op == "insert":
            buf[pos:pos] = data.draw(st.binary(min_size=1, max_size=4))
        elif buf:
            del buf[pos]
    try:
        aig = read_aiger_bytes(bytes(buf), "fuzz.aig")
    except FormatError as e:
        assert str(e).startswith("fuzz.aig")
        return
    # Whatever parses is a valid canonical AIG: writable and re-readable to the same structure.
    assert read_aiger_bytes(aiger_bytes(aig)).same_structure(binary_order(aig))


@pytest.mark.skipif(shutil.which("berkeley-abc") is None, reason="berkeley-abc not installed")
def test_abc_reads_what_we_write(tmp_path):
    rng = np.random.default_rng(3)
    aig = random_aig(rng, 5, 60, 4)
    for name in ("r.aig",):  # ABC reads binary AIGER only
        write_aiger(aig, tmp_path / name)
        out = subprocess.run(
            ["berkeley-abc", "-c", f"read_aiger {tmp_path / name}; print_stats"],
            capture_output=True,
            text=True,
            timeout=60,
        ).stdout
        m = re.search(r"i/o =\s*(\d+)/\s*(\d+)", out)
        assert m and (int(m[1]), int(m[2])) == (5, 4), out


def test_epfl_counts_equal_abc(shared_data):
    if shutil.which("berkeley-abc") is None:
        pytest.skip("berkeley-abc not installed")
    files = sorted((shared_data / "circuits" / "epfl").glob("*.aig"))
    assert len(files) == 20
    for f in files:
        aig = read_aiger(f)
        out = subprocess.run(["berkeley-abc", "-c", f"read {f}; print_stats"], capture_output=True, text=True).stdout
        m = re.search(r"i/o =\s*(\d+)/\s*(\d+)\s+lat =\s*(\d+)\s+and =\s*(\d+)", out)
        assert m, out
        assert (aig.num_inputs, aig.num_outputs, aig.num_latches, aig.num_ands) == tuple(map(int, m.groups())), f
        assert aiger_bytes(aig) == f.read_bytes(), f"{f.name}: write(read(f)) differs"


REAL_FUZZ = ["ctrl.aig", "int2float.aig", "router.aig"]


@pytest.mark.parametrize("name", REAL_FUZZ)
def test_fuzz_mutated_real_files(shared_data, name):
    """Random byte flips, cuts and insertions in real EPFL files: only FormatError escapes, nothing hangs."""
    base = (shared_data / "circuits" / "epfl" / name).read_bytes()
    rng = np.random.default_rng(len(base))
    n_err = 0
    for _ in range(300):
        buf = bytearray(base)
        for _ in range(int(rng.integers(1, 4))):
            pos = int(rng.integers(0, len(buf)))
            op = rng.integers(0, 3)
            if op == 0:
                buf[pos] = int(rng.integers(0, 256))
            elif op == 1:
                del buf[pos:]
            else:
                buf[pos:pos] = rng.bytes(int(rng.integers(1, 4)))
            if not buf:
                break
        try:
            read_aiger_bytes(bytes(buf), name)
        except FormatError as e:
            assert str(e).startswith(name)
            n_err += 1
    assert n_err > 0  # the mutations do break files
