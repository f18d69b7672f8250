"""PLY reader: ascii and binary (both endians) against values written here, and every kind of bad body."""

from __future__ import annotations

import numpy as np
import pytest

from geomask.errors import FormatError
from geomask.io.scans import read_scan
from geomask.io.scans.ply import read_ply

RNG = np.random.default_rng(0)
XYZ = RNG.normal(size=(7, 3)).astype(np.float32)
RGB = RNG.integers(0, 256, size=(7, 3)).astype(np.uint8)
NRM = RNG.normal(size=(7, 3)).astype(np.float32)
LAB = RNG.integers(0, 40, size=7).astype(np.int32)
FACES = [[0, 1, 2], [2, 3, 4, 5], [4, 5, 6]]

HEADER = """ply
format {fmt} 1.0
comment written by a test
element vertex {n}
property float x
property float y
property float z
property uchar red
property uchar green
property uchar blue
property float nx
property float ny
property float nz
property int label
element face {f}
property list uchar int vertex_indices
end_header
"""


def vertex_table(xyz=XYZ, endian="<"):
    dtype = np.dtype(
        [(k, endian + "f4") for k in "xyz"]
        + [(k, "u1") for k in ("red", "green", "blue")]
        + [(k, endian + "f4") for k in ("nx", "ny", "nz")]
        + [("label", endian + "i4")]
    )
    v = np.empty(len(xyz), dtype=dtype)
    for j, k in enumerate("xyz"):
        v[k] = xyz[:, j]
    for j, k in enumerate(("red", "green", "blue")):
        v[k] = RGB[: len(xyz), j]
    for j, k in enumerate(("nx", "ny", "nz")):
        v[k] = NRM[: len(xyz), j]
    v["label"] = LAB[: len(xyz)]
    return v


def write_binary(path, endian="<", n=None, xyz=XYZ, faces=FACES, extra=b""):
    fmt = "binary_little_endian" if endian == "<" else "binary_big_endian"
    body = vertex_table(xyz, endian).tobytes()
    for f in faces:
        body += np.uint8(len(f)).tobytes() + np.asarray(f, dtype=endian + "i4").tobytes()
    head = HEADER.format(fmt=fmt, n=len(xyz) if n is None else n, f=len(faces)).encode()
    path.write_bytes(head + body + extra)
    return path


def write_ascii(path, n=None, xyz=XYZ, faces=FACES, drop_last_value=False):
    lines = []
    for i in range(len(xyz)):
        vals = [*map(repr, xyz[i].tolist()), *map(str, RGB[i]), *map(repr, NRM[i].tolist()), str(LAB[i])]
        if drop_last_value and i == 3:
            vals = vals[:-1]
        lines.append(" ".join(vals))
    lines += [" ".join(map(str, [len(f), *f])) for f in faces]
    head = HEADER.format(fmt="ascii", n=len(xyz) if n is None else n, f=len(faces))
    path.write_text(head + "\n".join(lines) + "\n")
    return path


def check_values(scan):
    np.testing.assert_array_equal(scan.points, XYZ)
    np.testing.assert_allclose(scan.colors, RGB / 255.0, atol=1e-7)
    np.testing.assert_array_equal(scan.normals, NRM)
    np.testing.assert_array_equal(scan.labels, LAB.astype(np.int64))
    assert scan.labels.dtype == np.int64 and scan.points.dtype == np.float32
    assert scan.format == "ply"


@pytest.mark.parametrize("endian", ["<", ">"])
def test_binary_endians(tmp_path, endian):
    check_values(read_scan(write_binary(tmp_path / "a.ply", endian)))


def test_ascii(tmp_path):
    check_values(read_scan(write_ascii(tmp_path / "a.ply")))


def test_binary_without_faces_and_extra_scalar_element(tmp_path):
    head = "ply\nformat binary_little_endian 1.0\nelement vertex 7\nproperty double x\nproperty double y\n"
    head += "property double z\nproperty float intensity\nelement camera 1\nproperty float view\nend_header\n"
    v = np.empty(7, dtype=[("x", "<f8"), ("y", "<f8"), ("z", "<f8"), ("intensity", "<f4")])
    for j, k in enumerate("xyz"):
        v[k] = XYZ[:, j]
    v["intensity"] = np.arange(7)
    path = tmp_path / "b.ply"
    path.write_bytes(head.encode() + v.tobytes() + np.float32(1).tobytes())
    scan = read_ply(path)
    np.testing.assert_array_equal(scan.points, XYZ)
    np.testing.assert_array_equal(scan.intensity, np.arange(7, dtype=np.float32))
    assert scan.colors is None and scan.labels is None


def test_truncated_binary(tmp_path):
    path = write_binary(tmp_path / "t.ply")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 60])  # cut inside the vertices' end / faces
    with pytest.raises(FormatError, match=r"t\.ply.*file ends first"):
        read_ply(path)


def test_header_declares_more_vertices_than_body(tmp_path):
    path = write_binary(tmp_path / "more.ply", n=9, faces=[])
    with pytest.raises(FormatError, match=r"more\.ply.*9 'vertex'"):
        read_ply(path)


def test_header_declares_fewer_vertices_than_body(tmp_path):
    path = write_binary(tmp_path / "fewer.ply", n=5, faces=[])
    with pytest.raises(FormatError, match=r"fewer\.ply.*beyond the elements"):
        read_ply(path)


def test_binary_with_trailing_garbage(tmp_path):
    with pytest.raises(FormatError, match="beyond the elements"):
        read_ply(write_binary(tmp_path / "g.ply", extra=b"\0" * 3))


def test_ascii_header_disagrees_with_body(tmp_path):
    with pytest.raises(FormatError, match=r"a\.ply.*declares 9 vertex"):
        read_ply(write_ascii(tmp_path / "a.ply", n=9))


def test_ascii_short_line(tmp_path):
    with pytest.raises(FormatError, match=r"s\.ply"):
        read_ply(write_ascii(tmp_path / "s.ply", drop_last_value=True))


def test_nan_coordinates_raise_or_drop(tmp_path):
    xyz = XYZ.copy()
    xyz[2, 1] = np.nan
    xyz[5, 0] = np.inf
    path = write_binary(tmp_path / "nan.ply", xyz=xyz)
    with pytest.raises(FormatError, match=r"nan\.ply: 2 of 7 points have NaN or infinite.*point 2"):
        read_scan(path)
    scan = read_scan(path, drop_invalid=True)
    keep = [0, 1, 3, 4, 6]
    np.testing.assert_array_equal(scan.points, XYZ[keep])
    np.testing.assert_array_equal(scan.labels, LAB[keep])


def test_empty_cloud(tmp_path):
    with pytest.raises(FormatError, match=r"e\.ply: the cloud is empty"):
        read_ply(write_binary(tmp_path / "e.ply", xyz=XYZ[:0], faces=[]))


def test_bad_header(tmp_path):
    (tmp_path / "h.ply").write_bytes(b"ply\nformat binary_middle_endian 1.0\nelement vertex 1\nend_header\n")
    with pytest.raises(FormatError, match=r"h\.ply:2: unknown PLY format"):
        read_ply(tmp_path / "h.ply")
    (tmp_path / "m.ply").write_bytes(b"PK\x03\x04 not a ply")
    with pytest.raises(FormatError, match="no 'ply' magic"):
        read_ply(tmp_path / "m.ply")
    (tmp_path / "n.ply").write_bytes(b"ply\nformat ascii 1.0\nelement vertex 1\nproperty float u\nend_header\n1\n")
    with pytest.raises(FormatError, match="no x, y, z"):
        read_ply(tmp_path / "n.ply")
