"""Split Verilog source into statement- or module-level chunks of real code text (for text encoders).

A chunk is a contiguous run of source lines, cut from the *original* text (comments and macro names as
written), so a text/code encoder sees the code a person wrote.  The chunk boundaries come from
pyverilog's AST:

1. ``include`` files found beside the file (or in the design folder) are expanded in place, keeping a map
   from each expanded line to its ``(file, line)``;
2. ``iverilog -E`` expands macros and conditionals (pyverilog's own preprocessing step, run here with
   its errors captured); a line alignment (``difflib``) maps the preprocessed lines back to the expanded
   original lines, so multi-line macro expansions do not shift the boundaries;
3. pyverilog parses the preprocessed text (its LALR tables are built in memory once per process and
   never written to disk); module items give the chunk starts, the next item's start (or
   ``endmodule``) the end; trailing blank and comment-only lines are dropped.

Statement level: the module header (``module ... ;`` with its ANSI ports and parameters), each run of
consecutive declarations of one sort (``ports``, ``params``, ``nets``), each continuous ``assign``, each
``always`` / ``initial`` block, each instance list, each ``function`` / ``task`` and ``generate`` region.
Module level: one chunk per module.  A chunk longer than ``max_chars`` is cut at line boundaries into
pieces that keep its module and kind.

When iverilog or pyverilog fails on a file (SystemVerilog constructs, a missing include, ...), the file
is split by the regex scanner of :mod:`geomask.io.verilog_scan` (``module ... endmodule`` and
``;``-terminated statements, ``begin/end``-style nesting kept together) and a
:class:`ChunkFallbackWarning` says so: every design still gets chunks.
"""

from __future__ import annotations

import difflib
import functools
import re
import shutil
import subprocess
import tempfile
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from geomask.errors import FormatError
from geomask.io.verilog import verilog_sources
from geomask.io.verilog_scan import COMMENT_OR_STRING, scan_statements

__all__ = ["LEVELS", "Chunk", "ChunkFallbackWarning", "split_verilog", "split_verilog_text"]

LEVELS = ("statement", "module")
_INCLUDE = re.compile(r'^\s*`include\s+"([^"]+)"')
_MAX_INCLUDE_DEPTH = 16


class ChunkFallbackWarning(UserWarning):
    """pyverilog could not parse a file; its chunks come from the regex splitter."""


@dataclass(frozen=True)
class Chunk:
    """One piece of Verilog source.

    Attributes:
        text: the source lines, as written (comments kept, macros not expanded).
        module: the enclosing module's name (``""`` outside any module).
        kind: ``header``, ``ports``, ``params``, ``nets``, ``assign``, ``always``, ``initial``,
            ``instance``, ``function``, ``task``, ``generate``, ``statement``, ``module`` or ``text``.
        line_start: 1-based first line in ``file``.
        line_end: 1-based last line (inclusive) in ``file``.
        file: the source file, relative to the design folder (its name for a single file).
    """

    text: str
    module: str
    kind: str
    line_start: int
    line_end: int
    file: str = ""


# -- source text with includes expanded ------------------------------------------------------------


@dataclass
class _Source:
    """A source file with its includes expanded: ``lines[i]`` came from ``origin[i] = (file, line)``."""

    name: str
    lines: list[str]
    origin: list[tuple[str, int]]

    @property
    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def _read_text(path: Path) -> str:
    try:
        data = path.read_bytes()
    except OSError as e:
        raise FormatError(path, f"cannot read: {e.strerror or e}") from None
    return data.decode("utf-8", "replace")


def _expand(path: Path, name: str, search: list[Path], depth: int = 0) -> tuple[list[str], list[tuple[str, int]]]:
    lines = _read_text(path).replace("\r\n", "\n").replace("\r", "\n").split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    out: list[str] = []
    origin: list[tuple[str, int]] = []
    for k, line in enumerate(lines, 1):
        m = _INCLUDE.match(line)
        found = None
        if m and depth < _MAX_INCLUDE_DEPTH:
            found = next((d / m.group(1) for d in search if (d / m.group(1)).is_file()), None)
        if found is None:
            out.append(line)
            origin.append((name, k))
            continue
        sub_lines, sub_origin = _expand(found, m.group(1), search, depth + 1)
        out += sub_lines
        origin += sub_origin
    return out, origin


def _code_mask(text: str) -> np.ndarray:
    """``[n_lines]`` bool: the line holds something besides whitespace and comments."""
    bare = COMMENT_OR_STRING.sub(lambda m: m.group(0) if m.group(0)[0] == '"' else "\n" * m.group(0).count("\n"), text)
    return np.array([bool(line.strip()) for line in bare.split("\n")], dtype=bool)


# -- pyverilog -------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _parser():
    """One pyverilog parser per process, tables built in memory (never written: no parsetab.py)."""
    from ply import yacc
    from pyverilog.vparser.lexer import VerilogLexer
    from pyverilog.vparser.parser import VerilogParser

    class _QuietParser(VerilogParser):
        def __init__(self) -> None:  # pyverilog's own __init__ writes tables into a folder
            self.lexer = VerilogLexer(error_func=self._lexer_error_func)
            self.lexer.build()
            self.tokens = self.lexer.tokens
            self.parser = yacc.yacc(
                module=self, method="LALR", debug=False, write_tables=False, errorlog=yacc.NullLogger()
            )

    return _QuietParser(), threading.Lock()


def _preprocess(src: _Source, search: list[Path]) -> str:
    """``iverilog -E`` of the expanded text; raises RuntimeError with iverilog's message."""
    exe = shutil.which("iverilog")
    if exe is None:
        raise RuntimeError("iverilog not found on PATH (apt-get install iverilog)")
    with tempfile.TemporaryDirectory(prefix="geomask-vchunks-") as tmp:
        inp, out = Path(tmp) / "in.v", Path(tmp) / "out.v"
        inp.write_text(src.text)
        cmd = [exe, "-E", "-o", str(out), *[f"-I{d}" for d in search], str(inp)]
        proc = subprocess.run(cmd, capture_output=True, text=True, errors="replace", timeout=120, check=False)
        if proc.returncode != 0 or not out.is_file():
            msg = " ".join((proc.stderr or proc.stdout or f"exit status {proc.returncode}").split())
            raise RuntimeError(f"iverilog -E: {msg[:300]}")
        return out.read_text("utf-8", "replace")


_IDENT = re.compile(r"(?<![`\w$])[A-Za-z_][\w$]*")


def _line_keys(lines: list[str]) -> tuple[list[str], list[str]]:
    """Alignment keys per line: the stripped line, and its first two identifiers that are not macros."""
    return [s.strip() for s in lines], [" ".join(_IDENT.findall(s)[:2]) for s in lines]


def _align(a: tuple[list[str], ...], b: tuple[list[str], ...], m: np.ndarray, i0: int, j0: int, depth: int) -> None:
    """Fill ``m[j0 + j]`` for ``b``'s lines: exact matches on key ``depth``, unmatched runs re-aligned on the
    next key (a line whose macros expanded still starts with the same identifiers), else spread evenly."""
    sm = difflib.SequenceMatcher(None, a[depth], b[depth], autojunk=False)
    for tag, i1, i2, j1, j2 in sm.get_opcodes():
        if j2 == j1:
            continue
        if tag == "equal":
            m[j0 + j1 : j0 + j2] = i0 + i1 + np.arange(j2 - j1)
        elif i2 > i1 and depth + 1 < len(a):
            _align(tuple(x[i1:i2] for x in a), tuple(x[j1:j2] for x in b), m, i0 + i1, j0 + j1, depth + 1)
        else:
            m[j0 + j1 : j0 + j2] = i0 + i1 + (np.arange(j2 - j1) * max(i2 - i1, 1)) // (j2 - j1)


def _line_map(orig: list[str], pre: list[str]) -> np.ndarray:
    """``m[j]``: 0-based original line of preprocessed line ``j`` (monotone), by line alignment."""
    m = np.zeros(len(pre) + 1, dtype=np.int64)
    _align(_line_keys(orig), _line_keys(pre), m, 0, 0, 0)
    m[len(pre)] = len(orig)
    return np.minimum(np.maximum.accumulate(m), max(len(orig) - 1, 0))


def _item_kind(item) -> str:
    name = type(item).__name__
    if name == "Decl":
        first = type(item.list[0]).__name__ if getattr(item, "list", None) else ""
        if first in ("Input", "Output", "Inout"):
            return "ports"
        return "params" if first in ("Parameter", "Localparam") else "nets"
    if name.startswith("Always"):
        return "always"
    return {
        "Assign": "assign",
        "Initial": "initial",
        "InstanceList": "instance",
        "Function": "function",
        "Task": "task",
        "GenerateStatement": "generate",
    }.get(name, "statement")


def _ast_spans(pre_text: str) -> list[tuple[str, int, int, list[tuple[str, int]]]]:
    """Per module: ``(name, first line, endmodule line, [(kind, start line), ...])``, 1-based, preprocessed."""
    parser, lock = _parser()
    with lock:
        parser.lexer.reset_lineno()
        parser.lexer.directives = []
        ast = parser.parse(pre_text)
    mods = []
    for mod in ast.description.definitions:
        if type(mod).__name__ != "ModuleDef":
            continue
        items = [(_item_kind(it), int(it.lineno)) for it in mod.items if getattr(it, "lineno", 0)]
        mods.append((mod.name, int(mod.lineno), int(getattr(mod, "end_lineno", 0) or 0), items))
    return mods


# -- chunk assembly --------------------------------------------------------------------------------


def _make(src: _Source, code: np.ndarray, module: str, kind: str, a: int, b: int, max_chars: int | None) -> list[Chunk]:
    """Chunks of 0-based expanded lines ``a..b`` (inclusive), code-less edges trimmed, cut to ``max_chars``."""
    while a <= b and not code[a]:
        a += 1
    while b >= a and not code[b]:
        b -= 1
    if a > b:
        return []
    pieces, start, size = [], a, 0
    for k in range(a, b + 1):
        n = len(src.lines[k]) + 1
        if max_chars is not None and size + n > max_chars and k > start:
            pieces.append((start, k - 1))
            start, size = k, 0
        size += n
    pieces.append((start, b))
    out = []
    for lo, hi in pieces:
        text = "\n".join(src.lines[lo : hi + 1])
        if max_chars is not None and len(text) > max_chars:
            text = text[:max_chars]
        f0, l0 = src.origin[lo]
        f1, l1 = src.origin[hi]
        out.append(Chunk(text, module, kind, l0, l1 if f1 == f0 else l0 + (hi - lo), f0))
    return out


_DECLS = ("ports", "params", "nets")


def _assemble(
    src: _Source, code: np.ndarray, module: str, spans: list[tuple[str, int, int]], max_chars: int | None
) -> list[Chunk]:
    """Chunks of one module's ``(kind, first, last)`` spans (0-based expanded lines, in order): spans that
    share a line merge, and so do runs of one declaration sort while they fit in ``max_chars``."""
    groups: list[list] = []
    for kind, s, e in spans:
        if groups:
            g = groups[-1]
            size = sum(len(x) + 1 for x in src.lines[g[1] : e + 1])
            if s <= g[2] or (kind == g[0] and kind in _DECLS and (max_chars is None or size <= max_chars)):
                g[2] = max(g[2], e)
                continue
        groups.append([kind, s, max(s, e)])
    return [c for kind, s, e in groups for c in _make(src, code, module, kind, s, e, max_chars)]


def _chunks_from_ast(
    src: _Source, code: np.ndarray, search: list[Path], level: str, max_chars: int | None
) -> list[Chunk]:
    pre = _preprocess(src, search)
    pre_lines = pre.split("\n")
    pre_code = _code_mask(pre)[: len(pre_lines)]
    if not re.search(r"\b(macro)?module\b", COMMENT_OR_STRING.sub(" ", pre)):
        return []  # only macros or a `timescale: nothing to chunk, nothing to warn about
    mods = _ast_spans(pre)
    lmap = _line_map(src.lines, pre_lines)
    # code that survived preprocessing: inactive `ifdef branches and directives do not extend a chunk
    live = np.zeros(len(src.lines), dtype=bool)
    live[lmap[: len(pre_code)][pre_code]] = True
    code = code & live

    def orig(line: int) -> int:  # 1-based preprocessed → 0-based expanded original
        return int(lmap[min(max(line - 1, 0), len(pre_lines) - 1)])

    chunks: list[Chunk] = []
    for name, first, last, items in mods:
        a, b = orig(first), orig(last) if last else len(src.lines) - 1
        if level == "module":
            chunks += _make(src, code, name, "module", a, b, max_chars)
            continue
        starts = [("header", a)] + [(kind, orig(line)) for kind, line in items] + [("end", b)]
        spans = [(kind, s, nxt - 1) for (kind, s), (_, nxt) in zip(starts[:-1], starts[1:])]
        chunks += _assemble(src, code, name, spans, max_chars)
    return chunks


def _chunks_from_regex(src: _Source, code: np.ndarray, level: str, max_chars: int | None) -> list[Chunk]:
    chunks: list[Chunk] = []
    for module, first, last, spans in scan_statements(src.text):
        if level == "module":
            chunks += _make(src, code, module, "module", first, last, max_chars)
        else:
            chunks += _assemble(src, code, module, spans, max_chars)
    return chunks


# -- public API ------------------------------------------------------------------------------------


def _split_source(src: _Source, search: list[Path], level: str, max_chars: int | None, where: Path) -> list[Chunk]:
    code = _code_mask(src.text)[: len(src.lines)]  # the text ends in a newline: one entry per line, and one more
    try:
        chunks = _chunks_from_ast(src, code, search, level, max_chars)
    except Exception as e:  # noqa: BLE001 - any parser failure means: use the fallback splitter
        reason = " ".join(str(e).split())[:200] or type(e).__name__
        warnings.warn(
            f"{where}: pyverilog cannot parse {src.name} ({reason}); chunks come from the regex splitter",
            ChunkFallbackWarning,
            stacklevel=3,
        )
        chunks = _chunks_from_regex(src, code, level, max_chars)
    return chunks


def _text_chunks(src: _Source, max_chars: int | None) -> list[Chunk]:
    """The whole text as ``text`` chunks (a design without any module still gets chunks)."""
    return _make(src, _code_mask(src.text)[: len(src.lines)], "", "text", 0, len(src.lines) - 1, max_chars)


def split_verilog(path: str | Path, level: str = "statement", max_chars: int | None = 2000) -> list[Chunk]:
    """Chunks of a Verilog design (see the module docstring).

    Args:
        path: a ``.v``/``.sv`` file, or a folder holding one design (its sources are the Verilog files no
            other file includes, as :func:`geomask.io.verilog.verilog_sources` picks them).
        level: ``"statement"`` or ``"module"``.
        max_chars: longest chunk text; longer ones are cut at line boundaries (a single longer line is
            truncated).  ``None``: no limit.

    Returns:
        The chunks in file order (files sorted by name), at least one when the design has any code.

    Raises:
        ValueError: a bad ``level`` or ``max_chars``.
        FormatError: no such file, no Verilog in the folder, an unreadable file, or a design with no
            code (empty or only comments).

    Warns:
        ChunkFallbackWarning: a file pyverilog cannot parse (its chunks come from the regex splitter).
    """
    if level not in LEVELS:
        raise ValueError(f"level must be one of {LEVELS}, got {level!r}")
    if max_chars is not None and max_chars < 1:
        raise ValueError(f"max_chars must be positive or None, got {max_chars}")
    p = Path(path)
    files, sources = verilog_sources(p)
    root = p if p.is_dir() else p.parent
    chunks: list[Chunk] = []
    texts = []
    for rel in sources:
        f = files[rel]
        search = sorted({f.parent, root, *(x.parent for x in files.values())})
        lines, origin = _expand(f, rel, search)
        if not any(line.strip() for line in lines):
            if not p.is_dir():
                raise FormatError(f, "empty Verilog file")
            continue  # an empty file in a folder adds nothing
        texts.append(_Source(rel, lines, origin))
        chunks += _split_source(texts[-1], search, level, max_chars, p)
    if not chunks:
        chunks = [c for src in texts for c in _text_chunks(src, max_chars)]
    if not chunks:
        raise FormatError(p, "no Verilog code (empty, or only comments and blank lines)")
    return chunks


def split_verilog_text(
    text: str, level: str = "statement", max_chars: int | None = 2000, name: str = "<text>"
) -> list[Chunk]:
    """:func:`split_verilog` of in-memory source (no ``include`` resolution)."""
    if level not in LEVELS:
        raise ValueError(f"level must be one of {LEVELS}, got {level!r}")
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    if not any(line.strip() for line in lines):
        raise FormatError(None, f"{name}: empty Verilog text")
    src = _Source(name, lines, [(name, k) for k in range(1, len(lines) + 1)])
    chunks = _split_source(src, [], level, max_chars, Path(name)) or _text_chunks(src, max_chars)
    if not chunks:
        raise FormatError(None, f"{name}: no Verilog code (only comments or blank lines)")
    return chunks
