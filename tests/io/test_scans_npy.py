"""NumPy scans, label files beside them, read_scan dispatch, scan_info and the Scan checks."""

from __future__ import annotations

import numpy as np
import pytest

from geomask.errors import FormatError
from geomask.io.scans import Scan, read_scan, scan_info

RNG = np.random.default_rng(3)
XYZ = RNG.normal(size=(6, 3)).astype(np.float32)
RGB255 = RNG.integers(0, 256, size=(6, 3)).astype(np.float32)


def test_xyz_rgb_float_colors_scaled(tmp_path):
    np.save(tmp_path / "p.npy", np.concatenate([XYZ, RGB255], 1))
    scan = read_scan(tmp_path / "p.npy")
    np.testing.assert_array_equal(scan.points, XYZ)
    np.testing.assert_allclose(scan.colors, RGB255 / 255, atol=1e-7)
    assert scan.format == "npy" and scan.labels is None


def test_xyz_intensity_and_plain_xyz(tmp_path):
    np.save(tmp_path / "i.npy", np.concatenate([XYZ, np.arange(6, dtype=np.float32)[:, None]], 1))
    np.testing.assert_array_equal(read_scan(tmp_path / "i.npy").intensity, np.arange(6))
    np.save(tmp_path / "x.npy", XYZ.astype(np.float64))
    assert read_scan(tmp_path / "x.npy").points.dtype == np.float32


def test_labels_beside(tmp_path):
    np.save(tmp_path / "p.npy", XYZ)
    np.save(tmp_path / "l.npy", np.arange(6, dtype=np.uint32)[:, None])  # [N, 1] as SemanticKITTI .npy
    (tmp_path / "i.txt").write_text("\n".join(map(str, range(10, 16))))
    scan = read_scan(tmp_path / "p.npy", labels=tmp_path / "l.npy", instances=tmp_path / "i.txt")
    np.testing.assert_array_equal(scan.labels, np.arange(6))
    np.testing.assert_array_equal(scan.instances, np.arange(10, 16))
    assert scan.labels.dtype == np.int64


def test_labels_length_mismatch_names_the_label_file(tmp_path):
    np.save(tmp_path / "p.npy", XYZ)
    np.save(tmp_path / "short.npy", np.arange(5))
    with pytest.raises(FormatError, match=r"short\.npy: has 5 labels but the scan .*p\.npy has 6 points"):
        read_scan(tmp_path / "p.npy", labels=tmp_path / "short.npy")


def test_npz_pointcept_names(tmp_path):
    np.savez(tmp_path / "s.npz", coord=XYZ, color=RGB255.astype(np.uint8), segment=np.arange(6), instance=-np.ones(6))
    scan = read_scan(tmp_path / "s.npz")
    np.testing.assert_allclose(scan.colors, RGB255 / 255, atol=1e-7)
    np.testing.assert_array_equal(scan.labels, np.arange(6))
    np.testing.assert_array_equal(scan.instances, -np.ones(6))
    assert scan.format == "npz"
    np.savez(tmp_path / "bad.npz", foo=XYZ)
    with pytest.raises(FormatError, match=r"bad\.npz: archive has no points array"):
        read_scan(tmp_path / "bad.npz")


def test_truncated_npy(tmp_path):
    np.save(tmp_path / "t.npy", np.concatenate([XYZ, RGB255], 1))
    data = (tmp_path / "t.npy").read_bytes()
    (tmp_path / "t.npy").write_bytes(data[:-10])
    with pytest.raises(FormatError, match=r"t\.npy: cannot load NumPy file"):
        read_scan(tmp_path / "t.npy")


def test_bad_shapes_and_values(tmp_path):
    np.save(tmp_path / "w.npy", np.zeros((4, 5), np.float32))
    with pytest.raises(FormatError, match=r"w\.npy: array of shape \(4, 5\) is not a point cloud"):
        read_scan(tmp_path / "w.npy")
    np.save(tmp_path / "e.npy", np.zeros((0, 3), np.float32))
    with pytest.raises(FormatError, match=r"e\.npy: the cloud is empty"):
        read_scan(tmp_path / "e.npy")
    bad = XYZ.copy()
    bad[4] = np.nan
    np.save(tmp_path / "n.npy", bad)
    with pytest.raises(FormatError, match=r"n\.npy: 1 of 6 points have NaN"):
        read_scan(tmp_path / "n.npy")
    np.testing.assert_array_equal(read_scan(tmp_path / "n.npy", drop_invalid=True).points, XYZ[[0, 1, 2, 3, 5]])
    np.save(tmp_path / "c.npy", np.concatenate([XYZ, RGB255 * 4], 1))
    with pytest.raises(FormatError, match=r"c\.npy: colour values go up to"):
        read_scan(tmp_path / "c.npy")


def test_unknown_format_and_missing_file(tmp_path):
    (tmp_path / "s.xyz").write_text("0 0 0\n")
    with pytest.raises(FormatError, match=r"s\.xyz: unknown scan format '\.xyz'"):
        read_scan(tmp_path / "s.xyz")
    with pytest.raises(FileNotFoundError):
        read_scan(tmp_path / "missing.ply")
    np.save(tmp_path / "p.npy", XYZ)
    (tmp_path / "l.csv").write_text("1\n")
    with pytest.raises(FormatError, match=r"l\.csv: unknown label file format"):
        read_scan(tmp_path / "p.npy", labels=tmp_path / "l.csv")


def test_scan_info_and_dataclass_checks():
    scan = Scan(points=XYZ, labels=np.array([0, 1, 1, -1, 5, 5]), path="mem.npy", format="npy")
    info = scan_info(scan)
    assert info["classes"] == 3 and info["labels"] and not info["colors"]
    np.testing.assert_allclose(info["bounds_min"], XYZ.min(0))
    np.testing.assert_allclose(info["bounds_max"], XYZ.max(0))
    with pytest.raises(FormatError, match="labels have shape"):
        Scan(points=XYZ, labels=np.zeros(5))
    with pytest.raises(FormatError, match="colors are outside"):
        Scan(points=XYZ, colors=RGB255)
    sub = scan.select(np.array([True, False, True, False, False, False]))
    np.testing.assert_array_equal(sub.labels, [0, 1])
