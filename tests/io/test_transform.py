"""Tests of geomask.io.transform: port permutation and full-scan latch cutting, checked by simulation."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from geomask.io.aig import AIG
from geomask.io.transform import cut_latches, permute_ports


def simulate(aig: AIG, inputs: np.ndarray, state: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Reference evaluator: ``inputs [P, I]``, ``state [P, L]`` bool → (outputs ``[P, O]``, next ``[P, L]``)."""
    p = inputs.shape[0]
    val = np.zeros((aig.max_var + 1, p), dtype=bool)
    val[1 : aig.num_inputs + 1] = inputs.T
    if aig.num_latches:
        st = np.zeros((p, aig.num_latches), dtype=bool) if state is None else state
        val[aig.num_inputs + 1 : aig.first_and_var] = st.T

    def lit(x: int) -> np.ndarray:
        return val[x >> 1] ^ bool(x & 1)

    for i, (a, b) in enumerate(aig.ands.tolist()):
        val[aig.first_and_var + i] = lit(a) & lit(b)
    outs = np.stack([lit(x) for x in aig.outputs.tolist()], axis=1) if aig.num_outputs else np.zeros((p, 0), bool)
    nxt = np.stack([lit(x) for x in aig.latches[:, 0].tolist()], axis=1) if aig.num_latches else np.zeros((p, 0), bool)
    return outs, nxt


def all_vectors(n: int) -> np.ndarray:
    return np.array(list(itertools.product([False, True], repeat=n)), dtype=bool).reshape(-1, n)


@pytest.fixture
def small() -> AIG:
    """Three inputs a, b, c; outputs a&!b, !(b&c), c, 1; one latch (next = a ^ latch)."""
    # vars: 1 a, 2 b, 3 c, 4 latch; ANDs 5 = a&!b, 6 = b&c, 7 = a&!l, 8 = !a&l, 9 = !7&!8 (XNOR)
    return AIG(
        num_inputs=3,
        ands=[[2, 5], [4, 6], [2, 9], [3, 8], [15, 17]],
        outputs=[10, 13, 6, 1],
        latches=[[19, 0]],
        input_names=["a", "b", "c"],
        latch_names=["q"],
        output_names=["y0", "y1", "y2", "one"],
        bad=[4],
    )


def test_permute_inputs_relabels_and_keeps_function(small: AIG) -> None:
    order = [2, 0, 1]  # new inputs: c, a, b
    new = permute_ports(small, input_order=order)
    assert new.input_names == ["c", "a", "b"]
    x = all_vectors(3)
    for st in (False, True):
        state = np.full((x.shape[0], 1), st)
        want_out, want_next = simulate(small, x, state)
        got_out, got_next = simulate(new, x[:, order], state)
        np.testing.assert_array_equal(got_out, want_out)
        np.testing.assert_array_equal(got_next, want_next)
    # input variable 1 is now c: an AND reading old var 3 (c) reads var 1
    assert new.ands[1].tolist() == [6, 2]
    assert new.bad.tolist() == [6]  # bad literal 4 (b, var 2) now reads var 3
    assert small.input_names == ["a", "b", "c"]  # the argument is not modified


def test_permute_outputs(small: AIG) -> None:
    new = permute_ports(small, output_order=[3, 0, 2, 1])
    assert new.outputs.tolist() == [1, 10, 6, 13]
    assert new.output_names == ["one", "y0", "y2", "y1"]
    assert new.num_inputs == small.num_inputs and np.array_equal(new.ands, small.ands)


def test_permute_identity_and_inverse(small: AIG) -> None:
    assert permute_ports(small) == small
    order = np.array([1, 2, 0])
    inverse = np.argsort(order)
    back = permute_ports(permute_ports(small, order, [1, 0, 3, 2]), inverse, [1, 0, 3, 2])
    assert back == small


@pytest.mark.parametrize("order", [[0, 1], [0, 1, 1], [0, 1, 3], [[0, 1, 2]] * 2])
def test_permute_rejects_non_permutations(small: AIG, order: list) -> None:
    with pytest.raises(ValueError, match="permutation"):
        permute_ports(small, input_order=order)


def test_cut_latches_exposes_state(small: AIG) -> None:
    cut = cut_latches(small)
    assert (cut.num_inputs, cut.num_latches, cut.num_outputs) == (4, 0, 5)
    assert cut.input_names == ["a", "b", "c", "q"]
    assert cut.output_names == ["y0", "y1", "y2", "one", "q_next"]
    x = all_vectors(4)
    got, _ = simulate(cut, x)
    want_out, want_next = simulate(small, x[:, :3], x[:, 3:])
    np.testing.assert_array_equal(got[:, :4], want_out)
    np.testing.assert_array_equal(got[:, 4:], want_next)
    # next state of q is a XOR q
    np.testing.assert_array_equal(got[:, 4], x[:, 0] ^ x[:, 3])


def test_cut_latches_unnamed_and_combinational() -> None:
    aig = AIG(num_inputs=1, ands=np.zeros((0, 2)), outputs=[3], latches=[[2, 0], [4, 1]])
    cut = cut_latches(aig)
    assert cut.outputs.tolist() == [3, 2, 4]
    assert cut.input_names == ["", "", ""] and cut.output_names == ["", "", ""]
    comb = AIG(num_inputs=2, ands=[[2, 4]], outputs=[6])
    assert cut_latches(comb) == comb
