"""Contract of every registered method: losses, gradients, seeded masking, embeddings, name errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch_geometric.data import Batch

from geomask.circuits import aig_to_graph
from geomask.io.aig import AIG
from geomask.methods import METHODS, build_method

# The circuit-graph methods share this contract; point and scan methods (pointmae, pointbert, msm, cpcm) take
# other batches and have their own contract tests beside their files.
GRAPH_METHODS = ["graphmae", "mgm", "mgvga", "mgvga_single"]

D = 12
TINY = {"hidden": 16, "layers": 2}


def random_aig(rng: np.random.Generator, ni: int = 5, na: int = 30, no: int = 4) -> AIG:
    var = np.arange(na) + ni + 1
    a, b = rng.integers(1, var), rng.integers(1, var)
    ands = np.stack([2 * a + rng.integers(0, 2, na), 2 * b + rng.integers(0, 2, na)], 1).astype(np.int64)
    return AIG(num_inputs=ni, ands=ands, outputs=rng.integers(2, 2 * (ni + na) + 2, size=no).astype(np.int64))


def make_batch(num_graphs: int, seed: int = 0, verilog: bool = True) -> Batch:
    rng = np.random.default_rng(seed)
    gs = []
    for _ in range(num_graphs):
        g = aig_to_graph(random_aig(rng, na=int(rng.integers(10, 40))), "per_edge")
        if verilog:
            g.verilog_emb = torch.as_tensor(rng.normal(size=(int(rng.integers(1, 5)), D)), dtype=torch.float32)
            g.verilog_vec = torch.as_tensor(rng.normal(size=(1, D)), dtype=torch.float32)
        gs.append(g)
    return Batch.from_data_list(gs, follow_batch=["verilog_emb"] if verilog else None)


def build(name: str, **kw):
    torch.manual_seed(0)
    extra = {"verilog_dim": D, "cross_heads": 4} if name.startswith("mgvga") else {}
    return build_method(name, **TINY, **extra, **kw)


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny tensors: one intra-op thread avoids OpenMP barrier stalls on a busy machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# parameters that get no gradient by construction: with one key per graph the attention weight is 1, so the
# query/key projections and the norm in front of them cannot influence anything (as in the reference)
NO_GRAD = {"mgvga_single": ("attn.q.", "attn.k.", "attn_norm.")}


@pytest.mark.parametrize("name", GRAPH_METHODS)
def test_forward_backward_every_parameter(name):
    m = build(name)
    out = m(make_batch(5), torch.Generator().manual_seed(0))
    assert "loss" in out and all(v.dim() == 0 and torch.isfinite(v) for v in out.values())
    out["loss"].backward()
    for pname, p in m.named_parameters():
        if any(s in pname for s in NO_GRAD.get(name, ())):
            continue
        assert p.grad is not None, pname
        assert torch.isfinite(p.grad).all(), pname
        assert p.grad.abs().sum() > 0, pname


@pytest.mark.parametrize("name", GRAPH_METHODS)
@pytest.mark.parametrize("bs", [1, 10])
def test_losses_finite_for_batch_sizes(name, bs):
    out = build(name)(make_batch(bs, seed=bs), torch.Generator().manual_seed(1))
    assert all(torch.isfinite(v) for v in out.values())
    if name.startswith("mgvga"):
        assert {"mgm_type", "mgm_degree", "vga_type"} <= set(out)


@pytest.mark.parametrize("name", GRAPH_METHODS)
def test_masking_reproducible_from_generator(name):
    m = build(name).eval()
    b = make_batch(4)
    l1 = m(b, torch.Generator().manual_seed(7))["loss"]
    l2 = m(b, torch.Generator().manual_seed(7))["loss"]
    l3 = m(b, torch.Generator().manual_seed(8))["loss"]
    assert l1.item() == l2.item()
    assert l1.item() != l3.item()


@pytest.mark.parametrize("name", GRAPH_METHODS)
def test_embed_is_permutation_equivariant(name):
    m = build(name).eval()
    g = make_batch(1, seed=3, verilog=False).to_data_list()[0]
    n = g.num_nodes
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(0))
    inv = torch.argsort(perm)
    h = g.clone()
    h.node_type = g.node_type[perm]
    h.edge_index = inv[g.edge_index]
    with torch.no_grad():
        torch.testing.assert_close(m.embed(h), m.embed(g)[perm], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(m.graph_embed(h), m.graph_embed(g), atol=1e-5, rtol=1e-5)
        assert m.graph_embed(make_batch(3)).shape == (3, 2 * TINY["hidden"])


@pytest.mark.parametrize("encoder", ["gcn", "gin", "gat"])
def test_other_encoders(encoder):
    m = build("mgvga", encoder=encoder)
    out = m(make_batch(3), torch.Generator().manual_seed(0))
    out["loss"].backward()
    assert torch.isfinite(out["loss"])


def test_unknown_name_and_keyword():
    with pytest.raises(ValueError, match="graphmae"):
        build_method("not_a_method")
    with pytest.raises(ValueError, match="mgm_ratio"):
        build_method("mgm", vga_ratio=0.5)
    with pytest.raises(ValueError, match="deepgcn"):
        build_method("mgm", encoder="transformer")


def test_registry_lists_every_method_and_builds_lazily():
    others = {"pointmae", "pointbert", "msm", "cpcm", "mae", "simmim", "spark", "mlm", "mfm", "hpm", "dmjd"}
    others |= {"graphmae2"}  # GraphMAE2 (issue 14)
    others |= {"selective_mae", "uni4eye"}  # issue 12
    others |= {"ernie_gram"}  # issue 13
    others |= {"drbert"}  # issue 13
    others |= {"clm", "biphasic", "pepmlm"}  # issue 13
    others |= {"diffpalm"}  # issue 13
    assert set(GRAPH_METHODS) | others == set(METHODS)
    with pytest.raises(ValueError, match="unknown keyword"):
        build_method("msm", no_such_option=1)


def test_every_method_declares_the_data_kinds_it_trains_on():
    from geomask.methods.registry import DATA_KINDS, method_data_kinds
    from geomask.train.config import DATA_KINDS as CONFIG_KINDS

    assert set(DATA_KINDS) == set(METHODS)
    for name in METHODS:
        kinds = method_data_kinds(name)
        assert kinds and set(kinds) <= set(CONFIG_KINDS) - {"auto"}, name
    assert method_data_kinds("mgm") == ("circuits", "pairs", "synthetic", "corpus", "corpus_pairs")
    assert method_data_kinds("msm") == ("scans", "scenes") and method_data_kinds("pointmae") == (
        "objects",
        "scan_objects",
    )
    assert method_data_kinds("mae") == ("images", "shapes")
    assert method_data_kinds("not_registered") is None


def test_method_defaults_are_the_builders_keyword_defaults():
    from geomask.methods.registry import method_defaults, method_keywords

    mgm = method_defaults("mgm")
    assert mgm["hidden"] == 64 and mgm["mgm_ratio"] == 0.3 and set(mgm) == set(method_keywords("mgm"))
    assert method_defaults("mgvga")["vga_ratio"] == 0.5
    assert "num_groups" in method_defaults("pointmae")
