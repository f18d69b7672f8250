"""KITTI .bin frames and SemanticKITTI .label files."""

from __future__ import annotations

import numpy as np
import pytest

from geomask.errors import FormatError
from geomask.io.scans import read_scan

RNG = np.random.default_rng(4)
FRAME = RNG.normal(size=(8, 4)).astype(np.float32)


def test_bin_and_label(tmp_path):
    FRAME.tofile(tmp_path / "000000.bin")
    sem = np.array([0, 1, 10, 40, 44, 252, 259, 72], dtype=np.uint32)
    inst = np.arange(8, dtype=np.uint32) * 1000
    ((inst << 16) | sem).astype("<u4").tofile(tmp_path / "000000.label")
    scan = read_scan(tmp_path / "000000.bin", labels=tmp_path / "000000.label")
    np.testing.assert_array_equal(scan.points, FRAME[:, :3])
    np.testing.assert_array_equal(scan.intensity, FRAME[:, 3])
    np.testing.assert_array_equal(scan.labels, sem)
    np.testing.assert_array_equal(scan.instances, inst)
    assert scan.format == "kitti"


def test_truncated_bin_and_label(tmp_path):
    (tmp_path / "t.bin").write_bytes(FRAME.tobytes()[:-6])
    with pytest.raises(FormatError, match=r"t\.bin.*not a multiple of 16 bytes"):
        read_scan(tmp_path / "t.bin")
    FRAME.tofile(tmp_path / "ok.bin")
    (tmp_path / "t.label").write_bytes(b"\0" * 30)
    with pytest.raises(FormatError, match=r"t\.label.*multiple of 4"):
        read_scan(tmp_path / "ok.bin", labels=tmp_path / "t.label")
    (tmp_path / "s.label").write_bytes(b"\0" * 28)
    with pytest.raises(FormatError, match=r"s\.label: has 7 labels"):
        read_scan(tmp_path / "ok.bin", labels=tmp_path / "s.label")
