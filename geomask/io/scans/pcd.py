"""PCD point clouds (Point Cloud Library): ``DATA ascii``, ``binary`` and ``binary_compressed``.

The header's ``FIELDS / SIZE / TYPE / COUNT`` build a structured dtype; ``binary`` is one
``np.frombuffer`` over it, ``ascii`` one ``np.loadtxt``; ``binary_compressed`` is LZF-decompressed by a
small numba kernel and holds each field as a contiguous column.  Packed ``rgb`` / ``rgba`` fields (a
float32 or uint32 holding 0x00RRGGBB) become colours in ``[0, 1]``; ``normal_x..z`` normals;
``intensity``; ``label`` / ``object`` semantic ids; ``instance`` ids.  Organized clouds keep NaN for
missing returns: read them with ``drop_invalid=True``.
"""

from __future__ import annotations

from pathlib import Path

import numba
import numpy as np

from geomask.errors import FormatError
from geomask.io.scans.scan import Scan

__all__ = ["read_pcd", "lzf_decompress"]

_KINDS = {"I": "i", "U": "u", "F": "f"}
_KEYS = ("VERSION", "FIELDS", "SIZE", "TYPE", "COUNT", "WIDTH", "HEIGHT", "VIEWPOINT", "POINTS", "DATA")


@numba.njit(cache=True)
def _lzf(src, out):  # pragma: no cover - numba
    """LZF-decompress ``src`` into ``out``; returns bytes written, or -1 on corrupt input."""
    ip, op, n, m = 0, 0, len(src), len(out)
    while ip < n:
        ctrl = src[ip]
        ip += 1
        if ctrl < 32:  # literal run of ctrl + 1 bytes
            length = ctrl + 1
            if ip + length > n or op + length > m:
                return -1
            for k in range(length):
                out[op + k] = src[ip + k]
            ip += length
            op += length
        else:  # back reference
            length = ctrl >> 5
            if length == 7:
                if ip >= n:
                    return -1
                length += src[ip]
                ip += 1
            if ip >= n:
                return -1
            ref = op - ((ctrl & 0x1F) << 8) - src[ip] - 1
            ip += 1
            length += 2
            if ref < 0 or op + length > m:
                return -1
            for k in range(length):  # byte by byte: the reference may overlap the output
                out[op + k] = out[ref + k]
            op += length
    return op


def lzf_decompress(data: bytes, size: int) -> bytes | None:
    """Decompress LZF ``data`` into exactly ``size`` bytes; ``None`` when it is corrupt or has another size."""
    out = np.empty(size, dtype=np.uint8)
    written = _lzf(np.frombuffer(data, dtype=np.uint8), out)
    return out.tobytes() if written == size else None


def _header(path: Path, data: bytes) -> tuple[dict[str, list[str]], int, int]:
    """Returns (header fields, body offset, header line count)."""
    head: dict[str, list[str]] = {}
    pos, line = 0, 0
    while "DATA" not in head:
        nl = data.find(b"\n", pos)
        if nl < 0:
            raise FormatError(path, "PCD header has no DATA line", line=line + 1)
        line += 1
        text = data[pos:nl].decode("ascii", errors="replace").strip()
        pos = nl + 1
        if not text or text.startswith("#"):
            continue
        words = text.split()
        if words[0].upper() not in _KEYS:
            raise FormatError(path, f"unexpected PCD header line {text!r}", line=line)
        head[words[0].upper()] = words[1:]
    return head, pos, line


def _dtype(path: Path, head: dict[str, list[str]]) -> tuple[np.dtype, list[str], list[int]]:
    fields = head.get("FIELDS")
    if not fields:
        raise FormatError(path, "PCD header has no FIELDS")
    sizes, types = head.get("SIZE", []), head.get("TYPE", [])
    counts = head.get("COUNT", ["1"] * len(fields))
    if not (len(sizes) == len(types) == len(counts) == len(fields)):
        raise FormatError(path, "PCD header's FIELDS, SIZE, TYPE and COUNT have different lengths")
    parts = []
    try:
        for i, (name, s, t, c) in enumerate(zip(fields, sizes, types, counts)):
            base = np.dtype(f"<{_KINDS[t.upper()]}{int(s)}")
            name = name if name != "_" else f"_pad{i}"
            parts.append((name, base, (int(c),)) if int(c) > 1 else (name, base))
    except (KeyError, TypeError, ValueError):
        raise FormatError(path, f"bad PCD field types (SIZE {sizes}, TYPE {types}, COUNT {counts})") from None
    return np.dtype(parts), [p[0] for p in parts], [int(c) for c in counts]


def _unpack_rgb(values: np.ndarray) -> np.ndarray:
    packed = np.ascontiguousarray(values).view(np.uint32)
    rgb = np.stack([(packed >> 16) & 0xFF, (packed >> 8) & 0xFF, packed & 0xFF], axis=1)
    return rgb.astype(np.float32) / np.float32(255)


def read_pcd(path: str | Path, *, drop_invalid: bool = False) -> Scan:
    """Read a PCD file (ascii, binary or binary_compressed) as a :class:`Scan`.

    Raises:
        FormatError: bad header, a body shorter or longer than ``POINTS`` records, corrupt compressed
            data, no ``x y z`` fields, non-finite coordinates, no points.
    """
    path = Path(path)
    data = path.read_bytes()
    head, body, header_lines = _header(path, data)
    dtype, names, counts = _dtype(path, head)
    try:
        n = int(head["POINTS"][0]) if "POINTS" in head else int(head["WIDTH"][0]) * int(head["HEIGHT"][0])
    except (KeyError, IndexError, ValueError):
        raise FormatError(path, "PCD header has no valid POINTS (or WIDTH and HEIGHT)") from None
    mode = (head["DATA"] or ["?"])[0].lower()
    if mode == "binary":
        need = n * dtype.itemsize
        if len(data) - body < need:
            raise FormatError(
                path,
                f"PCD header declares {n} points ({need} bytes) but the body has only {len(data) - body} bytes "
                "(truncated)",
                offset=len(data),
            )
        table = np.frombuffer(data, dtype=dtype, count=n, offset=body)
    elif mode == "binary_compressed":
        if len(data) - body < 8:
            raise FormatError(path, "PCD compressed body is truncated (no size words)", offset=len(data))
        csize, usize = (int(v) for v in np.frombuffer(data, dtype="<u4", count=2, offset=body))
        if usize != n * dtype.itemsize or len(data) - body - 8 < csize:
            raise FormatError(
                path,
                f"PCD compressed body declares {csize} -> {usize} bytes but the file has {len(data) - body - 8} "
                f"and {n} points need {n * dtype.itemsize} (truncated or header disagrees with body)",
                offset=body,
            )
        raw = lzf_decompress(data[body + 8 : body + 8 + csize], usize)
        if raw is None:
            raise FormatError(path, "PCD compressed body is corrupt (LZF data does not decompress)", offset=body + 8)
        table = np.empty(n, dtype=dtype)
        pos = 0
        for name in names:  # column-major: every field's values are contiguous
            fd = dtype.fields[name][0]
            width = fd.itemsize // fd.base.itemsize
            column = np.frombuffer(raw, dtype=fd.base, count=n * width, offset=pos)
            table[name] = column.reshape(table[name].shape)
            pos += n * fd.itemsize
    elif mode == "ascii":
        rows = data[body:].decode("ascii", errors="replace").splitlines()
        rows = [r for r in rows if r.strip()]
        if len(rows) != n:
            raise FormatError(
                path, f"PCD header declares {n} points but the body has {len(rows)} lines", line=header_lines
            )
        try:
            flat = np.loadtxt(rows, dtype=np.float64, ndmin=2)
        except ValueError as e:
            raise FormatError(path, f"bad PCD data line ({' '.join(str(e).split())})") from None
        if n and flat.shape[1] != sum(counts):
            raise FormatError(path, f"PCD data lines have {flat.shape[1]} values, the header declares {sum(counts)}")
        table = np.empty(n, dtype=dtype)
        col = 0
        for name, c in zip(names, counts):
            fd = dtype.fields[name][0]
            chunk = flat[:, col : col + c].reshape(table[name].shape)
            if name.lower() in ("rgb", "rgba") and fd.base.kind == "f":  # packed float rgb printed as a float
                table[name] = chunk.astype(np.float32)
            else:
                table[name] = chunk.astype(fd.base)
            col += c
    else:
        raise FormatError(path, f"unknown PCD DATA mode {mode!r}")
    lower = {name.lower(): name for name in names}
    if not all(k in lower for k in "xyz"):
        raise FormatError(path, f"PCD has no x, y, z fields (have {', '.join(names)})")

    def col(*keys: str) -> np.ndarray:
        return np.stack([table[lower[k]] for k in keys], axis=1)

    rgb = next((lower[k] for k in ("rgb", "rgba") if k in lower), None)
    has_n = all(f"normal_{a}" in lower for a in "xyz")
    lab = next((lower[k] for k in ("label", "semantic", "class", "object") if k in lower), None)
    ins = next((lower[k] for k in ("instance", "instance_id") if k in lower), None)
    return Scan.build(
        drop_invalid=drop_invalid,
        points=col("x", "y", "z").astype(np.float32),
        colors=None if rgb is None else _unpack_rgb(table[rgb]),
        normals=col("normal_x", "normal_y", "normal_z").astype(np.float32) if has_n else None,
        intensity=table[lower["intensity"]].astype(np.float32) if "intensity" in lower else None,
        labels=None if lab is None else table[lab].astype(np.int64),
        instances=None if ins is None else table[ins].astype(np.int64),
        path=str(path),
        format="pcd",
    )
