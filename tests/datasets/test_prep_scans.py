"""prep_scans: a small dataset written here, failures as one line, resume, POINTS:LABELS, real scans."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from geomask.datasets.scans import load_scan_item, parse_source, prep_scans
from geomask.datasets.store import DatasetReader
from geomask.errors import FormatError

SCANS = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "scans"


def make_inputs(tmp_path):
    rng = np.random.default_rng(0)
    pts = rng.uniform(0, 1, size=(300, 3)).astype(np.float32)
    np.save(tmp_path / "a.npy", np.concatenate([pts, rng.integers(0, 256, (300, 3))], 1).astype(np.float32))
    np.save(tmp_path / "a_lab.npy", rng.integers(0, 41, 300).astype(np.uint32))
    np.save(tmp_path / "b.npy", pts[:50] * 3)
    nan = pts.copy()
    nan[7] = np.nan
    np.save(tmp_path / "nan.npy", nan)
    (tmp_path / "c.ply").write_bytes(
        b"ply\nformat binary_little_endian 1.0\nelement vertex 10\nproperty float x\n"
        b"property float y\nproperty float z\nend_header\n" + b"\0" * 50
    )
    return pts


def test_prep_and_load(tmp_path):
    pts = make_inputs(tmp_path)
    out = tmp_path / "ds"
    sources = [
        f"{tmp_path / 'a.npy'}:{tmp_path / 'a_lab.npy'}",
        tmp_path / "b.npy",
        tmp_path / "nan.npy",
        tmp_path / "c.ply",
        tmp_path / "gone.ply",
    ]
    rows, failures = prep_scans(sources, out, 0.25, label_map="nyu40_to_scannet20", progress=False)
    assert [r["key"] for r in rows] == ["a", "b"] and all(r["status"] == "written" for r in rows)
    failed = dict(failures)
    assert set(failed) == {str(tmp_path / n) for n in ("nan.npy", "c.ply", "gone.ply")}
    assert all("\n" not in m and m.startswith(s) for s, m in failed.items())
    assert "NaN" in failed[str(tmp_path / "nan.npy")] and "ends first" in failed[str(tmp_path / "c.ply")]
    reader = DatasetReader(out, kind="scan")
    assert reader.keys() == ["a", "b"] and reader.options == {"label_map": "nyu40_to_scannet20", "voxel_size": 0.25}
    tensors, meta = reader[0]
    item = load_scan_item(tensors)
    np.testing.assert_array_equal(item.points.numpy(), pts)
    q = np.floor(pts.astype(np.float64) / 0.25).astype(np.int64)
    assert meta["voxels"] == len(np.unique(q, axis=0)) == len(item.coords)
    np.testing.assert_array_equal(item.coords[item.inverse].numpy(), q)
    raw = np.load(tmp_path / "a_lab.npy")
    assert item.labels.min() >= -1 and item.labels.max() <= 19
    assert (item.labels.numpy() == -1).sum() == np.isin(
        raw, [0, 13, 15, 17, 18, 19, 20, 21, 22, 23, 25, 26, 27, 29, 30, 31, 32, 35, 37, 38, 40]
    ).sum()
    assert item.voxel_labels.shape == (meta["voxels"],)
    assert meta["classes"] == len(np.unique(item.labels[item.labels >= 0]))
    assert item.voxel_features("points").shape == (meta["voxels"], 3)
    assert not list(out.rglob("*.tmp"))  # nothing half-written


def test_resume_skips_and_rewrites_changed_sources(tmp_path):
    make_inputs(tmp_path)
    out = tmp_path / "ds"
    rows, _ = prep_scans([tmp_path / "a.npy", tmp_path / "b.npy"], out, 0.5, progress=False)
    assert [r["status"] for r in rows] == ["written", "written"]
    mtime = (out / "shards" / "a.pt").stat().st_mtime_ns
    np.save(tmp_path / "b.npy", np.ones((4, 3), np.float32))
    rows, failures = prep_scans([tmp_path / "a.npy", tmp_path / "b.npy"], out, 0.5, progress=False)
    assert [r["status"] for r in rows] == ["skipped", "written"] and not failures
    assert (out / "shards" / "a.pt").stat().st_mtime_ns == mtime
    manifest = json.loads((out / "manifest.json").read_text())
    assert [i["points"] for i in manifest["items"]] == [300, 4]
    with pytest.raises(FormatError, match="other settings"):
        prep_scans([tmp_path / "a.npy"], out, 0.1, progress=False)


def test_parse_source(tmp_path):
    (tmp_path / "p.npy").write_bytes(b"")
    (tmp_path / "l.npy").write_bytes(b"")
    assert parse_source(f"{tmp_path}/p.npy:{tmp_path}/l.npy") == (tmp_path / "p.npy", tmp_path / "l.npy")
    assert parse_source(f"{tmp_path}/p.npy:nothere.npy") == (Path(f"{tmp_path}/p.npy:nothere.npy"), None)
    assert parse_source(tmp_path / "p.npy") == (tmp_path / "p.npy", None)


def test_load_scan_item_rejects_bad_shards():
    good = {
        "points": torch.zeros(4, 3),
        "coords": torch.zeros(2, 3, dtype=torch.int32),
        "inverse": torch.tensor([0, 1, 1, 0]),
        "counts": torch.tensor([2, 2]),
    }
    assert load_scan_item(good).labels is None
    with pytest.raises(FormatError, match="lacks inverse"):
        load_scan_item({k: v for k, v in good.items() if k != "inverse"})
    with pytest.raises(FormatError, match="labels has 3 rows for 4 points"):
        load_scan_item({**good, "labels": torch.zeros(3)})
    with pytest.raises(FormatError, match="outside its voxels"):
        load_scan_item({**good, "inverse": torch.tensor([0, 1, 2, 0])})


@pytest.mark.shared
def test_real_scans(tmp_path):
    if not SCANS.is_dir():
        pytest.skip(f"real scans not present at {SCANS} (needs ../shared/data beside the repository)")
    sn, sk = SCANS / "scannet", SCANS / "semantickitti"
    sources = [
        f"{sn}/scene0000_00_vert_all.npy:{sn}/scene0000_00_sem_label_all.npy",
        f"{sk}/kitti_01_points_000000.npy:{sk}/kitti_01_labels_000000.npy",
        *sorted(str(p) for p in (SCANS / "misc").iterdir() if p.suffix in (".ply", ".pcd")),
    ]
    rows, failures = prep_scans(sources, tmp_path / "ds", 0.05, jobs=2, progress=False)
    assert not failures
    assert len(rows) == 7 and {r["format"] for r in rows} == {"npy", "ply", "pcd"}
    by_key = {r["key"]: r for r in rows}
    assert by_key["scene0000_00_vert_all"]["points"] == 81369
    assert by_key["kitti_01_points_000000"]["classes"] == 8
    reader = DatasetReader(tmp_path / "ds", kind="scan")
    for tensors, meta in reader:
        item = load_scan_item(tensors)
        assert len(item.coords) == meta["voxels"] and int(item.counts.sum()) == meta["points"]
