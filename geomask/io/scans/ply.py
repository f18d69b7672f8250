"""PLY point clouds and meshes: ASCII, binary little and big endian (faces are ignored).

The vertex element is read with one ``np.frombuffer`` over a structured dtype built from the header
(binary) or one ``np.loadtxt`` (ASCII).  The body is checked against the header: a binary file must
hold exactly the bytes its elements declare (list elements such as faces are walked by a small numba
kernel to find their end), an ASCII file exactly one line per element.

Vertex properties used: ``x y z``; colours ``red green blue`` (or ``r g b``, ``diffuse_red``...);
normals ``nx ny nz`` (or ``normal_x``...); ``intensity``; semantic labels ``label`` / ``class`` /
``semantic`` / ``classification``...; instances ``instance`` / ``instance_id`` / ``objectId``.
Other properties (alpha, confidence, texture coordinates) are ignored.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numba
import numpy as np

from geomask.errors import FormatError
from geomask.io.scans.scan import Scan, colors_to_unit

__all__ = ["read_ply"]

_TYPES = {
    "char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1",
    "short": "i2", "int16": "i2", "ushort": "u2", "uint16": "u2",
    "int": "i4", "int32": "i4", "uint": "u4", "uint32": "u4",
    "float": "f4", "float32": "f4", "double": "f8", "float64": "f8",
}  # fmt: skip

_COLOR = (("red", "green", "blue"), ("r", "g", "b"), ("diffuse_red", "diffuse_green", "diffuse_blue"))
_NORMAL = (("nx", "ny", "nz"), ("normal_x", "normal_y", "normal_z"))
_LABEL = ("label", "class", "semantic", "semantic_label", "scalar_label", "classification", "category_id", "class_id")
_INSTANCE = ("instance", "instance_id", "instance_label", "objectid", "object_id")
_INTENSITY = ("intensity", "scalar_intensity", "reflectance")


@dataclass
class _Element:
    name: str
    count: int
    props: list[tuple[str, str, str | None]] = field(default_factory=list)  # (name, dtype, list count dtype)

    @property
    def has_lists(self) -> bool:
        return any(p[2] is not None for p in self.props)


def _parse_header(path: Path, data: bytes) -> tuple[str, list[_Element], int, int]:
    """Returns (format, elements, body offset, header line count)."""
    if not data.startswith(b"ply"):
        raise FormatError(path, "not a PLY file (no 'ply' magic)", offset=0)
    end = data.find(b"end_header")
    if end < 0:
        raise FormatError(path, "PLY header has no 'end_header'")
    nl = data.find(b"\n", end)
    body = len(data) if nl < 0 else nl + 1
    lines = data[:end].decode("ascii", errors="replace").splitlines()
    fmt, elements = None, []
    for i, raw in enumerate(lines[1:], start=2):
        words = raw.split()
        if not words or words[0] in ("comment", "obj_info"):
            continue
        try:
            if words[0] == "format":
                fmt = words[1]
                if fmt not in ("ascii", "binary_little_endian", "binary_big_endian"):
                    raise FormatError(path, f"unknown PLY format {fmt!r}", line=i)
            elif words[0] == "element":
                count = int(words[2])
                if count < 0:
                    raise ValueError
                elements.append(_Element(words[1], count))
            elif words[0] == "property":
                if not elements:
                    raise FormatError(path, "PLY property before any element", line=i)
                if words[1] == "list":
                    elements[-1].props.append((words[4], _TYPES[words[3]], _TYPES[words[2]]))
                else:
                    elements[-1].props.append((words[2], _TYPES[words[1]], None))
            else:
                raise FormatError(path, f"unexpected PLY header line {raw.strip()!r}", line=i)
        except FormatError:
            raise
        except (IndexError, KeyError, ValueError):
            raise FormatError(path, f"bad PLY header line {raw.strip()!r}", line=i) from None
    if fmt is None:
        raise FormatError(path, "PLY header has no 'format' line")
    return fmt, elements, body, len(lines) + 1


@numba.njit(cache=True)
def _walk_lists(buf, start, count, sizes, count_sizes, big_endian):  # pragma: no cover - numba
    """Byte offset just past ``count`` records whose properties have fixed ``sizes`` or are lists.

    ``count_sizes[j] > 0`` marks property ``j`` as a list whose length is an unsigned integer of that
    many bytes followed by that many items of ``sizes[j]`` bytes.  Returns -1 when the buffer ends first.
    """
    pos = start
    n = len(buf)
    for _ in range(count):
        for j in range(len(sizes)):
            cs = count_sizes[j]
            if cs == 0:
                pos += sizes[j]
            else:
                if pos + cs > n:
                    return -1
                k = 0
                for b in range(cs):
                    byte = buf[pos + b] if big_endian else buf[pos + cs - 1 - b]
                    k = (k << 8) | byte
                pos += cs + k * sizes[j]
            if pos > n:
                return -1
    return pos


def _binary_end(path: Path, buf: np.ndarray, start: int, el: _Element, endian: str) -> int:
    """Byte offset where element ``el`` ends, or FormatError when the body is too short."""
    if not el.has_lists:
        size = el.count * int(sum(np.dtype(p[1]).itemsize for p in el.props))
        end = start + size
    else:
        sizes = np.array([np.dtype(p[1]).itemsize for p in el.props], dtype=np.int64)
        csizes = np.array([0 if p[2] is None else np.dtype(p[2]).itemsize for p in el.props], dtype=np.int64)
        for p in el.props:
            if p[2] is not None and np.dtype(p[2]).kind == "f":
                raise FormatError(path, f"PLY list property {p[0]!r} has a float count type")
        end = int(_walk_lists(buf, start, el.count, sizes, csizes, endian == ">"))
    if end < 0 or end > len(buf):
        raise FormatError(
            path,
            f"PLY header declares {el.count} '{el.name}' elements but the file ends first "
            f"(body holds {len(buf) - start} of the bytes they need): truncated or header disagrees with body",
            offset=len(buf),
        )
    return end


def _read_binary(path: Path, data: bytes, elements: list[_Element], body: int, endian: str) -> np.ndarray:
    buf = np.frombuffer(data, dtype=np.uint8)
    pos, vertices = body, None
    for el in elements:
        end = _binary_end(path, buf, pos, el, endian)
        if el.name == "vertex":
            if el.has_lists:
                raise FormatError(path, "PLY vertex element with list properties is not supported")
            dtype = np.dtype([(name, endian + t) for name, t, _ in el.props])
            vertices = np.frombuffer(data, dtype=dtype, count=el.count, offset=pos)
        pos = end
    if pos != len(buf):
        raise FormatError(
            path,
            f"PLY body has {len(buf) - pos} bytes beyond the elements its header declares (header disagrees with body)",
            offset=pos,
        )
    return vertices


def _read_ascii(path: Path, data: bytes, elements: list[_Element], body: int, header_lines: int) -> np.ndarray:
    lines = data[body:].splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    want = sum(el.count for el in elements)
    if len(lines) != want:
        counts = ", ".join(f"{el.count} {el.name}" for el in elements)
        raise FormatError(
            path, f"PLY header declares {counts} ({want} lines) but the body has {len(lines)} lines", line=header_lines
        )
    first, vertices = 0, None
    for el in elements:
        if el.name == "vertex":
            if el.has_lists:
                raise FormatError(path, "PLY vertex element with list properties is not supported")
            rows = [s.decode("ascii", errors="replace") for s in lines[first : first + el.count]]
            try:
                table = np.loadtxt(rows, dtype=np.float64, ndmin=2)
            except ValueError as e:
                raise FormatError(path, f"bad PLY vertex line ({' '.join(str(e).split())})") from None
            if table.shape != (el.count, len(el.props)):
                raise FormatError(
                    path,
                    f"PLY vertex lines have {table.shape[1] if table.ndim == 2 else 0} values, "
                    f"the header declares {len(el.props)} properties",
                    line=header_lines + first + 1,
                )
            dtype = np.dtype([(name, t) for name, t, _ in el.props])
            vertices = np.empty(el.count, dtype=dtype)
            for j, (name, _, _) in enumerate(el.props):
                vertices[name] = table[:, j]
        first += el.count
    return vertices


def _pick(names: set[str], options) -> str | None:
    for o in options:
        if o in names:
            return o
    return None


def read_ply(path: str | Path, *, drop_invalid: bool = False) -> Scan:
    """Read the vertices of a PLY file (ASCII or binary) as a :class:`Scan`.

    Raises:
        FormatError: bad header, no vertex element or no ``x y z``, a body that disagrees with the header
            (truncated, too long, wrong number of values on a line), non-finite coordinates, no points.
    """
    path = Path(path)
    data = path.read_bytes()
    fmt, elements, body, header_lines = _parse_header(path, data)
    if not any(el.name == "vertex" for el in elements):
        raise FormatError(path, "PLY file has no 'vertex' element")
    if fmt == "ascii":
        v = _read_ascii(path, data, elements, body, header_lines)
    else:
        v = _read_binary(path, data, elements, body, "<" if fmt == "binary_little_endian" else ">")
    names = {n.lower(): n for n in v.dtype.names}
    if not all(k in names for k in "xyz"):
        raise FormatError(path, f"PLY vertices have no x, y, z properties (have {', '.join(v.dtype.names)})")

    def column(*keys: str) -> np.ndarray:
        return np.stack([v[names[k]] for k in keys], axis=1)

    rgb = next((c for c in _COLOR if all(k in names for k in c)), None)
    nrm = next((c for c in _NORMAL if all(k in names for k in c)), None)
    lab, ins, inten = _pick(set(names), _LABEL), _pick(set(names), _INSTANCE), _pick(set(names), _INTENSITY)
    return Scan.build(
        drop_invalid=drop_invalid,
        points=column("x", "y", "z").astype(np.float32),
        colors=None if rgb is None else colors_to_unit(column(*rgb), path),
        normals=None if nrm is None else column(*nrm).astype(np.float32),
        intensity=None if inten is None else v[names[inten]].astype(np.float32),
        labels=None if lab is None else v[names[lab]].astype(np.int64),
        instances=None if ins is None else v[names[ins]].astype(np.int64),
        path=str(path),
        format="ply",
    )
