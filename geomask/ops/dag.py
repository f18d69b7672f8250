"""Sequential passes over topologically sorted DAGs, compiled with numba.

A logic level is a longest-path length: level ``i`` depends on the levels of ``i``'s fanins, so the
pass is inherently sequential in topological order.  A numpy "wavefront" loop would run once per level
(24,801 times for EPFL ``hyp``); these kernels run once per node in machine code instead.  They take
and return plain int64 arrays, and know nothing of circuits.

numba is imported, and a kernel loaded from its on-disk cache, only on first need: importing numba and
loading one cached kernel costs about 0.4 s, far more than a plain Python pass over a small circuit.  So
the first :data:`PYTHON_BUDGET` rows a process passes through these kernels run as plain Python (the same
source), and everything after that, or any single call over more rows, runs compiled.  ``geomask info``
on a small AIGER file then never imports numba.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = ["PYTHON_BUDGET", "and_levels", "reverse_levels", "topological_order"]

PYTHON_BUDGET = 20_000
"""Rows (ANDs, nodes or edges) a process runs through the kernels as plain Python before using numba."""

_python_rows = 0
_compiled: dict[Callable[..., Any], Callable[..., Any]] = {}


def _kernel(fn: Callable[..., Any], rows: int) -> Callable[..., Any]:
    """``fn`` itself while the process's plain-Python budget lasts, else its numba-compiled version."""
    global _python_rows
    jit = _compiled.get(fn)
    if jit is not None:
        return jit
    if _python_rows + rows <= PYTHON_BUDGET:
        _python_rows += rows
        return fn
    import numba

    jit = _compiled[fn] = numba.njit(cache=True, nogil=True)(fn)
    return jit


def _and_levels(fanin_vars: np.ndarray, first_and: int, num_vars: int) -> np.ndarray:
    level = np.zeros(num_vars, dtype=np.int64)
    for i in range(fanin_vars.shape[0]):
        a = level[fanin_vars[i, 0]]
        b = level[fanin_vars[i, 1]]
        level[first_and + i] = (a if a > b else b) + 1
    return level


def and_levels(fanin_vars: np.ndarray, first_and: int, num_vars: int) -> np.ndarray:
    """Forward logic level of every variable of an AIG.

    Args:
        fanin_vars: ``[A, 2]`` int64 fanin *variables* of the ANDs, topologically sorted.
        first_and: variable index of AND row 0.
        num_vars: total variables (``M + 1`` including the constant).

    Returns:
        ``[num_vars]`` int64: 0 for the constant, inputs and latches; ``1 + max(fanin levels)`` for ANDs
        (the number of ANDs on the longest path from a source, as ABC's ``lev`` counts).
    """
    fanin_vars = np.ascontiguousarray(fanin_vars, dtype=np.int64)
    return _kernel(_and_levels, len(fanin_vars))(fanin_vars, int(first_and), int(num_vars))


def _reverse_levels(src: np.ndarray, dst: np.ndarray, order: np.ndarray, num_nodes: int) -> np.ndarray:
    # CSR of out-edges, then relax in reverse topological order.
    n_edges = src.shape[0]
    count = np.zeros(num_nodes + 1, dtype=np.int64)
    for e in range(n_edges):
        count[src[e] + 1] += 1
    for v in range(num_nodes):
        count[v + 1] += count[v]
    fill = count[:-1].copy()
    nbr = np.empty(n_edges, dtype=np.int64)
    for e in range(n_edges):
        nbr[fill[src[e]]] = dst[e]
        fill[src[e]] += 1
    rev = np.zeros(num_nodes, dtype=np.int64)
    for k in range(order.shape[0] - 1, -1, -1):
        v = order[k]
        best = -1
        for j in range(count[v], count[v + 1]):
            r = rev[nbr[j]]
            if r > best:
                best = r
        rev[v] = best + 1
    return rev


def reverse_levels(edge_index: np.ndarray, order: np.ndarray, num_nodes: int) -> np.ndarray:
    """Longest distance (in edges) from each node to a sink of a DAG.

    Args:
        edge_index: ``[2, E]`` int64, row 0 the source (fanin), row 1 the target (gate).
        order: ``[N]`` a topological order of the nodes (sources first).
        num_nodes: ``N``.

    Returns:
        ``[N]`` int64, 0 for sinks.
    """
    ei = np.asarray(edge_index, dtype=np.int64)
    return _kernel(_reverse_levels, ei.shape[1] + int(num_nodes))(
        np.ascontiguousarray(ei[0]), np.ascontiguousarray(ei[1]), np.asarray(order, dtype=np.int64), int(num_nodes)
    )


def _topo(fanins: np.ndarray, is_source: np.ndarray) -> tuple:
    # Iterative DFS post-order over fanins.  Returns (order, cycle_node): cycle_node >= 0 on a cycle.
    n = fanins.shape[0]
    state = np.zeros(n, dtype=np.int8)  # 0 new, 1 on stack, 2 done
    order = np.empty(n, dtype=np.int64)
    k = 0
    stack = np.empty(n, dtype=np.int64)
    child = np.empty(n, dtype=np.int64)
    for root in range(n):
        if state[root] != 0:
            continue
        top = 0
        stack[0] = root
        child[0] = 0
        state[root] = 1
        while top >= 0:
            v = stack[top]
            c = child[top]
            if is_source[v] or c >= 2:
                state[v] = 2
                order[k] = v
                k += 1
                top -= 1
                continue
            child[top] = c + 1
            u = fanins[v, c]
            if u < 0:
                continue
            if state[u] == 1:
                return order[:k], u
            if state[u] == 0:
                state[u] = 1
                top += 1
                stack[top] = u
                child[top] = 0
    return order, -1


def topological_order(fanins: np.ndarray, is_source: np.ndarray) -> tuple[np.ndarray, int]:
    """Topological order of a graph whose nodes have at most two fanins.

    Args:
        fanins: ``[N, 2]`` int64 fanin node of each node (``-1`` for none).
        is_source: ``[N]`` bool, nodes whose fanins are not followed (inputs, latches, constant).

    Returns:
        ``(order, cycle_node)``: ``order`` lists every node after its fanins; ``cycle_node`` is ``-1``,
        or a node on a combinational cycle (then ``order`` is partial).
    """
    fanins = np.ascontiguousarray(fanins, dtype=np.int64)
    order, bad = _kernel(_topo, len(fanins))(fanins, np.asarray(is_source, dtype=np.bool_))
    return order, int(bad)
