"""Canonical AIG graph: node/edge counts per NOT mode, levels and degrees against networkx, logic semantics."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest
import torch

from geomask.circuits import NodeType, aig_to_graph, graph_to_aig, read
from geomask.io.aig import AIG
from geomask.io.aiger import write_aiger


def random_aig(seed: int, n_in: int = 5, n_and: int = 40, n_out: int = 4, n_latch: int = 0) -> AIG:
    rng = np.random.default_rng(seed)
    first = n_in + n_latch + 1
    ands = np.array([rng.integers(0, 2 * (first + i), size=2) for i in range(n_and)]).reshape(-1, 2)
    m = n_in + n_latch + n_and
    outs = rng.integers(0, 2 * m + 2, size=n_out)
    lat = np.stack([rng.integers(0, 2 * m + 2, size=n_latch), np.zeros(n_latch, dtype=np.int64)], 1)
    return AIG(num_inputs=n_in, ands=ands, outputs=outs, latches=lat)


def eval_aig(aig: AIG, x: np.ndarray) -> np.ndarray:
    """Reference evaluation, one variable at a time: x [I+L, S] bool -> outputs+latch-next [O+L, S]."""
    val = np.zeros((aig.max_var + 1, x.shape[1]), dtype=bool)
    val[1 : 1 + len(x)] = x
    lit = lambda v: val[v >> 1] ^ bool(v & 1)  # noqa: E731
    for i, (a, b) in enumerate(aig.ands):
        val[aig.first_and_var + i] = lit(a) & lit(b)
    return np.array([lit(o) for o in list(aig.outputs) + list(aig.latches[:, 0])])


def eval_graph(g, x: np.ndarray) -> np.ndarray:
    """Evaluate the graph by its node types in topological order (networkx), inverting on edge_type == 1."""
    G = nx.DiGraph()
    G.add_nodes_from(range(g.num_nodes))
    ei, et = g.edge_index.numpy(), g.edge_type.numpy()
    fanins = {v: [] for v in range(g.num_nodes)}
    for s, d, t in zip(ei[0], ei[1], et):
        G.add_edge(int(s), int(d))
        fanins[int(d)].append((int(s), bool(t)))
    val = {}
    pis = g.pi_index.tolist()
    for v in nx.topological_sort(G):
        t = int(g.node_type[v])
        ins = [val[s] ^ inv for s, inv in fanins[v]]
        if t == NodeType.PI:
            val[v] = x[pis.index(v)]
        elif t == NodeType.CONST:
            val[v] = np.zeros(x.shape[1], dtype=bool)
        elif t == NodeType.AND:
            val[v] = ins[0] & ins[1]
        elif t == NodeType.NOT:
            val[v] = ~ins[0]
        else:
            val[v] = ins[0]
    return np.array([val[int(p)] for p in g.po_index])


@pytest.mark.parametrize("mode", ["per_edge", "shared", "attr"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_graph_computes_the_same_function(mode, seed):
    aig = random_aig(seed, n_latch=2)
    g = aig_to_graph(aig, mode)
    x = np.random.default_rng(seed).integers(0, 2, size=(aig.num_inputs + aig.num_latches, 64)).astype(bool)
    np.testing.assert_array_equal(eval_graph(g, x), eval_aig(aig, x))


def test_not_node_counts_per_mode():
    aig = random_aig(7, n_and=60)
    uses = np.concatenate([aig.ands.ravel(), aig.outputs])
    inv = uses[uses & 1 == 1]
    n_base = aig.num_inputs + aig.num_ands + int(((uses >> 1) == 0).any()) + aig.num_outputs
    assert aig_to_graph(aig, "per_edge").num_nodes == n_base + len(inv)
    assert aig_to_graph(aig, "shared").num_nodes == n_base + len(np.unique(inv >> 1))
    g = aig_to_graph(aig, "attr")
    assert g.num_nodes == n_base
    assert int(g.edge_type.sum()) == len(inv)
    assert not bool((g.node_type == NodeType.NOT).any())


@pytest.mark.parametrize("mode", ["per_edge", "shared", "attr"])
def test_levels_and_degrees_match_networkx(mode):
    g = aig_to_graph(random_aig(3, n_and=80), mode)
    G = nx.MultiDiGraph()  # an AND may read the same literal twice
    G.add_nodes_from(range(g.num_nodes))
    G.add_edges_from(g.edge_index.t().tolist())
    fwd = {v: 0 for v in G}
    for v in nx.topological_sort(G):
        for u in G.predecessors(v):
            fwd[v] = max(fwd[v], fwd[u] + 1)
    rev = {v: 0 for v in G}
    for v in reversed(list(nx.topological_sort(G))):
        for u in G.successors(v):
            rev[v] = max(rev[v], rev[u] + 1)
    assert g.level.tolist() == [fwd[v] for v in range(g.num_nodes)]
    assert g.rev_level.tolist() == [rev[v] for v in range(g.num_nodes)]
    assert g.in_degree.tolist() == [G.in_degree(v) for v in range(g.num_nodes)]
    assert g.out_degree.tolist() == [G.out_degree(v) for v in range(g.num_nodes)]
    assert bool((g.in_degree[g.node_type == NodeType.AND] == 2).all())
    assert bool((g.in_degree[g.node_type == NodeType.PO] == 1).all())


@pytest.mark.parametrize("mode", ["per_edge", "shared", "attr"])
def test_graph_to_aig_inverts(mode):
    aig = random_aig(11, n_latch=3)
    back = graph_to_aig(aig_to_graph(aig, mode))
    assert back.same_structure(aig)


def test_graph_to_aig_accepts_shuffled_nodes():
    aig = random_aig(5)
    g = aig_to_graph(aig, "per_edge")
    perm = torch.randperm(g.num_nodes, generator=torch.Generator().manual_seed(0))
    inv = torch.empty_like(perm)
    inv[perm] = torch.arange(g.num_nodes)
    g.node_type = g.node_type[perm]
    g.edge_index = inv[g.edge_index]
    g.pi_index, g.po_index = inv[g.pi_index], inv[g.po_index]
    back = graph_to_aig(g)
    x = np.random.default_rng(0).integers(0, 2, size=(aig.num_inputs, 32)).astype(bool)
    np.testing.assert_array_equal(eval_aig(back, x), eval_aig(aig, x))


def test_bad_mode():
    with pytest.raises(ValueError, match="not_nodes"):
        aig_to_graph(random_aig(0), "both")


def test_read_any_format(tmp_path):
    aig = random_aig(2)
    write_aiger(aig, tmp_path / "c.aag")
    g = read(tmp_path / "c.aag", not_nodes="shared")
    assert g.name == "c" and g.format == "aiger"
    assert graph_to_aig(g).same_structure(aig)


def test_epfl_graph_levels(shared_data):
    g = read(shared_data / "circuits" / "epfl" / "sqrt.aig", not_nodes="attr")
    assert int(g.and_level.max()) == 5058  # ABC print_stats lev for sqrt
    assert int(g.level.max()) == 5058 + 1  # PO node one edge after the deepest AND
