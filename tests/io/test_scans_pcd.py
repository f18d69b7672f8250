"""PCD reader: ascii, binary, binary_compressed (LZF written by hand here), packed rgb, bad bodies."""

from __future__ import annotations

import numpy as np
import pytest

from geomask.errors import FormatError
from geomask.io.scans.pcd import lzf_decompress, read_pcd

RNG = np.random.default_rng(1)
N = 5
XYZ = RNG.normal(size=(N, 3)).astype(np.float32)
RGB = RNG.integers(0, 256, size=(N, 3)).astype(np.uint32)
PACKED = ((RGB[:, 0] << 16) | (RGB[:, 1] << 8) | RGB[:, 2]).astype(np.uint32)
LAB = np.arange(N, dtype=np.uint32) + 10


def header(mode, n=N):
    return (
        "# .PCD v0.7 - Point Cloud Data file format\nVERSION 0.7\nFIELDS x y z rgb label\nSIZE 4 4 4 4 4\n"
        f"TYPE F F F F U\nCOUNT 1 1 1 1 1\nWIDTH {n}\nHEIGHT 1\nVIEWPOINT 0 0 0 1 0 0 0\nPOINTS {n}\nDATA {mode}\n"
    ).encode()


def table():
    dt = np.dtype([("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("rgb", "<f4"), ("label", "<u4")])
    t = np.empty(N, dtype=dt)
    for j, k in enumerate("xyz"):
        t[k] = XYZ[:, j]
    t["rgb"] = PACKED.view(np.float32)
    t["label"] = LAB
    return t


def literal_lzf(raw: bytes) -> bytes:
    """LZF with literal runs only (control byte < 32: copy the next ctrl + 1 bytes)."""
    out = bytearray()
    for s in range(0, len(raw), 32):
        chunk = raw[s : s + 32]
        out += bytes([len(chunk) - 1]) + chunk
    return bytes(out)


def check(scan):
    np.testing.assert_array_equal(scan.points, XYZ)
    np.testing.assert_allclose(scan.colors, RGB / 255.0, atol=1e-7)
    np.testing.assert_array_equal(scan.labels, LAB.astype(np.int64))
    assert scan.format == "pcd"


def test_binary(tmp_path):
    path = tmp_path / "b.pcd"
    path.write_bytes(header("binary") + table().tobytes())
    check(read_pcd(path))


def test_ascii_with_integer_rgb(tmp_path):
    head = header("ascii").replace(b"TYPE F F F F U", b"TYPE F F F U U")
    rows = [" ".join([*map(repr, XYZ[i].tolist()), str(PACKED[i]), str(LAB[i])]) for i in range(N)]
    path = tmp_path / "a.pcd"
    path.write_bytes(head + "\n".join(rows).encode() + b"\n")
    check(read_pcd(path))


def test_binary_compressed_column_major(tmp_path):
    t = table()
    raw = b"".join(np.ascontiguousarray(t[name]).tobytes() for name in t.dtype.names)  # field after field
    comp = literal_lzf(raw)
    path = tmp_path / "c.pcd"
    path.write_bytes(header("binary_compressed") + np.array([len(comp), len(raw)], "<u4").tobytes() + comp)
    check(read_pcd(path))


def test_lzf_back_reference():
    # literal "abc" (ctrl 2), then a back reference of length 6 (ctrl (6-2)<<5) at distance 3 (offset byte 2)
    assert lzf_decompress(b"\x02abc\x80\x02", 9) == b"abcabcabc"
    # long back reference: length field 7 plus an extra byte (7 + 3 + 2 = 12 bytes)
    assert lzf_decompress(b"\x00z\xe0\x03\x00", 13) == b"z" * 13
    assert lzf_decompress(b"\x02abc\x80\x05", 9) is None  # reference before the start
    assert lzf_decompress(b"\x02abc", 9) is None  # wrong size


def test_truncated_binary(tmp_path):
    path = tmp_path / "t.pcd"
    path.write_bytes(header("binary") + table().tobytes()[:-7])
    with pytest.raises(FormatError, match=r"t\.pcd.*declares 5 points.*truncated"):
        read_pcd(path)


def test_corrupt_compressed(tmp_path):
    raw = table().tobytes()
    path = tmp_path / "k.pcd"
    path.write_bytes(header("binary_compressed") + np.array([6, len(raw)], "<u4").tobytes() + b"\x02abc\x80\x09")
    with pytest.raises(FormatError, match=r"k\.pcd.*corrupt"):
        read_pcd(path)


def test_ascii_count_mismatch_and_nan(tmp_path):
    rows = [" ".join([*map(repr, XYZ[i].tolist()), str(PACKED[i]), str(LAB[i])]) for i in range(N)]
    path = tmp_path / "m.pcd"
    head = header("ascii", n=N + 1).replace(b"TYPE F F F F U", b"TYPE F F F U U")
    path.write_bytes(head + "\n".join(rows).encode() + b"\n")
    with pytest.raises(FormatError, match=r"m\.pcd.*declares 6 points but the body has 5 lines"):
        read_pcd(path)
    rows[1] = "nan nan nan 0 0"
    path.write_bytes(header("ascii").replace(b"TYPE F F F F U", b"TYPE F F F U U") + "\n".join(rows).encode())
    with pytest.raises(FormatError, match="1 of 5 points have NaN"):
        read_pcd(path)
    assert read_pcd(path, drop_invalid=True).num_points == 4


def test_open3d_roundtrip_compressed(tmp_path):
    o3d = pytest.importorskip("open3d", reason="open3d (the scans extra) is not installed")
    cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(XYZ.astype(np.float64)))
    cloud.colors = o3d.utility.Vector3dVector(RGB / 255.0)
    for compressed in (False, True):
        path = tmp_path / f"o3d_{compressed}.pcd"
        assert o3d.io.write_point_cloud(str(path), cloud, write_ascii=False, compressed=compressed)
        scan = read_pcd(path)
        np.testing.assert_allclose(scan.points, XYZ, atol=1e-6)
        np.testing.assert_allclose(scan.colors, RGB / 255.0, atol=1 / 255)
