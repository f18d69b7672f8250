"""AIGER 1.9 reader and writer, ASCII (``.aag``) and binary (``.aig``).

Reading returns an :class:`~geomask.io.aig.AIG` in canonical numbering (inputs, latches, then ANDs in
topological order).  Binary files are canonical by definition and are decoded without a Python loop per
gate: the delta-encoded ANDs are split at their terminator bytes and summed with ``np.add.reduceat``.
ASCII files may list variables in any order; they are validated (each variable defined once, literals in
range, no combinational cycle) and renumbered only when not already canonical, so for canonical files
``write(read(f))`` reproduces ``f``.

Every problem with a file raises :class:`~geomask.errors.FormatError` naming the file, and the line or
byte offset where it was found.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from geomask.errors import FormatError
from geomask.io.aig import AIG
from geomask.io.atomic import atomic_write_bytes
from geomask.ops.dag import topological_order

__all__ = ["read_aiger", "read_aiger_bytes", "write_aiger", "aiger_bytes"]

_MAX_VARINT_BYTES = 9  # 63 bits: far beyond any real literal, and safe in int64


class _Lines:
    """Cursor over the newline-separated header sections of an AIGER file."""

    def __init__(self, data: bytes, path: str | None, start: int = 0) -> None:
        self.data = data
        self.path = path
        self.pos = start
        self.lineno = data.count(b"\n", 0, start) + 1
        self._newlines: np.ndarray | None = None

    def take(self, n: int, what: str) -> list[bytes]:
        """The next ``n`` lines (without the newline)."""
        if n == 0:
            return []
        out = []
        data, pos = self.data, self.pos
        for _ in range(n):  # per section line (ports, latches), never per gate in binary files
            end = data.find(b"\n", pos)
            if end < 0:
                if pos >= len(data):
                    raise FormatError(self.path, f"truncated: file ends inside the {what} section", line=self.lineno)
                end = len(data)
            out.append(data[pos:end])
            pos = end + 1
            self.lineno += 1
        self.pos = pos
        return out

    def take_block(self, n: int, what: str) -> bytes:
        """The next ``n`` lines as one block of bytes (fast path for big sections)."""
        if n == 0:
            return b""
        data = self.data
        pos = self.pos
        if pos >= len(data):
            raise FormatError(self.path, f"truncated: file ends before the {what} section", line=self.lineno)
        if self._newlines is None:  # found once per file, shared by every section
            self._newlines = np.flatnonzero(np.frombuffer(data, dtype=np.uint8) == 10)
        nl = self._newlines
        k = int(np.searchsorted(nl, pos))
        if len(nl) - k < n:
            if len(nl) - k == n - 1 and data[-1:] != b"\n":
                end = len(data)
            else:
                raise FormatError(self.path, f"truncated: file ends inside the {what} section", line=self.lineno)
        else:
            end = int(nl[k + n - 1])
        block = data[pos:end]
        self.pos = end + 1
        self.lineno += n
        return block


def _ints(tokens: list[bytes] | bytes, path: str | None, what: str, line: int) -> np.ndarray:
    if isinstance(tokens, bytes):
        tokens = tokens.split()
    if not tokens:
        return np.zeros(0, dtype=np.int64)
    try:
        arr = np.array(tokens)
        if arr.dtype.kind != "S" or not bool(np.all(np.char.isdigit(arr))):
            raise ValueError
        return arr.astype(np.int64)
    except (ValueError, OverflowError):
        bad = next((t for t in tokens if not t.isdigit()), tokens[0])
        raise FormatError(path, f"{what}: expected an unsigned integer, found {bad[:20]!r}", line=line) from None


def _parse_header(data: bytes, path: str | None) -> tuple[str, list[int], int]:
    if not data:
        raise FormatError(path, "empty file")
    end = data.find(b"\n")
    head = data[: end if end >= 0 else len(data)]
    parts = head.split()
    if not parts or parts[0] not in (b"aag", b"aig"):
        raise FormatError(path, "not an AIGER file: the header must start with 'aag' or 'aig'", line=1)
    kind = parts[0].decode()
    if not 6 <= len(parts) <= 10:
        raise FormatError(path, f"header has {len(parts) - 1} numbers, expected 5 to 9 (M I L O A [B C J F])", line=1)
    nums = _ints(parts[1:], path, "header", 1).tolist()
    nums += [0] * (9 - len(nums))
    if end < 0:
        end = len(data)
    return kind, nums, end + 1


def _check_lits(lits: np.ndarray, max_lit: int, path: str | None, what: str, line: int) -> None:
    if lits.size and int(lits.max()) > max_lit:
        k = int(np.argmax(lits > max_lit))
        raise FormatError(path, f"{what}: literal {int(lits.flat[k])} exceeds 2*M+1 = {max_lit}", line=line)


def _decode_varints(data: bytes, start: int, count: int, path: str | None) -> tuple[np.ndarray, int]:
    """Decode ``count`` LEB128-style unsigned varints starting at ``start``; returns (values, end offset)."""
    if count == 0:
        return np.zeros(0, dtype=np.int64), start
    if start >= len(data):
        raise FormatError(path, f"truncated: the binary AND section ({count // 2} ANDs) is missing", offset=start)
    buf = np.frombuffer(data, dtype=np.uint8, offset=start)
    # A varint ends at the first byte with the high bit clear.  Each varint is at least one byte, and at most
    # _MAX_VARINT_BYTES, so the first `count` terminators lie within count * _MAX_VARINT_BYTES bytes.
    window = buf[: count * _MAX_VARINT_BYTES]
    ends = np.flatnonzero(window < 128)[:count]
    if len(ends) < count:
        raise FormatError(
            path,
            f"truncated: the binary AND section needs {count // 2} ANDs but the file ends after {len(ends) // 2}",
            offset=len(data),
        )
    starts = np.empty(count, dtype=np.int64)
    starts[0] = 0
    starts[1:] = ends[:-1] + 1
    lengths = ends - starts + 1
    if int(lengths.max()) > _MAX_VARINT_BYTES:
        k = int(np.argmax(lengths > _MAX_VARINT_BYTES))
        raise FormatError(path, "binary AND section: delta too long (corrupt data)", offset=start + int(starts[k]))
    n = int(ends[-1]) + 1
    body = buf[:n].astype(np.uint64) & np.uint64(0x7F)
    pos_in = np.arange(n, dtype=np.int64) - np.repeat(starts, lengths)
    body <<= (7 * pos_in).astype(np.uint64)
    values = np.add.reduceat(body, starts).astype(np.int64)
    return values, start + n


_SYMBOL = re.compile(rb"([ilobcjf])(\d+) ([^\n]*)\n")
_KIND = {b"i": "input", b"l": "latch", b"o": "output", b"b": "bad", b"c": "constraint"}


def _parse_symbols(
    data: bytes, pos: int, aig_sizes: dict[str, int], path: str | None, line: int
) -> tuple[dict[str, list[str]], list[str]]:
    names: dict[str, list[str]] = {k: [""] * n for k, n in aig_sizes.items()}
    comments: list[str] = []
    text = data[pos:]
    if not text:
        return names, comments
    m = re.search(rb"(?m)^c\r?$", text)
    symtext = text if m is None else text[: m.start()]
    if m is not None:
        comments = text[m.end() + 1 :].decode("utf-8", "replace").split("\n")
        while comments and comments[-1] == "":
            comments.pop()
    if symtext and not symtext.endswith(b"\n"):
        symtext += b"\n"
    pos = 0
    for mm in _SYMBOL.finditer(symtext):  # one match per named port or latch, never per gate
        if mm.start() != pos:
            break
        pos = mm.end()
        key = _KIND.get(mm[1])
        if key is None:  # justice / fairness names are accepted and dropped
            continue
        idx = int(mm[2])
        if idx >= len(names[key]):
            ln = line + symtext.count(b"\n", 0, mm.start())
            raise FormatError(path, f"symbol for {key} {idx} but the header declares {len(names[key])}", line=ln)
        names[key][idx] = mm[3].decode("utf-8", "replace")
    if pos != len(symtext) and symtext[pos:].strip():
        ln = line + symtext.count(b"\n", 0, pos)
        bad = symtext[pos : pos + 40].split(b"\n")[0]
        raise FormatError(path, f"bad symbol table entry {bad!r}", line=ln)
    return names, comments


def read_aiger_bytes(data: bytes, path: str | Path | None = None) -> AIG:
    """Parse AIGER (ASCII or binary) from bytes.

    Args:
        data: the file's content.
        path: the file name used in error messages and as the AIG's name.

    Returns:
        The canonical :class:`AIG`.

    Raises:
        FormatError: anything wrong with the content, naming ``path`` and the line or byte offset.
    """
    p = None if path is None else str(path)
    kind, (M, I, L, O, A, B, C, J, F), start = _parse_header(data, p)
    max_lit = 2 * M + 1
    if kind == "aig" and M != I + L + A:
        raise FormatError(p, f"header: binary AIGER needs M = I + L + A, got M={M}, I+L+A={I + L + A}", line=1)
    if I + L + A > M:
        raise FormatError(p, f"header: I + L + A = {I + L + A} exceeds M = {M}", line=1)
    cur = _Lines(data, p, start)

    if kind == "aag":
        in_line = cur.lineno
        inputs = _ints(cur.take_block(I, "input"), p, "input", in_line)
        if len(inputs) != I:
            raise FormatError(p, f"input section: expected {I} literals, found {len(inputs)}", line=in_line)
    else:
        inputs = 2 * np.arange(1, I + 1, dtype=np.int64)

    latch_line = cur.lineno
    latch_rows = cur.take(L, "latch")
    width = 3 if kind == "aag" else 2
    latches = np.zeros((L, 3), dtype=np.int64)
    latches[:, 0] = 2 * np.arange(I + 1, I + L + 1)
    for j, row in enumerate(latch_rows):  # one per latch
        vals = _ints(row, p, "latch", latch_line + j)
        if not width - 1 <= len(vals) <= width:
            raise FormatError(p, f"latch line has {len(vals)} numbers", line=latch_line + j)
        off = 3 - width
        latches[j, off : off + len(vals)] = vals
        if len(vals) == width - 1:
            latches[j, 2] = 0
    _check_lits(latches[:, :2], max_lit, p, "latch", latch_line)

    def section(n: int, what: str) -> np.ndarray:
        line = cur.lineno
        vals = _ints(cur.take_block(n, what), p, what, line)
        if len(vals) != n:
            raise FormatError(p, f"{what} section: expected {n} literals, found {len(vals)}", line=line)
        _check_lits(vals, max_lit, p, what, line)
        return vals

    outputs = section(O, "output")
    bad = section(B, "bad")
    constraints = section(C, "constraint")
    sizes = section(J, "justice size")
    justice = [section(int(s), "justice") for s in sizes]
    fairness = section(F, "fairness")

    if kind == "aig":
        deltas, end = _decode_varints(data, cur.pos, 2 * A, p)
        lhs = 2 * np.arange(I + L + 1, I + L + A + 1, dtype=np.int64)
        d = deltas.reshape(A, 2)
        rhs0 = lhs - d[:, 0]
        rhs1 = rhs0 - d[:, 1]
        bad_rows = (d[:, 0] <= 0) | (rhs1 < 0)
        if bool(bad_rows.any()):
            k = int(np.argmax(bad_rows))
            raise FormatError(
                p, f"binary AND {k} (literal {int(lhs[k])}): delta out of range (corrupt data)", offset=cur.pos
            )
        ands = np.stack([rhs0, rhs1], axis=1)
        sym_pos, sym_line = end, cur.lineno
        aig_latches = latches[:, 1:]
    else:
        and_line = cur.lineno
        block = cur.take_block(A, "AND")
        tokens = _ints(block, p, "AND", and_line)
        if len(tokens) != 3 * A:
            raise FormatError(
                p, f"AND section: expected {A} lines of 3 literals, found {len(tokens)} numbers", line=and_line
            )
        rows = tokens.reshape(A, 3)
        _check_lits(rows, max_lit, p, "AND", and_line)
        sym_pos, sym_line = cur.pos, cur.lineno
        inputs, latches, rows, outputs, bad, constraints, justice, fairness = _canonicalize(
            p, M, inputs, latches, rows, outputs, bad, constraints, justice, fairness, in_line, and_line
        )
        ands = rows[:, 1:]
        aig_latches = latches[:, 1:]

    names, comments = _parse_symbols(
        data, sym_pos, {"input": I, "latch": L, "output": O, "bad": B, "constraint": C}, p, sym_line
    )
    return AIG(
        num_inputs=I,
        ands=ands,
        outputs=outputs,
        latches=aig_latches,
        bad=bad,
        constraints=constraints,
        justice=justice,
        fairness=fairness,
        input_names=names["input"],
        latch_names=names["latch"],
        output_names=names["output"],
        bad_names=names["bad"],
        constraint_names=names["constraint"],
        comments=comments,
        name=Path(p).stem if p else "",
    )


def _canonicalize(p, M, inputs, latches, rows, outputs, bad, constraints, justice, fairness, in_line, and_line):
    """Validate an ASCII AIG's definitions and renumber it canonically when needed."""
    I, L, A = len(inputs), len(latches), len(rows)
    defs = np.concatenate([inputs, latches[:, 0], rows[:, 0]])
    def_line = np.concatenate([in_line + np.arange(I), np.full(L, -1), and_line + np.arange(A)])
    odd = (defs & 1) == 1
    if bool(odd.any()):
        k = int(np.argmax(odd))
        raise FormatError(p, f"defined literal {int(defs[k])} is negated (must be even)", line=_line(def_line, k))
    zero = defs == 0
    if bool(zero.any()):
        k = int(np.argmax(zero))
        raise FormatError(p, "the constant (literal 0) cannot be defined", line=_line(def_line, k))
    var = defs >> 1
    owner = np.full(M + 1, -1, dtype=np.int64)
    order = np.argsort(var, kind="stable")
    sv = var[order]
    dup = np.flatnonzero(sv[1:] == sv[:-1])
    if len(dup):
        k = int(order[dup[0] + 1])
        raise FormatError(
            p, f"variable {int(var[k])} (literal {int(defs[k])}) is defined twice", line=_line(def_line, k)
        )
    owner[var] = np.arange(len(var))
    # Every literal used must refer to a defined variable (or the constant).
    used = [
        (rows[:, 1:].ravel(), "AND", and_line),
        (latches[:, 1], "latch", None),
        (outputs, "output", None),
        (bad, "bad", None),
        (constraints, "constraint", None),
        (fairness, "fairness", None),
    ]
    used += [(j, "justice", None) for j in justice]
    for lits, what, line in used:
        v = lits >> 1
        undefined = (v != 0) & (owner[v] < 0)
        if bool(undefined.any()):
            k = int(np.argmax(undefined))
            ln = None if line is None else line + k // 2
            raise FormatError(p, f"{what} uses literal {int(lits[k])} whose variable is never defined", line=ln)
    resets = latches[:, 2]
    bad_reset = (resets != 0) & (resets != 1) & (resets != latches[:, 0])
    if bool(bad_reset.any()):
        k = int(np.argmax(bad_reset))
        raise FormatError(p, f"latch {k}: reset must be 0, 1 or the latch literal, got {int(resets[k])}")

    canonical_io = np.array_equal(defs[: I + L], 2 * np.arange(1, I + L + 1))
    own = rows[:, 0] >> 1
    fv = rows[:, 1:] >> 1
    in_order = np.array_equal(own, np.arange(I + L + 1, I + L + A + 1))
    if canonical_io and in_order and bool((fv < own[:, None]).all()):
        return inputs, latches, rows, outputs, bad, constraints, justice, fairness

    # Topological sort of the ANDs (fanins that are ANDs, as AND row indices), with cycle detection.
    and_of_var = np.full(M + 1, -1, dtype=np.int64)
    and_of_var[own] = np.arange(A)
    fan = and_of_var[fv]
    topo, cyc = topological_order(fan, np.zeros(A, dtype=bool))
    if cyc >= 0:
        raise FormatError(p, f"combinational cycle through AND literal {int(rows[cyc, 0])}", line=int(and_line + cyc))
    new_var = np.zeros(M + 1, dtype=np.int64)
    new_var[var[: I + L]] = np.arange(1, I + L + 1)
    new_var[own[topo]] = np.arange(I + L + 1, I + L + A + 1)

    def remap(lits: np.ndarray) -> np.ndarray:
        return 2 * new_var[lits >> 1] + (lits & 1)

    rows = remap(rows[topo])
    new_latches = latches.copy()
    new_latches[:, 0] = remap(latches[:, 0])
    new_latches[:, 1] = remap(latches[:, 1])
    is_self = latches[:, 2] == latches[:, 0]
    new_latches[:, 2] = np.where(is_self, new_latches[:, 0], latches[:, 2])
    return (
        2 * np.arange(1, I + 1, dtype=np.int64),
        new_latches,
        rows,
        remap(outputs),
        remap(bad),
        remap(constraints),
        [remap(j) for j in justice],
        remap(fairness),
    )


def _line(def_line: np.ndarray, k: int) -> int | None:
    v = int(def_line[k])
    return v if v >= 0 else None


def read_aiger(path: str | Path) -> AIG:
    """Read an AIGER file (``.aag`` ASCII or ``.aig`` binary; the header decides, not the suffix).

    Raises:
        FormatError: the file is missing, unreadable or malformed.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise FormatError(path, f"cannot read: {e.strerror or e}") from None
    return read_aiger_bytes(data, path)


# ---------------------------------------------------------------------------------------------------
# writing


def _encode_varints(values: np.ndarray) -> bytes:
    v = values.astype(np.uint64)
    nbytes = np.ones(len(v), dtype=np.int64)
    for k in range(1, _MAX_VARINT_BYTES + 1):  # at most 9 vectorised passes
        nbytes += (v >= np.uint64(1) << np.uint64(7 * k)).astype(np.int64)
    total = int(nbytes.sum())
    starts = np.zeros(len(v), dtype=np.int64)
    np.cumsum(nbytes[:-1], out=starts[1:])
    owner = np.repeat(np.arange(len(v)), nbytes)
    j = np.arange(total, dtype=np.int64) - starts[owner]
    byte = (v[owner] >> (7 * j).astype(np.uint64)) & np.uint64(0x7F)
    cont = j < (nbytes[owner] - 1)
    byte |= cont.astype(np.uint64) << np.uint64(7)
    return byte.astype(np.uint8).tobytes()


def _fmt_rows(arr: np.ndarray) -> bytes:
    if arr.size == 0:
        return b""
    arr = np.atleast_2d(arr) if arr.ndim == 2 else arr.reshape(-1, 1)
    line = " ".join(["%d"] * arr.shape[1]) + "\n"
    return ((line * arr.shape[0]) % tuple(arr.ravel().tolist())).encode()


def aiger_bytes(aig: AIG, binary: bool = True) -> bytes:
    """Serialise an AIG as AIGER 1.9 bytes (binary ``aig`` or ASCII ``aag``)."""
    I, L, O, A = aig.num_inputs, aig.num_latches, aig.num_outputs, aig.num_ands
    B, C, J, F = len(aig.bad), len(aig.constraints), len(aig.justice), len(aig.fairness)
    M = aig.max_var
    head = [M, I, L, O, A]
    extra = [B, C, J, F]
    while extra and extra[-1] == 0:
        extra.pop()
    parts = [(("aig " if binary else "aag ") + " ".join(map(str, head + extra)) + "\n").encode()]
    latch_lhs = 2 * np.arange(I + 1, I + L + 1, dtype=np.int64)
    if not binary:
        parts.append(_fmt_rows(2 * np.arange(1, I + 1, dtype=np.int64)))
    for j in range(L):  # one line per latch
        nxt, reset = int(aig.latches[j, 0]), int(aig.latches[j, 1])
        fields = ([] if binary else [int(latch_lhs[j])]) + [nxt] + ([reset] if reset != 0 else [])
        parts.append((" ".join(map(str, fields)) + "\n").encode())
    parts += [_fmt_rows(aig.outputs), _fmt_rows(aig.bad), _fmt_rows(aig.constraints)]
    parts.append(_fmt_rows(np.array([len(j) for j in aig.justice], dtype=np.int64)))
    parts += [_fmt_rows(j) for j in aig.justice]
    parts.append(_fmt_rows(aig.fairness))
    lhs = 2 * np.arange(aig.first_and_var, M + 1, dtype=np.int64)
    if binary:
        r0 = np.maximum(aig.ands[:, 0], aig.ands[:, 1])
        r1 = np.minimum(aig.ands[:, 0], aig.ands[:, 1])
        if A and bool((r0 >= lhs).any()):
            raise ValueError("AIG is not topologically sorted: an AND's fanin is not a smaller variable")
        parts.append(_encode_varints(np.stack([lhs - r0, r0 - r1], axis=1).ravel()))
    else:
        parts.append(_fmt_rows(np.concatenate([lhs[:, None], aig.ands], axis=1)))
    for tag, names in (
        ("i", aig.input_names),
        ("l", aig.latch_names),
        ("o", aig.output_names),
        ("b", aig.bad_names),
        ("c", aig.constraint_names),
    ):
        sym = "".join(f"{tag}{k} {n}\n" for k, n in enumerate(names) if n)
        parts.append(sym.encode())
    if aig.comments:
        parts.append(("c\n" + "".join(c + "\n" for c in aig.comments)).encode())
    return b"".join(parts)


def write_aiger(aig: AIG, path: str | Path, binary: bool | None = None) -> None:
    """Write an AIG as AIGER; ``.aag`` writes ASCII, anything else binary (unless ``binary`` says).

    The file is written to a temporary name and renamed into place.
    """
    path = Path(path)
    if binary is None:
        binary = path.suffix.lower() != ".aag"
    atomic_write_bytes(path, aiger_bytes(aig, binary=binary))
