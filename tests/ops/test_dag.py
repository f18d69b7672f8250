"""The DAG kernels give the same answers as plain Python and compiled with numba, and switch to numba only
once a process has spent its plain-Python budget (so small circuits never import numba)."""

from __future__ import annotations

import numpy as np
import pytest

from geomask.ops import dag


def random_dag(seed: int, n_src: int = 6, n_gate: int = 60) -> tuple[np.ndarray, np.ndarray]:
    """``[N, 2]`` fanins (-1 for sources) of a random DAG, nodes shuffled so the order is not topological."""
    rng = np.random.default_rng(seed)
    n = n_src + n_gate
    fan = np.full((n, 2), -1, dtype=np.int64)
    for v in range(n_src, n):
        fan[v] = rng.integers(0, v, size=2)
    perm = rng.permutation(n)
    inv = np.argsort(perm)
    shuffled = np.full_like(fan, -1)
    shuffled[inv] = np.where(fan >= 0, inv[np.maximum(fan, 0)], -1)
    is_src = np.zeros(n, dtype=bool)
    is_src[inv[:n_src]] = True
    return shuffled, is_src


def run_all(fan: np.ndarray, is_src: np.ndarray) -> tuple:
    order, cyc = dag.topological_order(fan, is_src)
    n = len(fan)
    has = fan >= 0
    edges = np.stack([fan[has], np.nonzero(has)[0]])
    rev = dag.reverse_levels(edges, order, n)
    # and_levels on the same DAG numbered as AIGER numbers variables: constant 0, sources, gates in topological order
    gates = order[~is_src[order]]
    var = np.empty(n, dtype=np.int64)
    var[np.nonzero(is_src)[0]] = np.arange(1, int(is_src.sum()) + 1)
    var[gates] = np.arange(int(is_src.sum()) + 1, n + 1)
    lv = dag.and_levels(var[fan[gates]], int(is_src.sum()) + 1, n + 1)[var]
    return order, cyc, rev, lv


def oracle_levels(fan: np.ndarray, is_src: np.ndarray) -> np.ndarray:
    """Longest path (in gates) from a source to each node, by plain recursion."""
    memo: dict[int, int] = {}

    def level(v: int) -> int:
        if v not in memo:
            memo[v] = 0 if is_src[v] else 1 + max(level(int(u)) for u in fan[v])
        return memo[v]

    return np.array([level(v) for v in range(len(fan))])


@pytest.fixture
def plain_python(monkeypatch):
    monkeypatch.setattr(dag, "PYTHON_BUDGET", 10**12)
    monkeypatch.setattr(dag, "_python_rows", 0)
    monkeypatch.setattr(dag, "_compiled", {})


@pytest.fixture
def compiled(monkeypatch):
    monkeypatch.setattr(dag, "PYTHON_BUDGET", 0)
    monkeypatch.setattr(dag, "_python_rows", 0)
    monkeypatch.setattr(dag, "_compiled", {})


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_plain_python_and_numba_agree(seed, monkeypatch):
    fan, is_src = random_dag(seed)
    for budget in (10**12, 0):  # plain Python, then numba
        monkeypatch.setattr(dag, "PYTHON_BUDGET", budget)
        monkeypatch.setattr(dag, "_python_rows", 0)
        monkeypatch.setattr(dag, "_compiled", {})
        got = run_all(fan, is_src)
        assert bool(dag._compiled) == (budget == 0)
        if budget:
            want = got
    for a, b in zip(got, want):
        np.testing.assert_array_equal(a, b)
    order, cyc, rev, lv = got
    assert cyc == -1 and sorted(order.tolist()) == list(range(len(fan)))
    pos = np.empty(len(fan), dtype=np.int64)
    pos[order] = np.arange(len(fan))
    has = fan >= 0
    assert (pos[fan[has]] < pos[np.nonzero(has)[0]]).all()  # every fanin before its gate
    assert (rev[is_src] >= 1).any() and rev.min() == 0
    np.testing.assert_array_equal(lv, oracle_levels(fan, is_src))


@pytest.mark.parametrize("mode", ["plain_python", "compiled"])
def test_cycle_found_either_way(mode, request):
    request.getfixturevalue(mode)
    fan = np.array([[-1, -1], [0, 2], [1, 0]], dtype=np.int64)  # 1 <- 2 <- 1
    _, cyc = dag.topological_order(fan, np.array([True, False, False]))
    assert cyc in (1, 2)


def test_small_calls_stay_plain_python_until_the_budget_is_spent(monkeypatch):
    monkeypatch.setattr(dag, "PYTHON_BUDGET", 100)
    monkeypatch.setattr(dag, "_python_rows", 0)
    monkeypatch.setattr(dag, "_compiled", {})
    fan, is_src = random_dag(3, n_src=4, n_gate=36)  # 40 rows
    dag.topological_order(fan, is_src)
    dag.topological_order(fan, is_src)
    assert dag._compiled == {} and dag._python_rows == 80
    dag.topological_order(fan, is_src)  # 120 > 100: compiled from now on
    assert set(dag._compiled) == {dag._topo}
    small, small_src = random_dag(4, n_src=2, n_gate=3)
    dag.topological_order(small, small_src)  # small again, but the compiled kernel is already loaded
    assert dag._python_rows == 80
