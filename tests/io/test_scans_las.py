"""LAS/LAZ reader through laspy: values written here with laspy, offsets kept in ``origin``, bad files."""

from __future__ import annotations

import laspy
import numpy as np
import pytest

from geomask.errors import FormatError
from geomask.io.scans import laz_available, read_scan, scan_info

RNG = np.random.default_rng(2)
N = 50
XYZ = RNG.uniform(0, 10, size=(N, 3)) + np.array([500000.0, 4000000.0, 100.0])
RGB = RNG.integers(0, 65536, size=(N, 3)).astype(np.uint16)
CLS = RNG.integers(0, 20, size=N).astype(np.uint8)


def write(path, compressed=False):
    header = laspy.LasHeader(point_format=3, version="1.2")
    header.offsets = np.array([500000.0, 4000000.0, 100.0])
    header.scales = np.array([0.001, 0.001, 0.001])
    las = laspy.LasData(header)
    las.x, las.y, las.z = XYZ[:, 0], XYZ[:, 1], XYZ[:, 2]
    las.red, las.green, las.blue = RGB[:, 0], RGB[:, 1], RGB[:, 2]
    las.classification = CLS
    las.intensity = np.arange(N, dtype=np.uint16)
    las.write(str(path))
    return path


def check(scan):
    np.testing.assert_allclose(scan.points + scan.origin, XYZ, atol=1e-3)
    np.testing.assert_array_equal(scan.origin, [500000.0, 4000000.0, 100.0])
    np.testing.assert_allclose(scan.colors, RGB / 65535.0, atol=1e-6)
    np.testing.assert_array_equal(scan.labels, CLS.astype(np.int64))
    np.testing.assert_array_equal(scan.intensity, np.arange(N))
    info = scan_info(scan)
    assert info["points"] == N and info["labels"] and info["classes"] == len(np.unique(CLS))
    np.testing.assert_allclose(info["bounds_min"], XYZ.min(0), atol=1e-3)


def test_las(tmp_path):
    check(read_scan(write(tmp_path / "a.las")))


def test_laz(tmp_path):
    if not laz_available():
        pytest.skip("laspy has no LAZ backend (pip install lazrs)")
    check(read_scan(write(tmp_path / "a.laz")))


def test_truncated_las(tmp_path):
    path = write(tmp_path / "t.las")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 100])
    with pytest.raises(FormatError, match=r"t\.las"):
        read_scan(path)


def test_not_a_las(tmp_path):
    (tmp_path / "x.las").write_bytes(b"hello, not a LAS file at all" * 20)
    with pytest.raises(FormatError, match=r"x\.las: cannot read LAS"):
        read_scan(tmp_path / "x.las")
