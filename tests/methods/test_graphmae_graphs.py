"""GraphMAE on generic graphs (``in_dim`` set): the method contract on a feature batch, the [MASK] / replacement
corruption, re-masking, and the builder's checks.  The AIG mode is covered by test_graphmae.py, the contract test
and the regression fixture."""

from __future__ import annotations

import pytest
import torch
from torch_geometric.data import Batch, Data

from geomask.methods import build_method
from geomask.methods.graphmae import GraphMAE
from geomask.methods.registry import method_data_kinds


def feature_batch(num_graphs: int = 3, f: int = 6, seed: int = 0) -> Batch:
    g = torch.Generator().manual_seed(seed)
    gs = []
    for _ in range(num_graphs):
        n = int(torch.randint(6, 12, (1,), generator=g))
        ei = torch.randint(0, n, (2, 3 * n), generator=g)
        gs.append(Data(x=torch.rand(n, f, generator=g), edge_index=torch.cat([ei, ei.flip(0)], 1)))
    return Batch.from_data_list(gs)


def build(encoder: str = "gat", **kw) -> GraphMAE:
    torch.manual_seed(0)
    base = {"encoder": encoder, "in_dim": 6, "hidden": 8, "layers": 2, "gat_heads": 2, "replace_rate": 0.2}
    if encoder == "gin":
        base.update(norm="batchnorm", pooling="sum")
    return build_method("graphmae", **{**base, **kw})


def test_data_kinds_include_generic_graphs():
    assert method_data_kinds("graphmae")[-1] == "graphs" and "circuits" in method_data_kinds("graphmae")


@pytest.mark.parametrize("encoder", ["gat", "gin"])
def test_forward_backward_every_parameter_gets_a_gradient(encoder):
    m = build(encoder).train()
    out = m(feature_batch(), torch.Generator().manual_seed(0))
    assert set(out) == {"loss", "sce"} and torch.isfinite(out["loss"])
    out["loss"].backward()
    missing = {n for n, p in m.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0}
    assert missing == m.unused_parameters(), missing  # GAT decoder: att_dst sees only re-masked zero rows


@pytest.mark.parametrize("encoder", ["gat", "gin"])
def test_seeded_and_side_effect_free(encoder):
    m = build(encoder, dropout=0.0, attn_drop=0.0).train()
    b = feature_batch()
    x0 = b.x.clone()
    a = m(b, torch.Generator().manual_seed(1))["loss"]
    assert torch.equal(a, m(b, torch.Generator().manual_seed(1))["loss"]) and torch.equal(b.x, x0)
    assert not torch.equal(a, m(b, torch.Generator().manual_seed(2))["loss"])


def test_corruption_mask_token_and_exact_replacement_share():
    m = build(replace_rate=0.25)
    with torch.no_grad():
        m.mask_token.fill_(-7.0)
    x = torch.arange(120.0).reshape(20, 6)
    mask = torch.zeros(20, dtype=torch.bool)
    mask[:8] = True
    out = m._corrupt(x, mask, torch.Generator().manual_seed(0))
    assert torch.equal(out[8:], x[8:])  # visible rows untouched
    token = (out[:8] == -7.0).all(1)
    assert int(token.sum()) == 6  # int(0.25 * 8) = 2 rows replaced by other nodes' features
    assert all(any(torch.equal(r, xr) for xr in x) for r in out[:8][~token])
    assert torch.equal(build(replace_rate=0.0)._corrupt(x, mask, torch.Generator())[:8], m.mask_token.new_zeros(8, 6))


def test_embeddings_and_pooling_shapes():
    b = feature_batch()
    gat, gin = build("gat").eval(), build("gin").eval()
    assert gat.features(b).shape == (b.num_nodes, 8)
    assert gin.graph_embed(b).shape == (3, 8)
    assert torch.allclose(gin.graph_embed(b), torch.zeros(3, 8).index_add_(0, b.batch, gin.embed(b)), atol=1e-5)


def test_builder_checks():
    with pytest.raises(ValueError, match="does not read node features"):
        build_method("graphmae", in_dim=6, encoder="deepgcn")
    with pytest.raises(ValueError, match="replace_rate"):
        build(replace_rate=1.0)
    with pytest.raises(ValueError, match="pooling"):
        build(pooling="median")
    with pytest.raises(ValueError, match="in_dim=6"):
        build()(feature_batch(f=5), torch.Generator())


def test_gat_init_graphmae_xavier_relu_or_default_glorot():
    def att_std(model: GraphMAE) -> float:
        return model.encoder.convs[0].att_src.std().item()

    kw = {"in_dim": 600, "hidden": 256, "gat_heads": 2, "replace_rate": 0.0}
    ours, pyg = build(gat_init="xavier_relu", **kw), build(**kw)  # the default stays PyG's
    assert att_std(ours) == pytest.approx(2 * (1 / (3 * 128)) ** 0.5, rel=0.15)  # xavier_normal, gain sqrt 2
    assert att_std(pyg) == pytest.approx((2 / (2 + 128)) ** 0.5, rel=0.15)  # PyG's Glorot-uniform
    with pytest.raises(ValueError, match="gat_init"):
        build(gat_init="kaiming")
