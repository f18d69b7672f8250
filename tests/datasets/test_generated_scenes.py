"""Generated indoor scenes (the ``scenes`` data kind): a pure function of the seed, plausible rooms, a real scans
dataset built once into the cache through ``prep scans``' code, never left half written."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from geomask.cli import main
from geomask.datasets import generated_scenes as gs
from geomask.datasets import scans
from geomask.datasets.generated_scenes import CLASSES, ROOM_TYPES, SceneSpec, build_scenes, generate_scene, scenes_dir
from geomask.datasets.kinds import get_data_kind
from geomask.datasets.readers import ScanTrainDataset, collate_scans
from geomask.datasets.store import DatasetReader, DatasetWriter
from geomask.errors import UsageError
from geomask.points.augment import ScenePoints
from geomask.points.labelmaps import load_label_map

N = 3000


@pytest.fixture
def spec(tmp_path) -> SceneSpec:
    return SceneSpec(scenes=3, points=N, seed=7, cache=str(tmp_path / "cache"))


def test_a_scene_is_a_pure_function_of_seed_and_index():
    a, b = generate_scene(0, 2, N), generate_scene(0, 2, N)
    assert a.keys() == b.keys() == {"points", "colors", "normals", "labels", "instances"}
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])
    assert not np.array_equal(generate_scene(1, 2, N)["points"], a["points"])
    assert not np.array_equal(generate_scene(0, 3, N)["points"], a["points"])


@pytest.mark.parametrize("index", range(len(ROOM_TYPES)), ids=ROOM_TYPES)
def test_scene_shapes_ranges_and_contents(index):
    s = generate_scene(0, index, N)
    p, c, n, lab, ins = s["points"], s["colors"], s["normals"], s["labels"], s["instances"]
    assert p.shape == n.shape == c.shape == (N, 3) and lab.shape == ins.shape == (N,)
    assert (p.dtype, c.dtype, n.dtype, lab.dtype, ins.dtype) == (np.float32, np.uint8, np.float32, np.int64, np.int64)
    assert np.isfinite(p).all() and np.allclose(np.linalg.norm(n, axis=1), 1.0, atol=1e-5)
    # a room: floor at z = 0, x and y from 0, at most 7 x 6 x 3 m (plus sensor noise)
    assert p.min() > -0.05 and (p.max(0) < [7.05, 6.05, 3.15]).all()
    present = set(np.unique(lab).tolist())
    assert present <= set(CLASSES.values())
    assert {CLASSES["wall"], CLASSES["floor"]} <= present and len(present - {1, 2, 22}) >= 2  # and furniture
    floor = lab == CLASSES["floor"]
    assert np.abs(p[floor, 2]).max() < 0.05 and (n[floor] @ [0, 0, 1] > 0.99).all()  # floor normals point up
    assert len(np.unique(ins)) >= 6  # floor, four walls, a door at least, each its own instance
    assert c.std(0).min() > 5  # colours vary


def test_bad_sizes_are_one_line_usage_errors(tmp_path):
    with pytest.raises(UsageError, match="at least 1 point"):
        generate_scene(0, 0, 0)
    with pytest.raises(UsageError, match="scenes must be a whole number >= 1, got 0"):
        scenes_dir(SceneSpec(scenes=0, cache=str(tmp_path)))


def test_build_writes_a_scans_dataset_the_scans_reader_opens(spec, capsys):
    root = build_scenes(spec)
    assert root == scenes_dir(spec) and root.parent == scenes_dir(spec).parent
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "generating 3 synthetic indoor scenes" in err and "not real scans" in err
    reader = DatasetReader(root, kind="scan")
    assert len(reader) == 3 and reader.options == {"voxel_size": gs.VOXEL_SIZE, "label_map": gs.LABEL_MAP}
    about = json.loads((root / "generated.json").read_text())
    assert "not real scans" in about["what"] and about["seed"] == 7 and about["room_types"] == list(ROOM_TYPES[:3])
    assert sorted(p.name for p in root.iterdir()) == ["generated.json", "header.json", "manifest.json", "shards"]

    table = load_label_map(gs.LABEL_MAP)
    items = ScanTrainDataset(root)
    for i in range(3):
        pts, feats, labels = items[i]
        raw = generate_scene(7, i, N)
        assert pts.shape == (N, 3) and feats.shape == (N, 3) and 0 <= feats.min() and feats.max() <= 1
        torch.testing.assert_close(pts, torch.from_numpy(raw["points"]))
        want = table.table[raw["labels"] - table.lo]  # NYU40 -> ScanNet20, the ceiling ignored (-1)
        assert torch.equal(labels, torch.from_numpy(want)) and int(labels.min()) >= -1 and int(labels.max()) <= 19
        if (raw["labels"] == CLASSES["ceiling"]).any():
            assert (labels[torch.from_numpy(raw["labels"] == CLASSES["ceiling"])] == -1).all()
    batch = collate_scans([items[0], items[1]])
    assert isinstance(batch, ScenePoints) and batch.points.shape == (2 * N, 3) and batch.num_scenes == 2


def test_building_twice_reuses_the_cache(spec, capsys, monkeypatch):
    root = build_scenes(spec)
    stamps = {p: p.stat().st_mtime_ns for p in root.rglob("*")}
    capsys.readouterr()

    def refuse(*args, **kwargs):
        raise AssertionError("built again")

    monkeypatch.setattr(gs, "generate_scene", refuse)
    monkeypatch.setattr(scans, "prep_scans", refuse)
    assert build_scenes(spec) == root
    assert capsys.readouterr().err == ""
    assert {p: p.stat().st_mtime_ns for p in root.rglob("*")} == stamps
    assert scenes_dir(replace(spec, seed=8)) != root and scenes_dir(replace(spec, points=N + 1)) != root


def test_a_crash_mid_build_leaves_no_dataset_and_the_next_build_resumes(spec, monkeypatch):
    write = DatasetWriter.write
    calls = []

    def crash_on_the_second(self, key, tensors, meta):
        calls.append(key)
        if len(calls) == 2:
            raise KeyboardInterrupt  # as a killed process: nothing after this point runs
        write(self, key, tensors, meta)

    monkeypatch.setattr(DatasetWriter, "write", crash_on_the_second)
    with pytest.raises(KeyboardInterrupt):
        build_scenes(spec, progress=False)
    root = scenes_dir(spec)
    partial = root.with_name(root.name + ".partial")
    assert not root.exists() and not (partial / "manifest.json").exists()  # nothing a reader would open
    assert sorted(p.name for p in (partial / "shards").glob("*.json")) == ["scene_0000.json"]
    monkeypatch.undo()

    statuses = []
    real = scans.prep_scans

    def spy(*args, **kwargs):
        rows, failures = real(*args, **kwargs)
        statuses.extend(r["status"] for r in rows)
        return rows, failures

    monkeypatch.setattr(scans, "prep_scans", spy)
    assert build_scenes(spec, progress=False) == root
    assert statuses == ["skipped", "written", "written"]  # the complete scene was kept
    assert not partial.exists() and len(DatasetReader(root, kind="scan")) == 3


def test_the_scenes_kind_is_default_data_read_like_scans(tmp_path, monkeypatch, capsys):
    kind = get_data_kind("scenes")
    scans = get_data_kind("scans")
    assert kind.default_data and not kind.reads_folders and kind.collate == scans.collate
    assert "GENERATED" in kind.description and "not real scans" in kind.description
    monkeypatch.setattr(gs, "SceneSpec", lambda: SceneSpec(scenes=2, points=500, cache=str(tmp_path)))
    dataset = kind.open_dataset(None, None, seed=123)
    assert len(dataset) == 2 and dataset[0][0].shape == (500, 3)
    assert isinstance(kind.collate_fn()([dataset[0], dataset[1]]), ScenePoints)
    capsys.readouterr()
    assert main(["list", "data"]) == 0
    rows = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()[2:]}
    assert "scenes" in rows and "GENERATED indoor scenes" in rows["scenes"]
