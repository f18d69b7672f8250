"""The data-kind registry: built-in kinds and their batch types, validation of data.kind, new kinds end to end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch_geometric.data import Batch

import geomask
from geomask.datasets import kinds
from geomask.datasets.kinds import available_data_kinds, data_kind_choices, get_data_kind, register_data_kind
from geomask.datasets.store import DatasetWriter
from geomask.errors import UsageError
from geomask.train.config import ConfigError, DataConfig, ObjectsConfig, SyntheticConfig, load_config
from geomask.train.data import DataModule, data_kinds

BUILTIN = ["circuits", "pairs", "scans", "synthetic", "objects", "corpus", "corpus_pairs", "scenes", "images", "shapes"]
BUILTIN += ["text", "sequences", "generated_text"]  # the sequence kinds (issue 13)
FOLDERS = ["text", "sequences"]  # the sequence kinds that read prep folders
BUILTIN += ["graphs"]  # generic graphs (issue 14)
FOLDERS += ["graphs"]
BUILTIN += ["scan_objects"]  # real objects cut out of labelled scans (issue 11)
FOLDERS += ["scan_objects"]
BUILTIN += ["peptide_pairs", "generated_peptides"]  # receptor-peptide pairs (issue 13)
FOLDERS += ["peptide_pairs"]
BUILTIN += ["paired_families"]  # GENERATED paired families, DiffPALM (issue 13)


@pytest.fixture
def registry(monkeypatch):
    """The registry, restored after the test (kinds registered in it vanish)."""
    monkeypatch.setattr(kinds, "_KINDS", dict(kinds._KINDS))
    return kinds


def test_builtin_kinds_are_listed_with_one_line_descriptions():
    listed = available_data_kinds()
    assert list(listed) == BUILTIN
    assert all(text and "\n" not in text for text in listed.values())
    assert data_kind_choices() == ("auto", *BUILTIN)
    assert [k for k in BUILTIN if get_data_kind(k).reads_folders] == ["circuits", "pairs", "scans", "images", *FOLDERS]
    from geomask.methods.registry import DATA_KINDS as METHOD_KINDS  # every kind a method names is registered

    assert {k for taken in METHOD_KINDS.values() for k in taken} <= set(listed)


def test_the_module_docstring_table_names_every_kind():
    # the first column of the table in geomask.datasets.kinds' docstring (long names wrap after "_": corpus_ pairs)
    doc = kinds.__doc__
    rows = doc[doc.index("kind        item") :].split("\n==========")[1].splitlines()[1:]
    names: list[str] = []
    for cell in (r[:10].strip() for r in rows):
        if cell and names and names[-1].endswith("_"):
            names[-1] += cell
        elif cell:
            names.append(cell)
    assert sorted(names) == sorted(available_data_kinds())


def test_unknown_kind_is_one_line_naming_the_valid_ones():
    with pytest.raises(UsageError) as e:
        get_data_kind("meshes")
    assert (
        str(e.value)
        == "unknown data kind 'meshes'; valid: auto, circuits, pairs, scans, synthetic, objects, corpus, corpus_pairs, "
        "scenes, images, shapes, text, sequences, generated_text, graphs, scan_objects, peptide_pairs, "
        "generated_peptides, paired_families"
    )
    with pytest.raises(ConfigError) as e:
        load_config({"method": {"name": "mgm"}, "data": {"kind": "meshes"}})
    assert (
        str(e.value)
        == "data.kind: must be one of auto, circuits, pairs, scans, synthetic, objects, corpus, corpus_pairs, scenes, "
        "images, shapes, text, sequences, generated_text, graphs, scan_objects, peptide_pairs, generated_peptides, "
        "paired_families, got 'meshes'"
    )
    with pytest.raises(ConfigError, match=r"^data\.kind: must be one of auto, circuits"):
        data_kinds(DataConfig(kind="meshes"))


def test_objects_batch_dense_and_synthetic_batch_pyg():
    dm = DataModule(DataConfig(kind="objects", batch_size=4, objects=ObjectsConfig(num_objects=8, num_points=64)), 0)
    dm.setup()
    batch = next(iter(dm.train_dataloader()))
    assert isinstance(batch, torch.Tensor) and batch.shape == (4, 64, 3)
    assert dm.describe() == "8 clouds: 8 train, 0 validation"
    cfg = DataConfig(kind="synthetic", batch_size=2, synthetic=SyntheticConfig(graphs=4))
    dm = DataModule(cfg, 0)
    dm.setup()
    assert isinstance(next(iter(dm.train_dataloader())), Batch)
    assert dm.describe() == "4 graphs (0 with Verilog): 4 train, 0 validation"
    with pytest.raises(ConfigError, match=r"^data\.objects\.num_points: must be > 0"):
        load_config({"method": {"name": "pointmae"}, "data": {"kind": "objects", "objects": {"num_points": 0}}})


def test_scan_objects_batch_dense_and_feed_point_mae(tmp_path):
    from geomask.datasets.prep_objects import prep_objects

    rng = np.random.default_rng(0)
    pts = rng.random((300, 3)).astype(np.float32)
    sem, ins = np.repeat([5, 3, 1], 100), np.repeat([1, 2, 3], 100)  # two objects and a wall
    np.save(tmp_path / "s_vert_all.npy", np.concatenate([pts, np.zeros((300, 3), np.float32)], 1))
    np.save(tmp_path / "s_sem_label_all.npy", sem)
    np.save(tmp_path / "s_ins_label_all.npy", ins)
    prep_objects([tmp_path / "s_vert_all.npy"], tmp_path / "obj", num_points=64, progress=False)
    root = str(tmp_path / "obj")
    assert data_kinds(DataConfig(kind="auto", roots=[root])) == [(root, "scan_objects")]
    dm = DataModule(DataConfig(kind="scan_objects", roots=[str(tmp_path / "obj")], batch_size=2), 0)
    dm.setup()
    batch = next(iter(dm.train_dataloader()))
    assert isinstance(batch, torch.Tensor) and batch.shape == (2, 64, 3)
    assert dm.describe().startswith("2 clouds")
    from geomask.methods.pointmae import PointMAE

    out = PointMAE(num_groups=8, group_size=8, dim=16, depth=1, decoder_depth=1, heads=2, embed_hidden=8)(
        batch, torch.Generator().manual_seed(0)
    )
    assert torch.isfinite(out["loss"])


def _scans(root: Path) -> None:
    from geomask.datasets.scans import prep_scans

    rng = np.random.default_rng(0)
    sources = []
    for name, n in (("a", 200), ("b", 120), ("c", 90)):
        pts = rng.uniform(0, 2, size=(n, 3)).astype(np.float32)
        np.save(root / f"{name}.npy", np.concatenate([pts, rng.integers(0, 256, (n, 3))], 1).astype(np.float32))
        sources.append(root / f"{name}.npy")
    prep_scans(sources, root / "ds", 0.25, progress=False)


def test_scans_batch_as_scene_points_and_do_not_mix_with_circuits(tmp_path):
    from geomask.datasets.circuits import SCHEMA_VERSION, graph_record
    from geomask.points.augment import ScenePoints
    from geomask.train.data import random_aig

    _scans(tmp_path)
    dm = DataModule(DataConfig(kind="auto", roots=[str(tmp_path / "ds")], batch_size=2), 0)
    dm.setup()
    loader = iter(dm.train_dataloader())
    batches = [next(loader) for _ in range(2)]  # one data epoch: batches of 2 and 1 scans
    assert all(isinstance(b, ScenePoints) and b.feats.shape[1] == 3 for b in batches)
    assert all(len(b.points) == len(b.batch) == len(b.feats) for b in batches)
    assert sorted(b.num_scenes for b in batches) == [1, 2]
    assert sum(len(b.points) for b in batches) == 200 + 120 + 90
    assert dm.describe() == "3 scans: 3 train, 0 validation"
    w = DatasetWriter(tmp_path / "circ", "aig", SCHEMA_VERSION, {"not_nodes": "per_edge"})
    tensors, _ = graph_record(random_aig(np.random.default_rng(0), 3, 10, 2), "per_edge")
    w.write("d0", tensors, {"name": "d0", "not_nodes": "per_edge"})
    w.finalize()
    mixed = DataConfig(kind="auto", roots=[str(tmp_path / "ds"), str(tmp_path / "circ")])
    with pytest.raises(ConfigError) as e:
        data_kinds(mixed)
    assert str(e.value) == (
        f"data.roots: {tmp_path / 'ds'} is a scans dataset and {tmp_path / 'circ'} a circuits dataset: "
        "their batches differ, so one run reads one"
    )


# -- a kind registered from outside: a generated one and one that reads folders --------------------------------


class Ranges(torch.utils.data.Dataset):
    """Item ``i``: ``arange(i % 3 + 1)`` as floats; its group is its length's parity."""

    def __init__(self, n: int, offset: int = 0) -> None:
        self.n, self.offset = n, offset

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> torch.Tensor:
        return torch.arange((i + self.offset) % 3 + 1, dtype=torch.float32)


def open_ranges(root, cfg, seed):
    if root is None:
        return Ranges(cfg.batch_size * 3)
    return Ranges(len(json.loads((root / "manifest.json").read_text())["items"]), offset=1)


def collate_ranges(items):
    """A padded ``[B, L]`` tensor."""
    return torch.nn.utils.rnn.pad_sequence(list(items), batch_first=True)


def ranges_groups(ds):
    return [(ds[i].numel()) % 2 for i in range(len(ds))]


def test_a_new_generated_kind_validates_batches_and_groups(registry):
    with pytest.raises(ConfigError, match="must be one of"):
        load_config({"method": {"name": "mgm"}, "data": {"kind": "ranges"}})
    register_data_kind(
        "ranges",
        description="aranges of length 1 to 3",
        batch="padded float tensor [B, L]",
        open=open_ranges,
        collate=collate_ranges,
        groups=ranges_groups,
        group_names={1: "odd"},
        items="ranges",
    )
    assert available_data_kinds()["ranges"] == "aranges of length 1 to 3"
    cfg = load_config({"method": {"name": "mgm"}, "data": {"kind": "ranges", "batch_size": 2}})  # no roots needed
    assert data_kinds(cfg.data) == [(None, "ranges")]
    dm = DataModule(cfg.data, 0)
    dm.setup()
    assert dm.describe() == "6 ranges (4 odd): 6 train, 0 validation"
    seen = []
    for batch, _ in zip(dm.train_dataloader(), range(6)):
        lengths = (batch > 0).sum(1) + 1  # arange starts at 0: its length is the count of positives + 1
        assert batch.ndim == 2 and len({int(n) % 2 for n in lengths}) == 1  # one group per batch
        seen.append(batch.shape[0])
    assert sum(seen[:3]) == 6  # one data epoch: 4 odd (2 + 2) and 2 even (2)


def test_a_new_folder_kind_is_read_by_auto_from_its_manifest(registry, tmp_path):
    w = DatasetWriter(tmp_path / "r", "ranges_v1", 1, {})
    for i in range(5):
        w.write(f"k{i}", {"x": torch.zeros(1)}, {"name": f"k{i}"})
    w.finalize()
    cfg = DataConfig(kind="auto", roots=[str(tmp_path / "r")], batch_size=5)
    from geomask.errors import FormatError

    with pytest.raises(FormatError, match="holds 'ranges_v1' items, which pretraining does not read"):
        data_kinds(cfg)
    register_data_kind(
        "ranges", description="r", batch="[B, L]", open=open_ranges, collate=collate_ranges, manifests=("ranges_v1",)
    )
    assert data_kinds(cfg) == [(str(tmp_path / "r"), "ranges")]
    dm = DataModule(cfg, 0)
    dm.setup()
    assert next(iter(dm.train_dataloader())).shape == (5, 3)
    with pytest.raises(ConfigError, match="needs at least one dataset folder"):
        load_config({"method": {"name": "mgm"}, "data": {"kind": "ranges"}})


def test_registration_refuses_auto_taken_names_and_claimed_manifests(registry):
    common = {"description": "x", "batch": "x", "open": open_ranges, "collate": collate_ranges}
    with pytest.raises(UsageError, match="other than 'auto'"):
        register_data_kind("auto", **common)
    with pytest.raises(UsageError, match="lower-case identifier"):
        register_data_kind("My Kind", **common)
    with pytest.raises(UsageError, match="'circuits' is registered already"):
        register_data_kind("circuits", **common)
    with pytest.raises(UsageError, match="data kind 'circuits' reads 'aig' datasets already"):
        register_data_kind("graphs2", manifests=("aig",), **common)
    with pytest.raises(UsageError, match="one line"):
        register_data_kind("two", **{**common, "description": "a\nb"})
    register_data_kind("circuits", replace=True, **{**common, "description": "replaced"})
    assert available_data_kinds()["circuits"] == "replaced"


def test_the_registry_and_the_config_load_without_torch():
    code = (
        "import sys, geomask.train\n"
        "from geomask.datasets.kinds import available_data_kinds\n"
        "from geomask.train.config import DATA_KINDS, load_config\n"
        "load_config({'method': {'name': 'mgm'}, 'data': {'kind': 'synthetic'}})\n"
        f"assert len(available_data_kinds()) == {len(BUILTIN)} and DATA_KINDS[0] == 'auto'\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'torch_geometric', 'lightning')))\n"
    )
    env = dict(os.environ)
    env["PYTHONPATH"] = str(Path(geomask.__file__).resolve().parents[1]) + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"
