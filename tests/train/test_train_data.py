"""Training data: step-indexed batches (resumable, group-pure, rank-disjoint), synthetic AIGs, circuit roots,
and `geomask.pretrain`."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from geomask.circuits.graph import NodeType, graph_to_aig
from geomask.datasets.circuits import SCHEMA_VERSION, graph_record
from geomask.datasets.store import DatasetWriter
from geomask.errors import FormatError
from geomask.train.config import ConfigError, DataConfig, SyntheticConfig
from geomask.train.data import GraphDataModule, StepBatchSampler, SyntheticAIGDataset, random_aig


def _groups() -> list[np.ndarray]:
    return [np.arange(0, 13), np.arange(13, 20)]


def test_sampler_resumes_at_any_step():
    full = StepBatchSampler(_groups(), batch_size=4, seed=5)
    it = iter(full)
    first = [next(it) for _ in range(30)]
    resumed = StepBatchSampler(_groups(), batch_size=4, seed=5, start_step=17)
    it2 = iter(resumed)
    assert [next(it2) for _ in range(13)] == first[17:]


def test_sampler_epoch_covers_each_item_once_within_groups():
    s = StepBatchSampler(_groups(), batch_size=4, seed=1)
    assert s.batches_per_epoch == 4 + 2
    for epoch in range(3):
        batches = s.epoch_batches(epoch)
        items = np.concatenate(batches)
        assert sorted(items.tolist()) == list(range(20))
        for b in batches:  # a batch never mixes the two groups
            assert (b < 13).all() or (b >= 13).all()
    assert [b.tolist() for b in s.epoch_batches(0)] != [b.tolist() for b in s.epoch_batches(1)]
    other_seed = StepBatchSampler(_groups(), batch_size=4, seed=2)
    assert [b.tolist() for b in s.epoch_batches(0)] != [b.tolist() for b in other_seed.epoch_batches(0)]


def test_sampler_ranks_take_disjoint_batches():
    ranks = [StepBatchSampler(_groups(), batch_size=4, seed=0, rank=r, world_size=2) for r in range(2)]
    assert ranks[0].batches_per_epoch == 6
    n_steps = 3  # one data epoch split over two ranks
    seen = [[x for s in range(n_steps) for x in r.batch_at(s)] for r in ranks]
    assert not set(seen[0]) & set(seen[1])
    assert sorted(seen[0] + seen[1]) == list(range(20))


def test_random_aig_is_topological_and_builds_a_graph():
    rng = np.random.default_rng(0)
    aig = random_aig(rng, n_in=4, n_and=30, n_out=3)
    var = np.arange(aig.num_inputs + 1, aig.num_inputs + 31)[:, None]
    assert ((aig.ands >> 1) < var).all() and ((aig.ands >> 1) >= 1).all()
    ds = SyntheticAIGDataset(SyntheticConfig(graphs=3, ands=[30, 30], inputs=[4, 4], outputs=[3, 3]), seed=0)
    g = ds[1]
    assert int((g.node_type == NodeType.AND).sum()) == 30
    assert graph_to_aig(g).num_ands == 30


def test_synthetic_items_are_deterministic_and_carry_verilog():
    cfg = SyntheticConfig(graphs=12, verilog_dim=6, verilog_chunks=[2, 4], verilog_fraction=0.5)
    a, b = SyntheticAIGDataset(cfg, seed=9), SyntheticAIGDataset(cfg, seed=9)
    assert 0 < a.has_verilog.sum() < 12
    for i in range(12):
        ga, gb = a[i], b[i]
        assert torch.equal(ga.edge_index, gb.edge_index)
        assert hasattr(ga, "verilog_emb") == bool(a.has_verilog[i])
        if a.has_verilog[i]:
            assert ga.verilog_emb.shape[1] == 6 and 2 <= ga.verilog_emb.shape[0] <= 4
            assert ga.verilog_vec.shape == (1, 6)
    assert not torch.equal(SyntheticAIGDataset(cfg, seed=10)[0].node_type, a[0].node_type) or (
        SyntheticAIGDataset(cfg, seed=10)[0].edge_index.shape != a[0].edge_index.shape
    )


def test_datamodule_batches_follow_verilog_chunks_and_split():
    cfg = DataConfig(
        kind="synthetic", batch_size=4, val_fraction=0.25, synthetic=SyntheticConfig(graphs=16, verilog_dim=5)
    )
    dm = GraphDataModule(cfg, seed=1)
    dm.setup("fit")
    train_idx = np.concatenate(dm.train_groups)
    val_idx = np.concatenate(dm.val_groups)
    assert len(val_idx) == 4 and not set(train_idx) & set(val_idx)
    batch = next(iter(dm.train_dataloader()))
    assert batch.num_graphs == 4
    assert batch.verilog_vec.shape == (4, 5)
    assert batch.verilog_emb_batch.shape[0] == batch.verilog_emb.shape[0]
    assert batch.verilog_emb_batch.max().item() == 3
    assert "12 train, 4 validation" in dm.describe()


def _write_circuits(root, seeds, not_nodes="per_edge"):
    w = DatasetWriter(root, "aig", SCHEMA_VERSION, {"not_nodes": not_nodes})
    for s in seeds:
        aig = random_aig(np.random.default_rng(s), 3, 10 + s, 2)
        tensors, _ = graph_record(aig, not_nodes)
        w.write(f"d{s}", tensors, {"name": f"d{s}", "not_nodes": not_nodes})
    w.finalize()


def test_circuit_roots_are_read_by_manifest_kind(tmp_path):
    _write_circuits(tmp_path / "a", [1, 2, 3])
    _write_circuits(tmp_path / "b", [4, 5])
    cfg = DataConfig(kind="auto", roots=[str(tmp_path / "a"), str(tmp_path / "b")], batch_size=2)
    dm = GraphDataModule(cfg, seed=0)
    dm.setup("fit")
    assert len(dm.dataset) == 5 and len(dm.train_groups[1]) == 0
    seen = set()
    loader = iter(dm.train_dataloader())
    for _ in range(3):  # one data epoch: 5 graphs in batches of 2
        batch = next(loader)
        seen.update(batch.name)
        assert not hasattr(batch, "verilog_emb")
    assert seen == {"d1", "d2", "d3", "d4", "d5"}


def test_missing_root_is_a_sentence_and_a_folder_without_manifest_a_format_error(tmp_path):
    dm = GraphDataModule(DataConfig(kind="auto", roots=[str(tmp_path / "nope")]), seed=0)
    with pytest.raises(ConfigError) as e:
        dm.setup("fit")
    assert str(e.value) == f"data.roots: no such folder: {tmp_path / 'nope'}"
    (tmp_path / "empty").mkdir()
    dm = GraphDataModule(DataConfig(kind="auto", roots=[str(tmp_path / "empty")]), seed=0)
    with pytest.raises(FormatError, match="manifest"):
        dm.setup("fit")


def _write_pairs(root, designs, dim=6):
    from geomask.datasets.pairs import KIND
    from geomask.datasets.pairs import SCHEMA_VERSION as PAIRS_SCHEMA

    w = DatasetWriter(root, KIND, PAIRS_SCHEMA, {"not_nodes": "per_edge"})
    rng = np.random.default_rng(0)
    for d in designs:
        emb = torch.from_numpy(rng.standard_normal((2 + d, dim)).astype(np.float32))
        for v in range(2):  # an original and one "recipe" variant, the same Verilog
            tensors, _ = graph_record(random_aig(np.random.default_rng(10 * d + v), 3, 12, 2), "per_edge")
            tensors.update(verilog_emb=emb, verilog_vec=emb.mean(0, keepdim=True))
            meta = {"name": f"p{d}_{v}", "design": f"p{d}", "variant": "original" if v == 0 else "recipe_0"}
            w.write(f"p{d}__{v}", tensors, {**meta, "not_nodes": "per_edge"})
    w.finalize()


def test_pairs_and_circuits_mix_without_mixing_batches(tmp_path, tiny_config):
    _write_pairs(tmp_path / "pairs", [1, 2, 3])
    _write_circuits(tmp_path / "circ", [1, 2, 3, 4])
    roots = [str(tmp_path / "pairs"), str(tmp_path / "circ")]
    dm = GraphDataModule(DataConfig(kind="auto", roots=roots, batch_size=3), seed=0)
    dm.setup("fit")
    assert [len(g) for g in dm.train_groups] == [4, 6]
    loader = iter(dm.train_dataloader())
    kinds = set()
    for _ in range(8):
        batch = next(loader)
        names = set(batch.name)
        with_verilog = hasattr(batch, "verilog_emb")
        assert all(n.startswith("p") for n in names) if with_verilog else all(n.startswith("d") for n in names)
        if with_verilog:
            assert batch.verilog_emb_batch.max().item() == batch.num_graphs - 1
            assert batch.verilog_vec.shape == (batch.num_graphs, 6)
        kinds.add(with_verilog)
    assert kinds == {True, False}
    # and MGVGA trains on the mix (VGA on pair batches, MGM only on the others)
    from geomask.train import train

    cfg = tiny_config("mix", data={"kind": "auto", "roots": roots}, trainer={"max_steps": 3})
    cfg["method"]["verilog_dim"] = 6
    r = train(cfg)
    assert r.steps == 3 and np.isfinite(r.metrics["train/loss"])
    assert "10 graphs (6 with Verilog)" in r.data


def test_geomask_pretrain_is_a_function_and_geomask_train_a_plain_package(tiny_config):
    import types

    import geomask
    import geomask.train

    assert type(geomask.train) is types.ModuleType  # no class swapped in at import time
    r = geomask.pretrain(tiny_config("top"), ["trainer.max_steps=2"])
    assert r.steps == 2 and r.status == "new" and np.isfinite(r.metrics["train/loss"])
