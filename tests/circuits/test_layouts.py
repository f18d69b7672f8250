"""OpenABC-D and DeepGate layouts: conventions and round trips."""

from __future__ import annotations

import numpy as np
import torch

from geomask.circuits import from_deepgate, from_openabc, to_deepgate, to_openabc
from geomask.io.aig import AIG

# y0 = a & !b ; y1 = !(a & !b) & c ; y2 = TRUE
AIG3 = AIG(num_inputs=3, ands=[[2, 5], [9, 6]], outputs=[8, 10, 1])


def test_openabc_conventions():
    d = to_openabc(AIG3)
    # nodes: 3 PI, 2 AND, CONST, 3 PO; node_type 0 PI (const too), 1 PO, 2 AND
    assert d.node_type.tolist() == [0, 0, 0, 2, 2, 0, 1, 1, 1]
    assert bool(d.is_const[5]) and int(d.is_const.sum()) == 1
    # gate -> fanin: the first AND (node 3) points at a (0) plainly and at b (1) through NOT
    edges = {(int(s), int(t)): int(e) for (s, t), e in zip(d.edge_index.t().tolist(), d.edge_type)}
    assert edges[(3, 0)] == 0 and edges[(3, 1)] == 1
    assert edges[(4, 3)] == 1 and edges[(4, 2)] == 0
    assert edges[(8, 5)] == 1  # TRUE output = NOT const
    assert d.num_inverted_predecessors.tolist()[:5] == [0, 0, 0, 1, 1]


def test_deepgate_conventions():
    d = to_deepgate(AIG3)
    assert d.x.shape[1] == 3 and torch.equal(d.x.argmax(1), d.gate)
    # PI a,b,c; AND 2; CONST (as PI); NOT b, NOT and0, NOT const (shared: one per source)
    assert d.gate.tolist() == [0, 0, 0, 1, 1, 0, 2, 2, 2]
    assert d.forward_level.tolist()[:5] == [0, 0, 0, 2, 4]
    # outputs: and0 (3), and1 (4), NOT const
    assert d.po_index.tolist()[:2] == [3, 4]
    assert int(d.gate[d.po_index[2]]) == 2


def test_round_trips_on_random_aigs():
    rng = np.random.default_rng(0)
    for seed in range(5):
        n_in, n_and = 4, 30
        ands = np.array([rng.integers(0, 2 * (n_in + 1 + i), size=2) for i in range(n_and)])
        aig = AIG(num_inputs=n_in, ands=ands, outputs=rng.integers(0, 2 * (n_in + n_and) + 2, size=3))
        assert from_openabc(to_openabc(aig)).same_structure(aig), seed
        assert from_deepgate(to_deepgate(aig)).same_structure(aig), seed
