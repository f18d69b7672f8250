"""A regex scanner for Verilog statements: the fallback of :mod:`geomask.io.verilog_chunks` when pyverilog
cannot parse a file (SystemVerilog constructs, a missing include, ...).

It needs no grammar: comments and strings are blanked, then tokens are walked once.  A module runs from
``module``/``macromodule`` to ``endmodule``; inside it a statement ends at a ``;`` outside parentheses and
outside ``begin/end``-style nesting (``case/endcase``, ``fork/join``, ``function/endfunction``, ...), or
at the keyword that closes its outermost nesting.  An ``else`` statement continues the previous one (an
``if`` without ``begin`` is cut at its first ``;``).  The first word gives the kind.
"""

from __future__ import annotations

import re

import numpy as np

__all__ = ["COMMENT_OR_STRING", "module_graph", "module_instances", "scan_statements"]

#: A ``//`` or ``/* */`` comment, or a string literal (kept so ``//`` inside a string is not a comment).
COMMENT_OR_STRING = re.compile(r'//[^\n]*|/\*.*?\*/|"(?:\\.|[^"\\\n])*"', re.S)

_TOKEN = re.compile(r"`?[A-Za-z_$][\w$]*|;|\(|\)")
_OPEN = {"begin", "case", "casex", "casez", "fork", "function", "task", "generate", "specify", "class", "package"}
_CLOSE = {"end", "endcase", "join", "endfunction", "endtask", "endgenerate", "endspecify", "endclass", "endpackage"}
_KEYWORDS = {"if", "else", "for", "while", "case", "casex", "casez", "begin", "end", "repeat", "forever", "wait"}
_FIRST_KIND = {
    **dict.fromkeys(("input", "output", "inout"), "ports"),
    **dict.fromkeys(("parameter", "localparam"), "params"),
    **dict.fromkeys(("wire", "reg", "logic", "integer", "genvar", "tri", "supply0", "supply1", "real", "bit"), "nets"),
    **dict.fromkeys(("always", "always_ff", "always_comb", "always_latch"), "always"),
    "assign": "assign",
    "initial": "initial",
    "function": "function",
    "task": "task",
    "generate": "generate",
}
_INSTANCE = re.compile(r"\s*[A-Za-z_][\w$]*\s*(#\s*\(.*?\)\s*)?[A-Za-z_][\w$]*\s*(\[[^\]]*\]\s*)?\(", re.S)


def scan_statements(text: str) -> list[tuple[str, int, int, list[tuple[str, int, int]]]]:
    """Modules and their statements as 0-based line spans of ``text``.

    Returns:
        One ``(module, first line, last line, statements)`` per module, where ``statements`` is a list of
        ``(kind, first line, last line)`` in order (inclusive; the ``header`` is ``module ... ;``).  A
        module without ``endmodule`` runs to the end of the text.
    """
    bare = COMMENT_OR_STRING.sub(lambda m: re.sub(r"[^\n]", " ", m.group(0)), text)
    newlines = np.flatnonzero(np.frombuffer(bare.encode("utf-32-le"), dtype=np.uint32) == 10)
    last_line = int(newlines.shape[0])

    def line_of(pos: int) -> int:
        return int(np.searchsorted(newlines, pos))

    def kind_of(start: int, end: int, first: str) -> str:
        if first in _FIRST_KIND:
            return _FIRST_KIND[first]
        if first in _KEYWORDS:
            return "statement"
        return "instance" if _INSTANCE.match(bare, start, end) else "statement"

    out: list[tuple[str, int, int, list[tuple[str, int, int]]]] = []
    spans: list[tuple[str, int, int]] = []
    module, mod_start, stmt_start, depth, paren, first = "", -1, -1, 0, 0, ""
    for m in _TOKEN.finditer(bare):
        tok, pos = m.group(0), m.start()
        low = tok.lower()
        if module == "":
            if low in ("module", "macromodule"):
                module, mod_start, stmt_start, first, depth, paren, spans = "?", pos, pos, "module", 0, 0, []
            continue
        if module == "?":
            module = tok
            continue
        if low == "endmodule":
            if stmt_start >= 0:
                spans.append(("statement", line_of(stmt_start), line_of(pos) - 1))
            out.append((module, line_of(mod_start), line_of(pos), spans))
            module, stmt_start = "", -1
            continue
        if stmt_start < 0:
            stmt_start, first = pos, low
        paren += (tok == "(") - (tok == ")")
        closes = False
        if low in _OPEN:
            depth += 1
        elif low in _CLOSE:
            depth, closes = max(depth - 1, 0), depth == 1
        if (tok == ";" and depth == 0 and paren <= 0) or (closes and depth == 0):
            if first == "else" and spans:  # the rest of an `if` cut at its first `;`
                spans[-1] = (spans[-1][0], spans[-1][1], line_of(pos))
            else:
                kind = "header" if first == "module" else kind_of(stmt_start, m.end(), first)
                spans.append((kind, line_of(stmt_start), line_of(pos)))
            stmt_start, paren = -1, 0
    if module not in ("", "?"):  # no endmodule: keep what is there
        if stmt_start >= 0:
            spans.append(("statement", line_of(stmt_start), last_line))
        out.append((module, line_of(mod_start), last_line, spans))
    return out


_MODULE = re.compile(r"\b(?:macro)?module\s+(?:(?:static|automatic)\s+)?([A-Za-z_][\w$]*)")
_ENDMODULE = re.compile(r"\bendmodule\b")
# ``TYPE [#(params) | #N] NAME [range] (``: the start of a module instance (params nest two levels deep).
_INSTANCE_OF = re.compile(
    r"(?<![\w$.`\\])([A-Za-z_][\w$]*)(?:\s*#\s*(?:\((?:[^()]|\((?:[^()]|\([^()]*\))*\))*\)|[\w.]+)\s*|\s+)"
    r"([A-Za-z_][\w$]*)\s*(?:\[[^\]]*\]\s*)?\("
)
_NOT_A_TYPE = {"module", "macromodule", "function", "task", "else", "begin", "end", "assign", "always", "initial"}


def module_instances(text: str) -> dict[str, set[str]]:
    """Each module defined in ``text`` and the names it instantiates (any ``TYPE NAME (`` inside it, so
    also gate primitives and undefined modules; a module defined twice, e.g. under `` `ifdef``, merges).

    Comments and strings are ignored; a module without ``endmodule`` runs to the end of the text.
    """
    bare = COMMENT_OR_STRING.sub(lambda m: re.sub(r"[^\n]", " ", m.group(0)), text)
    out: dict[str, set[str]] = {}
    pos = 0
    while (m := _MODULE.search(bare, pos)) is not None:
        end = _ENDMODULE.search(bare, m.end())
        stop = end.start() if end is not None else len(bare)
        body = bare[m.end() : stop]
        used = out.setdefault(m.group(1), set())
        for inst in _INSTANCE_OF.finditer(body):
            kind, name = inst.group(1), inst.group(2)
            if kind not in _NOT_A_TYPE and name not in _NOT_A_TYPE and kind not in _KEYWORDS:
                used.add(kind)
        pos = end.end() if end is not None else len(bare)
    return out


def module_graph(texts: list[str]) -> dict[str, set[str]]:
    """Every module defined in ``texts`` (one design's files) → the modules of the design it instantiates
    (itself excluded): the design's hierarchy.  A module no other one instantiates is a top candidate."""
    graph: dict[str, set[str]] = {}
    for text in texts:
        for name, used in module_instances(text).items():
            graph.setdefault(name, set()).update(used - {name})
    return {name: used & graph.keys() for name, used in graph.items()}
