"""ISCAS ``.bench`` netlists → :class:`~geomask.io.aig.AIG`.

The format, one statement per line, ``#`` starts a comment::

    INPUT(G1)
    OUTPUT(G22)
    G10 = NAND(G1, G3)
    G5  = DFF(G10)

Gates (case-insensitive): ``AND``, ``NAND``, ``OR``, ``NOR``, ``XOR``, ``XNOR`` (one or more inputs),
``NOT``, ``BUF``/``BUFF``, ``DFF`` (one input; an AIGER latch with reset 0), and the constants
``VDD``/``CONST1``/``ONE`` and ``GND``/``CONST0``/``ZERO`` (no inputs).  ``y = x`` is a buffer.
The names ``vdd``/``gnd`` may be used without a definition.  Definitions may come in any order.

Conversion: a ``k``-input AND/OR is a balanced tree of ``k - 1`` two-input ANDs (OR by De Morgan), a
two-input XOR is three ANDs, a ``k``-input XOR a balanced tree of them; NOT and BUF are inversions and
aliases of literals, not nodes.  Inputs and outputs keep their declaration order; DFFs become latches in
definition order.  Every defined gate is kept, even when nothing reads it.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from geomask.errors import FormatError
from geomask.io.aig import AIG
from geomask.ops.dag import topological_order

__all__ = ["read_bench", "parse_bench"]

_PORT = re.compile(r"(INPUT|OUTPUT)\s*\(\s*([^\s(),=]+)\s*\)", re.IGNORECASE)
_GATE = re.compile(r"([^\s(),=]+)\s*=\s*([A-Za-z_]\w*)\s*\((.*)\)")
_ALIAS = re.compile(r"([^\s(),=]+)\s*=\s*([^\s(),=]+)")
_NAME = re.compile(r"[^\s(),=]+")

_CONST_GATES = {"VDD": 1, "CONST1": 1, "ONE": 1, "GND": 0, "CONST0": 0, "ZERO": 0}
_CONST_NAMES = {"vdd": 1, "gnd": 0}
_UNARY = {"NOT", "BUF", "BUFF", "DFF"}
_MULTI = {"AND", "NAND", "OR", "NOR", "XOR", "XNOR"}

# Node kinds of the intermediate graph (every node has at most two fanins).
_CONST, _INPUT, _LATCH, _AND, _ALIASK = 0, 1, 2, 3, 4


class _Graph:
    """Growable arrays of the intermediate graph: node ``v`` has ``kind``, fanins ``fin[v]`` with
    inversion flags ``neg[v]`` and the source line ``line[v]``.  An AND node's literal is
    ``AND(fin0 ^ neg0, fin1 ^ neg1)``; an alias node's literal is ``lit(fin0) ^ neg0``."""

    def __init__(self) -> None:
        self.kind: list[int] = []
        self.fin: list[tuple[int, int]] = []
        self.neg: list[tuple[int, int]] = []
        self.line: list[int] = []

    def add(self, kind: int, line: int, a: int = -1, na: int = 0, b: int = -1, nb: int = 0) -> int:
        self.kind.append(kind)
        self.fin.append((a, b))
        self.neg.append((na, nb))
        self.line.append(line)
        return len(self.kind) - 1

    def and2(self, line: int, a: int, na: int, b: int, nb: int) -> int:
        return self.add(_AND, line, a, na, b, nb)

    def xor2(self, line: int, a: int, b: int) -> int:
        """A node whose literal is ``a XOR b`` (an alias of the negated OR of two ANDs)."""
        t1 = self.and2(line, a, 0, b, 1)
        t2 = self.and2(line, a, 1, b, 0)
        return self.add(_ALIASK, line, self.and2(line, t1, 1, t2, 1), 1)


def _tree(graph: _Graph, line: int, ins: list[int], xor: bool, neg_in: int) -> int:
    """Balanced tree over ``ins`` (each inverted by ``neg_in`` for AND trees); returns its node."""
    level = ins
    if len(level) == 1:
        return graph.add(_ALIASK, line, level[0], neg_in)
    while len(level) > 1:
        nxt = [
            graph.xor2(line, level[i], level[i + 1])
            if xor
            else graph.and2(line, level[i], neg_in, level[i + 1], neg_in)
            for i in range(0, len(level) - 1, 2)
        ]
        if len(level) % 2:  # the odd one out moves up a level, still inverted for an OR tree
            nxt.append(graph.add(_ALIASK, line, level[-1], neg_in) if neg_in else level[-1])
        level, neg_in = nxt, 0
    return level[0]


def parse_bench(text: str, path: str | Path | None = None) -> AIG:
    """Convert the text of a ``.bench`` netlist to an AIG (see the module docstring).

    Args:
        text: the file's contents.
        path: the file name used in error messages.

    Returns:
        The :class:`AIG`, with input, output and latch symbol tables set.

    Raises:
        FormatError: with the line number, for garbage, an unknown gate, a wrong number of gate inputs,
            an undefined signal, a signal defined twice, a combinational cycle, or an empty netlist.
    """
    inputs: list[tuple[str, int]] = []
    outputs: list[tuple[str, int]] = []
    gates: list[tuple[str, str, list[str], int]] = []
    for lineno, raw in enumerate(text.splitlines(), start=1):
        stmt = raw.split("#", 1)[0].strip()
        if not stmt:
            continue
        if m := _PORT.fullmatch(stmt):
            (inputs if m.group(1).upper() == "INPUT" else outputs).append((m.group(2), lineno))
        elif m := _GATE.fullmatch(stmt):
            args = [a.strip() for a in m.group(3).split(",")] if m.group(3).strip() else []
            if not all(_NAME.fullmatch(a) for a in args):
                raise FormatError(path, f"bad gate inputs {m.group(3)!r}", line=lineno)
            gates.append((m.group(1), m.group(2).upper(), args, lineno))
        elif m := _ALIAS.fullmatch(stmt):
            gates.append((m.group(1), "BUF", [m.group(2)], lineno))
        else:
            raise FormatError(path, f"cannot parse {stmt[:60]!r}", line=lineno)
    if not inputs and not outputs and not gates:
        raise FormatError(path, "empty netlist: no INPUT, OUTPUT or gate")

    graph = _Graph()
    node_of: dict[str, int] = {}
    const_node = graph.add(_CONST, 0)

    def define(name: str, lineno: int) -> None:
        if name in node_of:
            raise FormatError(
                path, f"signal {name!r} defined twice (first on line {graph.line[node_of[name]]})", line=lineno
            )

    for name, lineno in inputs:
        define(name, lineno)
        node_of[name] = graph.add(_INPUT, lineno)
    # First pass: a placeholder node per gate output, so that gates may refer to later definitions.
    latch_rows: list[tuple[str, int, int]] = []
    for name, op, args, lineno in gates:
        define(name, lineno)
        if op not in _UNARY and op not in _MULTI and op not in _CONST_GATES:
            raise FormatError(path, f"unknown gate {op!r}", line=lineno)
        want = "0" if op in _CONST_GATES else "1" if op in _UNARY else "at least 1"
        if (op in _CONST_GATES and args) or (op in _UNARY and len(args) != 1) or (op in _MULTI and not args):
            raise FormatError(path, f"{op} takes {want} input(s), got {len(args)}", line=lineno)
        node_of[name] = graph.add(_LATCH if op == "DFF" else _ALIASK, lineno)
        if op == "DFF":
            latch_rows.append((name, node_of[name], lineno))

    def node(sig: str, lineno: int) -> int:
        if sig in node_of:
            return node_of[sig]
        if sig.lower() in _CONST_NAMES:
            return graph.add(_ALIASK, lineno, const_node, _CONST_NAMES[sig.lower()])
        raise FormatError(path, f"undefined signal {sig!r}", line=lineno)

    # Second pass: build each gate's tree and point its placeholder at the root.
    latch_next: list[int] = []
    for name, op, args, lineno in gates:
        v = node_of[name]
        ins = [node(a, lineno) for a in args]
        if op == "DFF":
            latch_next.append(ins[0])
            continue
        if op in _CONST_GATES:
            root, neg = const_node, _CONST_GATES[op]
        elif op in _UNARY:
            root, neg = ins[0], int(op == "NOT")
        elif op in ("AND", "NAND"):
            root, neg = _tree(graph, lineno, ins, False, 0), int(op == "NAND")
        elif op in ("OR", "NOR"):
            root, neg = _tree(graph, lineno, ins, False, 1), int(op == "OR")
        else:
            root, neg = _tree(graph, lineno, ins, True, 0), int(op == "XNOR")
        graph.fin[v] = (root, -1)
        graph.neg[v] = (neg, 0)
    out_nodes = [node(name, lineno) for name, lineno in outputs]
    return _to_aig(graph, inputs, outputs, latch_rows, latch_next, out_nodes, path)


def _to_aig(
    graph: _Graph,
    inputs: list[tuple[str, int]],
    outputs: list[tuple[str, int]],
    latch_rows: list[tuple[str, int, int]],
    latch_next: list[int],
    out_nodes: list[int],
    path: str | Path | None,
) -> AIG:
    """Number the intermediate graph's nodes as AIGER variables (vectorised after the topological sort)."""
    kind = np.asarray(graph.kind, dtype=np.int64)
    fin = np.asarray(graph.fin, dtype=np.int64).reshape(-1, 2)
    neg = np.asarray(graph.neg, dtype=np.int64).reshape(-1, 2)
    n = kind.shape[0]
    is_source = (kind == _CONST) | (kind == _INPUT) | (kind == _LATCH)
    order, cyc = topological_order(fin, is_source)
    if cyc >= 0:
        raise FormatError(path, "combinational cycle through this gate", line=int(graph.line[cyc]))

    n_in, n_lat = len(inputs), len(latch_rows)
    var = np.full(n, -1, dtype=np.int64)
    var[kind == _CONST] = 0
    var[np.flatnonzero(kind == _INPUT)] = np.arange(1, n_in + 1)
    latch_nodes = np.asarray([v for _, v, _ in latch_rows], dtype=np.int64)
    var[latch_nodes] = np.arange(n_in + 1, n_in + n_lat + 1)
    and_nodes = order[kind[order] == _AND]
    var[and_nodes] = np.arange(n_in + n_lat + 1, n_in + n_lat + 1 + and_nodes.shape[0])

    # Literal of each node: direct for sources and ANDs; aliases resolved by pointer jumping.
    lit = np.where(var >= 0, 2 * var, -1)
    base = np.where(kind == _ALIASK, fin[:, 0], np.arange(n))
    flip = np.where(kind == _ALIASK, neg[:, 0], 0)
    while True:
        pending = kind[base] == _ALIASK
        if not pending.any():
            break
        flip = np.where(pending, flip ^ flip[base], flip)
        base = np.where(pending, base[base], base)
    lit = lit[base] ^ flip

    ands = lit[fin[and_nodes]] ^ neg[and_nodes]
    latches = np.stack([lit[np.asarray(latch_next, dtype=np.int64)], np.zeros(n_lat, dtype=np.int64)], axis=1)
    return AIG(
        num_inputs=n_in,
        ands=ands.reshape(-1, 2),
        outputs=lit[np.asarray(out_nodes, dtype=np.int64)],
        latches=latches.reshape(-1, 2),
        input_names=[name for name, _ in inputs],
        latch_names=[name for name, _, _ in latch_rows],
        output_names=[name for name, _ in outputs],
        name="" if path is None else Path(path).stem,
    )


def read_bench(path: str | Path) -> AIG:
    """Read an ISCAS ``.bench`` file (see :func:`parse_bench`).

    Raises:
        FormatError: unreadable (not UTF-8/ASCII) or malformed file, with the line number.
    """
    try:
        text = Path(path).read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FormatError(path, "not a text file", offset=exc.start) from None
    return parse_bench(text, path)
