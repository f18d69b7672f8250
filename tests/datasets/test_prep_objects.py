"""geomask prep objects: real objects cut out of labelled scans by instance id (issue 11)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from geomask.datasets.prep_objects import ScanObjectDataset, cut_objects, prep_objects
from geomask.datasets.store import DatasetReader
from geomask.errors import FormatError

pytestmark = pytest.mark.usefixtures("one_thread")

# instance id -> (NYU40 class, points): a big chair (FPS), a small box (repeats), a tiny one (dropped), a wall
OBJECTS = {1: (5, 300, 0.0), 2: (3, 40, 5.0), 3: (40, 10, 9.0), 4: (1, 200, -5.0)}


def _scene(folder: Path, name: str = "scene0001_00", shift: float = 0.0) -> Path:
    """A ScanNet-style labelled scan: *_vert_all.npy (xyz rgb), *_sem_label_all.npy, *_ins_label_all.npy."""
    rng = np.random.default_rng(len(name))
    pts, sem, ins = [rng.normal(size=(50, 3))], [np.zeros(50, int)], [np.zeros(50, int)]  # unannotated
    for i, (cls, n, x) in OBJECTS.items():
        pts.append(rng.normal(size=(n, 3)) * (0.2 + 0.1 * i) + [x + shift, 1.0, 2.0])
        sem.append(np.full(n, cls))
        ins.append(np.full(n, i))
    xyz = np.concatenate(pts).astype(np.float32)
    rgb = rng.integers(0, 256, (len(xyz), 3)).astype(np.float32)
    path = folder / f"{name}_vert_all.npy"
    np.save(path, np.concatenate([xyz, rgb], 1))
    np.save(folder / f"{name}_sem_label_all.npy", np.concatenate(sem).astype(np.uint32))
    np.save(folder / f"{name}_ins_label_all.npy", np.concatenate(ins).astype(np.uint32))
    return path


def test_instances_are_cut_normalised_and_resampled(tmp_path):
    path = _scene(tmp_path)
    rows, failures = prep_objects([path], tmp_path / "out", min_points=20, num_points=64, progress=False)
    assert failures == []
    (row,) = rows
    assert (row["objects"], row["skipped_small"], row["skipped_classes"]) == (2, 1, 1)  # wall skipped, 0 no object
    t = DatasetReader(tmp_path / "out", kind="scan_objects").load(0)
    assert t["points"].shape == (2, 64, 3) and t["colors"].shape == (2, 64, 3)
    assert t["labels"].tolist() == [5, 3] and t["instances"].tolist() == [1, 2] and t["counts"].tolist() == [300, 40]
    assert torch.allclose(t["points"].mean(1), torch.zeros(2, 3), atol=1e-5)
    assert torch.allclose(t["points"].norm(dim=-1).amax(1), torch.ones(2))
    xyz = torch.from_numpy(np.load(path)[:, :3])
    ins = torch.from_numpy(np.load(tmp_path / "scene0001_00_ins_label_all.npy").astype(np.int64))
    back = t["points"] * t["scales"][:, None, None] + t["centers"][:, None]  # scan coordinates again
    for j, i in enumerate((1, 2)):
        d = torch.cdist(back[j].double(), xyz[ins == i].double())
        assert float(d.min(1).values.max()) < 1e-4  # every point is one of the instance's own points
        hit = d.argmin(1)
        if i == 1:  # 300 points -> 64: farthest point sampling never picks a point twice
            assert hit.unique().numel() == 64
        else:  # 40 points -> 64: each point at least once, then repeats
            assert hit.unique().numel() == 40


def test_fps_is_seeded_and_padding_changes_nothing():
    rng = np.random.default_rng(1)
    pts = rng.normal(size=(500, 3)).astype(np.float32)
    lab, ins = np.full(500, 7), np.repeat([1, 2], [400, 100])
    a, _ = cut_objects(pts, lab, ins, num_points=32, generator=torch.Generator().manual_seed(3))
    b, _ = cut_objects(pts, lab, ins, num_points=32, generator=torch.Generator().manual_seed(3))
    c, _ = cut_objects(pts, lab, ins, num_points=32, generator=torch.Generator().manual_seed(4))
    assert torch.equal(a["points"], b["points"]) and not torch.equal(a["points"], c["points"])
    alone, _ = cut_objects(pts[400:], lab[400:], ins[400:], num_points=32, generator=torch.Generator().manual_seed(3))
    # the small object's FPS with the large one's padding beside it equals its FPS alone, up to the random start
    from geomask.ops.fps import farthest_point_sampling

    own = torch.from_numpy(pts[400:])
    got = a["points"][1] * a["scales"][1] + a["centers"][1]
    start = int(torch.cdist(got[:1].double(), own.double()).argmin())
    ref = own[farthest_point_sampling(own[None], 32, start=start)[0]]
    assert torch.allclose(got, ref, atol=1e-5) and alone["points"].shape == (1, 32, 3)


def test_classes_keep_only_the_ids_given(tmp_path):
    path = _scene(tmp_path)
    rows, _ = prep_objects([path], tmp_path / "out", min_points=20, num_points=16, classes=[1], progress=False)
    assert rows[0]["objects"] == 1 and rows[0]["classes"] == [1]  # the wall, asked for by id


def test_resumable_per_source_and_one_line_per_bad_file(tmp_path):
    good = _scene(tmp_path, "scene0001_00")
    other = _scene(tmp_path, "scene0002_00", shift=1.0)
    bad = tmp_path / "scene0003_00_vert_all.npy"
    bad.write_bytes(b"\x93NUMPY garbage")
    for part in ("sem", "ins"):  # its label files are fine: the scan itself is corrupt
        (tmp_path / f"scene0003_00_{part}_label_all.npy").write_bytes(
            (tmp_path / f"scene0001_00_{part}_label_all.npy").read_bytes()
        )
    out = tmp_path / "out"
    rows, failures = prep_objects([tmp_path], out, min_points=20, num_points=16, progress=False)
    assert [r["key"] for r in rows] == ["scene0001_00", "scene0002_00"]
    assert len(failures) == 1 and failures[0][0] == str(bad) and "\n" not in failures[0][1]
    assert str(bad) in failures[0][1]
    shard = out / "shards" / "scene0001_00.pt"
    stamp = shard.stat().st_mtime_ns
    np.save(tmp_path / "scene0002_00_sem_label_all.npy", np.load(tmp_path / "scene0002_00_sem_label_all.npy") * 0 + 5)
    bad.unlink()
    rows, failures = prep_objects([good, other], out, min_points=20, num_points=16, progress=False)
    assert failures == [] and [r["status"] for r in rows] == ["skipped", "written"]  # changed labels: rewritten
    assert shard.stat().st_mtime_ns == stamp
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["kind"] == "scan_objects" and manifest["schema_version"] == 1 and manifest["num_items"] == 2
    ds = ScanObjectDataset(out)
    assert len(ds) == 2 + 3 and ds.scenes == ["scene0001_00", "scene0002_00"] and ds.scene.tolist() == [0, 0, 1, 1, 1]
    with pytest.raises(FormatError, match="other settings"):
        prep_objects([good], out, min_points=20, num_points=32, progress=False)


def test_a_scan_without_instances_is_one_line(tmp_path):
    pts = tmp_path / "cloud.npy"
    np.save(pts, np.random.default_rng(0).random((64, 3)).astype(np.float32))
    lab = tmp_path / "cloud_labels.npy"
    np.save(lab, np.ones(64, int))
    rows, failures = prep_objects([f"{pts}:{lab}"], tmp_path / "out", progress=False)
    assert rows == [] and len(failures) == 1 and "has no instance ids" in failures[0][1]


def test_raw_point_baselines_and_the_object_probe_run(tmp_path):
    from geomask.eval.object_command import evaluate_objects, histogram_features, sorted_features

    pos = torch.rand(3, 40, 3) * 2 - 1
    assert sorted_features(pos).shape == (3, 96) and torch.allclose(histogram_features(pos).sum(1), torch.ones(3))
    for k in range(2):
        _scene(tmp_path, f"scene000{k}_00", shift=0.5 * k)
    prep_objects([tmp_path], tmp_path / "out", min_points=5, num_points=32, skip_classes=[], progress=False)
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(
        "method: {name: pointmae, num_groups: 4, group_size: 8, dim: 16, depth: 1, decoder_depth: 1, heads: 2, "
        "embed_hidden: 8, masker: {name: random_patches, ratio: 0.5}, loss: {name: chamfer_l2}}\n"
        "data: {kind: objects}\n"
    )
    result = evaluate_objects(tmp_path / "out", seeds=[0], steps=2, config=str(cfg), batch_size=4)
    assert set(result["methods"]) == {"pointmae", "random", "sorted", "histogram", "majority"}
    info = result["data"]["per_seed"]["0"]
    assert info["train"] == 4 and info["test"] == 4 and info["crops"] == 0
    assert sum(info["train_classes"].values()) == 4 and sum(info["test_classes"].values()) == 4
    assert all(0.0 <= m["accuracy"] <= 1.0 for m in result["methods"].values())
    # crops of the training scan only: the held-out scan is refused, and so is a split without a training scan
    from geomask.errors import UsageError

    crops = evaluate_objects(tmp_path / "out", seeds=[0], steps=2, config=str(cfg), batch_size=4, pretrain_crops=6)
    assert crops["data"]["per_seed"]["0"]["crops"] == 6 and crops["config"]["pretrain_crops"] == 6
    assert crops["methods"]["random"] == result["methods"]["random"]  # same seed, same initialisation
    with pytest.raises(UsageError, match="held-out scan"):
        evaluate_objects(
            tmp_path / "out",
            seeds=[0],
            steps=1,
            config=str(cfg),
            pretrain_crops=2,
            crop_scans=[str(tmp_path / "scene0001_00_vert_all.npy")],
        )
    with pytest.raises(UsageError, match="needs --split scene"):
        evaluate_objects(tmp_path / "out", seeds=[1], steps=1, config=str(cfg), split="instance", pretrain_crops=2)


@pytest.mark.shared
def test_real_scannet_objects(shared_data, tmp_path):
    scannet = shared_data / "scans" / "scannet"
    rows, failures = prep_objects([scannet], tmp_path / "out", num_points=128, progress=False)
    assert failures == [] and [r["key"] for r in rows] == ["scene0000_00", "scene0000_01"]
    assert [r["objects"] for r in rows] == [54, 59]
    ds = ScanObjectDataset(tmp_path / "out")
    assert not torch.isin(ds.labels, torch.tensor([0, 1, 2, 22])).any()  # no stuff
    assert torch.allclose(ds.points.norm(dim=-1).amax(1), torch.ones(len(ds)))
