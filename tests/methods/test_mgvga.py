"""MGVGA specifics: Verilog modes, MGM-only batches, and a short training run that learns gate types."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch_geometric.data import Batch

from geomask.circuits import aig_to_graph
from geomask.io.aig import AIG
from geomask.masking import RowLayout
from geomask.methods import build_method

D = 12


def random_aig(rng: np.random.Generator, ni: int = 5, na: int = 30, no: int = 4) -> AIG:
    var = np.arange(na) + ni + 1
    a, b = rng.integers(1, var), rng.integers(1, var)
    ands = np.stack([2 * a + rng.integers(0, 2, na), 2 * b + rng.integers(0, 2, na)], 1).astype(np.int64)
    return AIG(num_inputs=ni, ands=ands, outputs=rng.integers(2, 2 * (ni + na) + 2, size=no).astype(np.int64))


def make_batch(num_graphs: int, seed: int = 0, verilog: bool = True, follow: bool = True) -> Batch:
    rng = np.random.default_rng(seed)
    gs = []
    for _ in range(num_graphs):
        g = aig_to_graph(random_aig(rng), "per_edge")
        if verilog:
            g.verilog_emb = torch.as_tensor(rng.normal(size=(4, D)), dtype=torch.float32)
            g.verilog_vec = torch.as_tensor(rng.normal(size=(1, D)), dtype=torch.float32)
        gs.append(g)
    return Batch.from_data_list(gs, follow_batch=["verilog_emb"] if verilog and follow else None)


def build(name: str, **kw):
    torch.manual_seed(0)
    if name.startswith("mgvga"):
        kw = {"verilog_dim": D, "cross_heads": 4, **kw}
    return build_method(name, hidden=16, layers=2, **kw)


def attention_context(name: str, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
    """The first align layer's attention output and the graph of each of its rows (rows are nodes, or one
    per graph and cone class where the method deduplicates)."""
    m = build(name)
    seen = []
    m.align[0].attn.register_forward_hook(lambda mod, inp, out: seen.append((out.detach(), inp[1])))
    m(batch, torch.Generator().manual_seed(0))
    return seen[0]


def test_single_vector_mode_gives_every_node_the_same_context():
    b = make_batch(3)
    ctx, row_graph = attention_context("mgvga_single", b)
    for g in range(3):
        rows = ctx[row_graph == g]
        assert rows.shape[0] > 1
        torch.testing.assert_close(rows, rows[:1].expand_as(rows))


def test_chunk_mode_gives_nodes_different_contexts():
    b = make_batch(3)
    ctx, row_graph = attention_context("mgvga", b)
    for g in range(3):
        rows = ctx[row_graph == g]
        # nodes with different states attend differently (nodes with equal states, e.g. all PIs, may agree)
        assert torch.unique(rows.round(decimals=5), dim=0).shape[0] > 3


def test_batch_without_verilog_gets_mgm_only():
    out = build("mgvga")(make_batch(3, verilog=False), torch.Generator().manual_seed(0))
    assert "vga_type" not in out and "mgm_type" in out
    torch.testing.assert_close(out["loss"], out["mgm_type"] + out["mgm_degree"])


def test_missing_follow_batch_is_an_error():
    with pytest.raises(ValueError, match="follow_batch"):
        build("mgvga")(make_batch(2, follow=False), torch.Generator().manual_seed(0))


def test_loss_weights():
    b = make_batch(2)
    out = build("mgvga", vga_weight=0.0, degree_weight=0.0)(b, torch.Generator().manual_seed(0))
    assert out["mgm_degree"].item() == 0.0
    torch.testing.assert_close(out["loss"], out["mgm_type"])


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny tensors: one intra-op thread avoids OpenMP barrier stalls on a busy machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_short_training_beats_majority_class():
    """~100 AdamW steps of MGM on a few tiny AIGs: masked gate-type accuracy above the majority baseline."""
    torch.manual_seed(0)
    train = make_batch(6, seed=11, verilog=False)
    model = build_method("mgm", hidden=32, layers=3)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for step in range(100):
        opt.zero_grad()
        model(train, torch.Generator().manual_seed(step))["loss"].backward()
        opt.step()
    model.eval()
    accs, majority = [], []
    with torch.no_grad():
        for s in range(20):
            gen = torch.Generator().manual_seed(1000 + s)
            accs.append(model(train, gen)["mgm_acc"].item())
            mask = model.mgm_masker(RowLayout(train.batch, train.num_graphs), torch.Generator().manual_seed(1000 + s))
            counts = torch.bincount(train.node_type[mask], minlength=5)
            majority.append((counts.max() / counts.sum()).item())
    assert np.mean(accs) > np.mean(majority) + 0.1, (np.mean(accs), np.mean(majority))


@pytest.mark.parametrize("name", ["mgvga", "mgvga_single", "mgm"])
@pytest.mark.parametrize("head_dropout", [0.0, 0.1])
def test_class_wise_step_equals_per_node_step(name, head_dropout):
    """The cone-class path (default) gives the per-node path's losses and gradients."""
    b = make_batch(4, seed=5)
    results = []
    for dedup in (True, False):
        m = build(name, head_dropout=head_dropout, dedup=dedup)
        torch.manual_seed(1)  # dropout masks
        out = m(b, torch.Generator().manual_seed(2))
        out["loss"].backward()
        results.append((out, {k: p.grad for k, p in m.named_parameters() if p.grad is not None}))
    (o1, g1), (o2, g2) = results
    for k in o2:
        torch.testing.assert_close(o1[k], o2[k])
    assert set(g1) == set(g2)
    for k in g2:
        torch.testing.assert_close(g1[k], g2[k], atol=1e-6, rtol=1e-5)


def test_class_wise_embed_equals_per_node_embed():
    b = make_batch(3, seed=9, verilog=False)
    m = build("mgm").eval()
    with torch.no_grad():
        fast = m.embed(b)
        m.dedup = False
        torch.testing.assert_close(fast, m.embed(b))


@pytest.mark.parametrize("name", ["mgm", "graphmae"])
def test_attr_mode_learns_from_inversions_alone(name):
    """Two AIGs that differ only in one inverted fan-in: under ``not_nodes: attr`` (no NOT nodes, edge_type 1 on
    inverted edges) an MGM with two relations tells them apart, in its features and its loss; with one relation the
    typed graphs are refused (once they were read as equal: every inversion dropped)."""
    from geomask.errors import UsageError

    plain = AIG(num_inputs=2, ands=[[2, 4]], outputs=[6])
    inverted = AIG(num_inputs=2, ands=[[2, 5]], outputs=[6])  # b inverted into the AND
    graphs = [aig_to_graph(a, "attr") for a in (plain, inverted)]
    assert torch.equal(graphs[0].node_type, graphs[1].node_type)
    assert torch.equal(graphs[0].edge_index, graphs[1].edge_index)
    assert not torch.equal(graphs[0].edge_type, graphs[1].edge_type)

    extra = {"head_dropout": 0.0} if name == "mgm" else {}
    method = build_method(name, hidden=16, layers=2, num_relations=2, **extra).eval()
    with torch.no_grad():
        feats = [method.features(Batch.from_data_list([g])) for g in graphs]
        losses = [method(Batch.from_data_list([g]), torch.Generator().manual_seed(0))["loss"] for g in graphs]
    assert feats[0].shape == feats[1].shape and not torch.allclose(feats[0], feats[1])
    assert not torch.allclose(losses[0], losses[1])

    one = build_method(name, hidden=16, layers=2).eval()
    with pytest.raises(UsageError, match="num_relations=2"):
        one.features(Batch.from_data_list([graphs[1]]))
    gcn = build_method(name, hidden=16, layers=2, encoder="gcn").eval()  # PyG layers: no edge types at all
    with pytest.raises(UsageError, match="reads no edge types"):
        gcn.features(Batch.from_data_list([graphs[1]]))
    with pytest.raises(UsageError, match="num_relations must be 1"):
        build_method(name, hidden=16, layers=2, encoder="gcn", num_relations=2)
