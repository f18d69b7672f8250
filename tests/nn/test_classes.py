"""Cone classes: nodes of one class get equal DeepGCN states, and the class-wise run equals the per-node run."""

from __future__ import annotations

import numpy as np
import torch

from geomask.circuits import aig_to_graph
from geomask.io.aig import AIG
from geomask.nn.aggregation import build_neighbors
from geomask.nn.classes import cone_classes, prune_classes
from geomask.nn.deepgcn import DeepGCN


def adder_like() -> AIG:
    """A ripple of identical cells: many nodes share their fan-in cone structure."""
    ni, cells = 8, 4
    ands, outs = [], []
    for k in range(cells):
        a, b = 2 * (2 * k + 1), 2 * (2 * k + 2)
        v = ni + 1 + len(ands)
        ands += [[a, b], [a ^ 1, b ^ 1], [2 * v + 1, 2 * (v + 1) + 1]]
        outs.append(2 * (v + 2))
    return AIG(num_inputs=ni, ands=np.array(ands, dtype=np.int64), outputs=np.array(outs, dtype=np.int64))


def test_class_members_have_equal_states_and_classes_are_fewer():
    g = aig_to_graph(adder_like(), "per_edge")
    n = g.num_nodes
    nb = build_neighbors(g.edge_index, n)
    levels = cone_classes(g.node_type, 5, nb, 3)
    assert levels[-1].num_classes < n / 3
    torch.manual_seed(0)
    enc = DeepGCN(8, layers=3).double()
    emb = torch.randn(5, 8, dtype=torch.float64)
    per_node = enc(emb[g.node_type], g.edge_index)
    # members of a class are equal; different classes may or may not differ, members must
    inv = levels[-1].inverse
    for c in range(levels[-1].num_classes):
        rows = per_node[inv == c]
        torch.testing.assert_close(rows, rows[:1].expand_as(rows))
    x = enc.forward_classes(emb, levels)
    torch.testing.assert_close(x[inv], per_node)


def test_class_run_gradients_equal_per_node_gradients():
    rng = np.random.default_rng(0)
    na, ni = 40, 6
    var = np.arange(na) + ni + 1
    ands = np.stack([2 * rng.integers(1, var), 2 * rng.integers(1, var) + 1], 1).astype(np.int64)
    g = aig_to_graph(AIG(num_inputs=ni, ands=ands, outputs=np.array([2 * (ni + na)], dtype=np.int64)), "per_edge")
    color = torch.as_tensor(rng.integers(0, 7, g.num_nodes))
    enc = DeepGCN(8, layers=2).double()
    emb = torch.randn(7, 8, dtype=torch.float64, requires_grad=True)
    w = torch.randn(g.num_nodes, 8, dtype=torch.float64)
    (enc(emb[color], g.edge_index) * w).sum().backward()
    want = [emb.grad.clone()] + [p.grad.clone() for p in enc.parameters()]
    emb.grad = None
    enc.zero_grad()
    levels = cone_classes(color, 7, build_neighbors(g.edge_index, g.num_nodes), 2)
    (enc.forward_classes(emb, levels)[levels[-1].inverse] * w).sum().backward()
    got = [emb.grad] + [p.grad for p in enc.parameters()]
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b)


def test_pruned_classes_give_the_needed_outputs_and_gradients_with_fewer_rows():
    """Dropping classes that no needed node reads keeps the needed nodes' outputs and every gradient."""
    rng = np.random.default_rng(1)
    na, ni = 120, 8
    var = np.arange(na) + ni + 1
    ands = np.stack([2 * rng.integers(1, var), 2 * rng.integers(1, var) + 1], 1).astype(np.int64)
    g = aig_to_graph(AIG(num_inputs=ni, ands=ands, outputs=np.array([2 * (ni + na)], dtype=np.int64)), "per_edge")
    n = g.num_nodes
    color = torch.as_tensor(rng.integers(0, 7, n))
    needed = torch.as_tensor(rng.random(n) < 0.3)
    levels = cone_classes(color, 7, build_neighbors(g.edge_index, n), 3)
    pruned = prune_classes(levels, needed)
    assert sum(lv.num_classes for lv in pruned[1:]) < sum(lv.num_classes for lv in levels[1:])
    assert bool((pruned[-1].inverse[needed] >= 0).all()) and bool((pruned[-1].inverse[~needed] == -1).any())
    torch.manual_seed(0)
    enc = DeepGCN(8, layers=3).double()
    emb = torch.randn(7, 8, dtype=torch.float64, requires_grad=True)
    w = torch.randn(int(needed.sum()), 8, dtype=torch.float64)
    grads = []
    for lv in (levels, pruned):
        emb.grad = None
        enc.zero_grad()
        out = enc.forward_classes(emb, lv)[lv[-1].inverse[needed]]
        (out * w).sum().backward()
        grads.append((out.detach(), [emb.grad.clone()] + [p.grad.clone() for p in enc.parameters()]))
    torch.testing.assert_close(grads[1][0], grads[0][0])
    for a, b in zip(grads[1][1], grads[0][1]):
        torch.testing.assert_close(a, b)
