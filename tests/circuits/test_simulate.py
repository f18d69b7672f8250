from __future__ import annotations

import numpy as np
import pytest

from geomask.circuits.simulate import equivalence_candidates, random_patterns, signal_probability, simulate
from geomask.io.aig import AIG


def _random_aig(rng: np.random.Generator, n_in: int, n_latch: int, n_and: int) -> AIG:
    first = n_in + n_latch + 1
    ands = np.zeros((n_and, 2), dtype=np.int64)
    for i in range(n_and):
        ands[i] = 2 * rng.integers(0, first + i, size=2) + rng.integers(0, 2, size=2)
    max_lit = 2 * (first + n_and)
    latches = np.stack([rng.integers(0, max_lit, size=n_latch), np.zeros(n_latch, dtype=np.int64)], axis=1)
    return AIG(n_in, ands, outputs=rng.integers(0, max_lit, size=3), latches=latches)


def _naive_eval(aig: AIG, sources: list[int]) -> list[int]:
    """Value (0/1) of every variable for one assignment of the inputs and latches, one gate at a time."""
    val = [0] + list(sources)
    for a, b in aig.ands.tolist():
        va = val[a >> 1] ^ (a & 1)
        vb = val[b >> 1] ^ (b & 1)
        val.append(va & vb)
    return val


def _pack(bits: np.ndarray) -> np.ndarray:
    """[S, P] 0/1 -> [S, ceil(P/64)] uint64, pattern p in bit p % 64 of word p // 64."""
    words = -(-bits.shape[1] // 64)
    padded = np.zeros((bits.shape[0], 64 * words), dtype=np.uint64)
    padded[:, : bits.shape[1]] = bits
    shifts = np.arange(64, dtype=np.uint64)
    return (padded.reshape(bits.shape[0], words, 64) << shifts).sum(axis=2, dtype=np.uint64)


def _bit(values: np.ndarray, var: int, p: int) -> int:
    return int((int(values[var, p // 64]) >> (p % 64)) & 1)


# AND gate, and XOR built from three ANDs: x = !( !(a & !b) & !(!a & b) ).
AND2 = AIG(2, [[2, 4]], outputs=[6])
XOR2 = AIG(2, [[2, 5], [3, 4], [7, 9]], outputs=[11])


def test_exhaustive_probability_of_and_and_xor() -> None:
    assert signal_probability(AND2).tolist() == [0.0, 0.5, 0.5, 0.25]
    p = signal_probability(XOR2)
    # var 5 = !(a^b) is the NOR of the two minterms: 1 - 0.5
    assert p.tolist() == [0.0, 0.5, 0.5, 0.25, 0.25, 0.5]


def test_exhaustive_probability_matches_truth_table() -> None:
    rng = np.random.default_rng(3)
    for n_in, n_latch in ((1, 0), (3, 1), (4, 2), (7, 0)):
        aig = _random_aig(rng, n_in, n_latch, 40)
        n = n_in + n_latch
        table = np.array([_naive_eval(aig, [(p >> j) & 1 for j in range(n)]) for p in range(2**n)])
        np.testing.assert_allclose(signal_probability(aig), table.mean(axis=0), rtol=0, atol=1e-12)


def test_random_probability_is_seeded_and_close() -> None:
    p1 = signal_probability(XOR2, num_patterns=20000, exhaustive_limit=0, seed=1)
    p2 = signal_probability(XOR2, num_patterns=20000, exhaustive_limit=0, seed=np.random.default_rng(1))
    p3 = signal_probability(XOR2, num_patterns=20000, exhaustive_limit=0, seed=2)
    np.testing.assert_array_equal(p1, p2)
    assert not np.array_equal(p1, p3)
    np.testing.assert_allclose(p1, [0, 0.5, 0.5, 0.25, 0.25, 0.5], atol=0.02)
    # the block size changes memory, not the answer; 20000 is not a multiple of 64 (tail masked)
    p4 = signal_probability(XOR2, num_patterns=20000, exhaustive_limit=0, seed=1, chunk_words=7)
    np.testing.assert_array_equal(p1, p4)


def test_simulate_matches_naive_evaluator() -> None:
    rng = np.random.default_rng(0)
    for trial in range(5):
        aig = _random_aig(rng, int(rng.integers(1, 6)), int(rng.integers(0, 3)), int(rng.integers(0, 60)))
        n = aig.num_inputs + aig.num_latches
        n_pat = 150
        bits = rng.integers(0, 2, size=(n, n_pat)).astype(np.uint64)
        values = simulate(aig, _pack(bits))
        assert values.shape == (aig.max_var + 1, 3) and values.dtype == np.uint64
        assert not values[0].any()
        for p in range(n_pat):
            ref = _naive_eval(aig, bits[:, p].tolist())
            got = [_bit(values, v, p) for v in range(aig.max_var + 1)]
            assert got == ref, (trial, p)


def test_simulate_rejects_bad_patterns() -> None:
    with pytest.raises(ValueError, match="I\\+L=2"):
        simulate(AND2, np.zeros((3, 1), dtype=np.uint64))
    with pytest.raises(ValueError, match="uint64"):
        simulate(AND2, np.zeros((2, 1), dtype=np.int64))


def test_random_patterns_shape_and_seed() -> None:
    a = random_patterns(5, 130, seed=4)
    assert a.shape == (5, 3) and a.dtype == np.uint64
    np.testing.assert_array_equal(a, random_patterns(5, 130, seed=4))
    assert not np.array_equal(a, random_patterns(5, 130, seed=5))


def _duplicates_aig() -> AIG:
    # inputs a=1 b=2 c=3
    ands = [
        [2, 4],  # 4: a & b
        [4, 2],  # 5: b & a          == 4
        [2, 5],  # 6: a & !b
        [3, 4],  # 7: !a & b
        [13, 15],  # 8: !(a&!b) & !(!a&b) = XNOR(a, b)
        [8, 10],  # 9: a & b (from 4, 5) == 4
        [3, 5],  # 10: !a & !b
        [9, 21],  # 11: !(a&b) & !(!a&!b) = XOR(a, b) == !8
        [2, 3],  # 12: a & !a        == constant 0
        [25, 25],  # 13: !12 & !12   == constant 1
        [6, 8],  # 14: c & a & b     (distinct)
        [29, 6],  # 15: !14 & c      (distinct)
    ]
    return AIG(3, ands, outputs=[28, 30])


def test_equivalence_candidates_find_duplicates() -> None:
    pairs, comp = equivalence_candidates(_duplicates_aig(), num_patterns=64)  # 8 patterns: exhaustive
    got = {(int(a), int(b), bool(c)) for (a, b), c in zip(pairs, comp)}
    assert got == {(0, 12, False), (0, 13, True), (4, 5, False), (4, 9, False), (8, 11, True)}
    assert pairs.dtype == np.int64 and comp.dtype == bool
    assert (pairs[:, 0] < pairs[:, 1]).all()
    assert np.array_equal(pairs, pairs[np.lexsort((pairs[:, 1], pairs[:, 0]))])


def test_equivalence_candidates_random_patterns() -> None:
    aig = _duplicates_aig()
    # 40 random inputs make the simulation non-exhaustive; the duplicate block is unchanged
    wide = AIG(40, np.where(aig.ands > 1, aig.ands + 2 * 37, aig.ands), outputs=[0])
    pairs, comp = equivalence_candidates(wide, num_patterns=1000, seed=3)
    got = {(int(a), int(b), bool(c)) for (a, b), c in zip(pairs, comp)}
    shift = 37
    want = {(0, 12 + shift, False), (0, 13 + shift, True), (4 + shift, 5 + shift, False)}
    want |= {(4 + shift, 9 + shift, False), (8 + shift, 11 + shift, True)}
    assert got == want


def test_equivalence_candidates_bounded_pairs() -> None:
    # 200 copies of the same AND: one class, 199 pairs to the representative (not 199*200/2)
    aig = AIG(2, [[2, 4]] * 200, outputs=[6])
    pairs, comp = equivalence_candidates(aig, num_patterns=256)
    assert pairs.shape == (199, 2) and not comp.any()
    assert (pairs[:, 0] == 3).all() and pairs[:, 1].tolist() == list(range(4, 203))
