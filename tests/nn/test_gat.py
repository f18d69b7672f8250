"""geomask's GATConv against PyG's GATConv with the same weights: values and gradients; gradcheck; loaders."""

from __future__ import annotations

import pytest
import torch
from torch_geometric.nn import GATConv as PygGATConv

from geomask.nn import gat as gat_module
from geomask.nn.gat import GATConv, attention_spmm, gat_graph, pyg_gat_state
from geomask.nn.gnn import FeatureGNN


def odd_graph(n: int = 23, e: int = 70, seed: int = 0) -> torch.Tensor:
    """Random edges among the first n - 3 nodes (3 isolated nodes), with repeated edges and a few self-loops."""
    g = torch.Generator().manual_seed(seed)
    ei = torch.randint(0, n - 3, (2, e), generator=g)
    loops = torch.tensor([[1, 5], [1, 5]])
    return torch.cat([ei, ei[:, :9], loops, loops], 1)  # 9 multi-edges, duplicated self-loops


def _compare(ours: GATConv, pyg: PygGATConv, x: torch.Tensor, ei: torch.Tensor) -> None:
    ours.load_pyg(pyg.state_dict())
    x1, x2 = x.clone().requires_grad_(), x.clone().requires_grad_()
    y_ref, y = pyg(x1, ei), ours(x2, ei)
    torch.testing.assert_close(y, y_ref, atol=1e-5, rtol=1e-5)
    w = torch.randn_like(y_ref)
    (y_ref * w).sum().backward()
    (y * w).sum().backward()
    torch.testing.assert_close(x2.grad, x1.grad, atol=1e-5, rtol=1e-5)
    ref = dict(pyg.named_parameters())
    for name, p in ours.named_parameters():
        torch.testing.assert_close(p.grad, ref[name].grad, atol=1e-4, rtol=1e-5, msg=name)


@pytest.mark.parametrize("concat", [True, False])
@pytest.mark.parametrize("residual", [False, True])
@pytest.mark.parametrize(("f", "c", "heads"), [(12, 5, 3), (6, 9, 2), (4, 10, 1)])  # c > f: aggregate, project
def test_equals_pyg(concat, residual, f, c, heads):
    torch.manual_seed(0)
    ei, n = odd_graph(), 23
    pyg = PygGATConv(f, c, heads=heads, concat=concat, residual=residual)
    with torch.no_grad():
        pyg.bias.normal_()
    ours = GATConv(f, c, heads=heads, concat=concat, residual=residual)
    _compare(ours, pyg, torch.randn(n, f), ei)


@pytest.mark.parametrize("concat", [True, False])
@pytest.mark.parametrize(("f", "c", "heads", "residual"), [(12, 5, 3, True), (6, 9, 2, False), (4, 10, 1, True)])
def test_out_rows_are_those_rows_of_the_full_output(concat, f, c, heads, residual):
    """``out_rows`` (any order, repeats, an isolated node) gives those rows of the full output, and the same
    gradients for the rows' weights: the projection after aggregation (c > f) runs on them only."""
    torch.manual_seed(2)
    ei, n = odd_graph(), 23
    layer = GATConv(f, c, heads=heads, concat=concat, residual=residual).double()
    with torch.no_grad():
        layer.bias.normal_()
    rows = torch.tensor([22, 0, 4, 4, 11])
    x1, x2 = torch.randn(n, f, dtype=torch.float64, requires_grad=True), None
    x2 = x1.detach().clone().requires_grad_(True)
    full = layer(x1, ei).index_select(0, rows)
    grads_full = torch.autograd.grad((full * full).sum(), [x1, *layer.parameters()])
    part = layer(x2, ei, out_rows=rows)
    torch.testing.assert_close(part, full, rtol=1e-12, atol=1e-12)
    grads_part = torch.autograd.grad((part * part).sum(), [x2, *layer.parameters()])
    for a, b in zip(grads_part, grads_full):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_no_self_loops_and_isolated_nodes_get_bias_only():
    torch.manual_seed(1)
    ei, n = odd_graph(), 23
    pyg = PygGATConv(7, 4, heads=2, add_self_loops=False)
    ours = GATConv(7, 4, heads=2, add_self_loops=False)
    with torch.no_grad():
        pyg.bias.normal_()
    _compare(ours, pyg, torch.randn(n, 7), ei)
    y = ours(torch.randn(n, 7), ei)
    torch.testing.assert_close(y[-3:], ours.bias.expand(3, -1))


def test_attention_dropout_is_training_only_and_keeps_rows_finite():
    torch.manual_seed(2)
    conv = GATConv(5, 3, heads=2, dropout=0.5)
    x, ei = torch.randn(23, 5), odd_graph()
    conv.eval()
    torch.testing.assert_close(conv(x, ei), conv(x, ei))
    conv.train()
    a, b = conv(x, ei), conv(x, ei)
    assert torch.isfinite(a).all() and not torch.equal(a, b)


def test_gradcheck_double():
    torch.manual_seed(3)
    ei = torch.tensor([[0, 1, 2, 2, 3, 0, 0], [1, 2, 0, 3, 1, 1, 3]])  # a multi-edge, node 4 isolated
    graph = gat_graph(ei, 5)
    for c in (2, 6):  # both paths: project then aggregate, aggregate then project
        conv = GATConv(3, c, heads=2, concat=c == 2, residual=True).double()
        x = torch.randn(5, 3, dtype=torch.float64, requires_grad=True)
        params = tuple(conv.parameters())

        def fn(x, *ps, conv=conv):
            return torch.func.functional_call(conv, dict(zip([n for n, _ in conv.named_parameters()], ps)), (x, ei))

        assert torch.autograd.gradcheck(fn, (x, *params))
    alpha = torch.rand(graph.num_edges, 2, dtype=torch.float64, requires_grad=True)
    feats = torch.randn(5, 2, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, v: attention_spmm(a, v, graph), (alpha, feats))


def test_threaded_blocks_and_index_fallback_agree(monkeypatch):
    torch.manual_seed(4)
    ei, n = odd_graph(n=200, e=900), 200
    graph = gat_graph(ei, n)
    alpha = torch.rand(graph.num_edges, 3)
    feats = torch.randn(n, 3, 8)
    one = attention_spmm(alpha, feats, graph)
    monkeypatch.setattr(gat_module, "_PARALLEL_MACS", 1)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        two = attention_spmm(alpha, feats, graph)
    finally:
        torch.set_num_threads(before)
    torch.testing.assert_close(two, one)
    half = attention_spmm(alpha.bfloat16(), feats.bfloat16(), graph)  # the index_select / index_add path
    torch.testing.assert_close(half.float(), one, atol=0.1, rtol=0.05)


def test_pyg_state_names_and_feature_gnn_checkpoint():
    torch.manual_seed(5)
    pyg = PygGATConv(6, 4, heads=2)
    legacy = {("lin_src.weight" if k == "lin.weight" else k): v for k, v in pyg.state_dict().items()}
    legacy["lin_dst.weight"] = legacy["lin_src.weight"]
    state = pyg_gat_state(legacy)
    assert set(state) == set(pyg.state_dict())
    legacy["lin_dst.weight"] = torch.zeros_like(legacy["lin_src.weight"])
    with pytest.raises(ValueError, match="bipartite"):
        pyg_gat_state(legacy)
    # a FeatureGNN state dict written when its layers were PyG's GATConv loads as it is
    enc = FeatureGNN("gat", 6, 8, 8, layers=2, heads=2, out_heads=2, in_drop=0.0, attn_drop=0.0).eval()
    ref = [PygGATConv(6, 4, heads=2), PygGATConv(8, 4, heads=2)]
    state = {f"convs.{i}.{k}": v for i, conv in enumerate(ref) for k, v in conv.state_dict().items()}
    enc.load_state_dict({**enc.state_dict(), **state}, strict=True)
    x, ei = torch.randn(23, 6), odd_graph()
    h = ref[0](x, ei)
    h = enc.acts[0](h)
    torch.testing.assert_close(enc(x, ei), enc.acts[1](ref[1](h, ei)), atol=1e-5, rtol=1e-5)


def test_bad_edges():
    conv = GATConv(3, 2)
    with pytest.raises(ValueError, match="outside"):
        conv(torch.randn(4, 3), torch.tensor([[0, 4], [1, 2]]))
    with pytest.raises(ValueError, match=r"\[2, E\]"):
        conv(torch.randn(4, 3), torch.zeros(3, 2, dtype=torch.long))


def test_init_schemes_glorot_and_graphmae_xavier_relu():
    torch.manual_seed(0)
    conv = GATConv(1433, 128, heads=4, residual=True)  # Cora's first GraphMAE layer
    glorot = {k: v.std().item() for k, v in conv.named_parameters() if k != "bias"}
    with torch.no_grad():
        conv.bias.fill_(1.0)
    conv.reset_parameters("xavier_relu")
    relu = {k: v.std().item() for k, v in conv.named_parameters() if k != "bias"}
    assert conv.bias.abs().max() == 0
    # DGL / GraphMAE: std = sqrt(2) * sqrt(2 / (fan_in + fan_out)); torch's fans of [1, H, C] are H·C and C
    expect = {"lin.weight": (2 * 2 / (1433 + 512)) ** 0.5, "res.weight": (2 * 2 / (1433 + 512)) ** 0.5}
    expect |= {k: (2 * 2 / (512 + 128)) ** 0.5 for k in ("att_src", "att_dst")}
    for k, std in expect.items():
        assert relu[k] == pytest.approx(std, rel=0.1), k
    # PyG's Glorot-uniform: std = sqrt(2 / (fan_in + fan_out)), the attention vectors' fans H + C
    assert glorot["lin.weight"] == pytest.approx((2 / (1433 + 512)) ** 0.5, rel=0.05)
    assert glorot["att_src"] == pytest.approx((2 / (4 + 128)) ** 0.5, rel=0.15)
    with pytest.raises(ValueError, match="unknown GAT init"):
        conv.reset_parameters("kaiming")
