"""Every scan reader on the real files in ../shared/data/scans, checked against np.load and open3d."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from geomask.io.scans import read_scan, scan_info

SCANS = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "scans"
MESHES = ["bunny.ply", "featuretype.ply", "fuze_ascii.ply", "suzanne.ply", "fragment.pcd"]


@pytest.fixture
def scans() -> Path:
    if not SCANS.is_dir():
        pytest.skip(f"real scans not present at {SCANS} (needs ../shared/data beside the repository)")
    return SCANS


@pytest.mark.shared
@pytest.mark.parametrize("scene", ["scene0000_00", "scene0000_01"])
def test_scannet(scans, scene):
    d = scans / "scannet"
    scan = read_scan(d / f"{scene}_vert_all.npy", labels=d / f"{scene}_sem_label_all.npy")
    raw = np.load(d / f"{scene}_vert_all.npy")
    np.testing.assert_array_equal(scan.points, raw[:, :3])
    np.testing.assert_allclose(scan.colors, raw[:, 3:] / 255, atol=1e-6)
    np.testing.assert_array_equal(scan.labels, np.load(d / f"{scene}_sem_label_all.npy"))
    info = scan_info(scan)
    assert info["points"] == len(raw) and 0 < info["classes"] <= 41


@pytest.mark.shared
@pytest.mark.parametrize("frame", ["000000", "000001"])
def test_semantickitti(scans, frame):
    d = scans / "semantickitti"
    scan = read_scan(d / f"kitti_01_points_{frame}.npy", labels=d / f"kitti_01_labels_{frame}.npy")
    np.testing.assert_array_equal(scan.points, np.load(d / f"kitti_01_points_{frame}.npy"))
    assert scan.labels.shape == (scan.num_points,)
    assert 0 <= scan.labels.min() and scan.labels.max() <= 19  # learning ids, not raw SemanticKITTI ids


@pytest.mark.shared
@pytest.mark.parametrize("name", MESHES)
def test_misc_against_open3d(scans, name):
    scan = read_scan(scans / "misc" / name)
    assert scan.num_points > 0 and np.isfinite(scan.points).all()
    o3d = pytest.importorskip("open3d", reason="open3d (the scans extra) is not installed")
    ref = o3d.io.read_point_cloud(str(scans / "misc" / name))
    np.testing.assert_allclose(scan.points, np.asarray(ref.points), atol=1e-6)
    if ref.has_colors():
        assert scan.colors is not None
        np.testing.assert_allclose(scan.colors, np.asarray(ref.colors), atol=1e-6)
    if ref.has_normals():
        np.testing.assert_allclose(scan.normals, np.asarray(ref.normals), atol=1e-6)
