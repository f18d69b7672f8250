"""FeatureGNN's GIN fast path (CSR sum aggregation, the decoder's linear before the sum, fused BatchNorm + PReLU)
against PyG's GINConv with the same modules; GraphMAE's re-mask on the kept rows (``rows``) against ``masked_fill``."""

from __future__ import annotations

import copy

import pytest
import torch

from geomask.nn.gnn import FeatureGNN, gin_graph, gin_sum


def _graph(n=30, e=90, seed=0):
    g = torch.Generator().manual_seed(seed)
    ei = torch.randint(0, n, (2, e), generator=g)
    return torch.cat([ei, ei[:, :5], torch.arange(3).repeat(2, 1)], 1), n  # repeated edges and self-loops


def test_gin_sum_equals_index_add_and_gradcheck():
    ei, n = _graph()
    h = torch.randn(n, 6, dtype=torch.float64, requires_grad=True)
    graph = gin_graph(ei, n)
    expected = h + torch.zeros_like(h).index_add(0, ei[1], h[ei[0]])
    torch.testing.assert_close(gin_sum(h, graph), expected)
    torch.testing.assert_close(gin_sum(h.float(), graph), expected.float())
    assert torch.autograd.gradcheck(lambda h: gin_sum(h, graph), (h,))
    isolated = gin_graph(torch.zeros(2, 0, dtype=torch.long), n)  # no edges: the self term only
    torch.testing.assert_close(gin_sum(h, isolated), h)


@pytest.mark.parametrize("bad", [-1, 30])
def test_gin_graph_refuses_out_of_range_indices(bad):
    ei, n = _graph()
    ei[0, 7] = bad
    with pytest.raises(ValueError, match=r"outside \[0, 30\)"):
        gin_graph(ei, n)
    with pytest.raises(ValueError, match="rows"):
        gin_sum(torch.zeros(n + 1, 2), gin_graph(ei[:, :5].clamp(0, n - 1), n))


def _pyg_forward(gnn: FeatureGNN, x, edge_index):
    """FeatureGNN as it ran before the fast path: PyG's GINConv, then the norm and activation modules."""
    for conv, norm, act in zip(gnn.convs, gnn.norms, gnn.acts):
        x = act(norm(conv(x, edge_index)))
    return x


@pytest.mark.parametrize(
    ("in_dim", "out_dim", "encoding", "mlp_hidden"), [(5, 16, True, None), (16, 3, False, None), (16, 3, False, 16)]
)
@pytest.mark.parametrize("train", [True, False])
def test_feature_gin_equals_pyg(in_dim, out_dim, encoding, mlp_hidden, train):
    torch.manual_seed(0)
    ei, n = _graph()
    gnn = FeatureGNN(
        "gin", in_dim, 16, out_dim, layers=2, in_drop=0.0, norm="batchnorm", encoding=encoding, mlp_hidden=mlp_hidden
    )
    gnn = gnn.double().train(train)
    with torch.no_grad():
        for m in gnn.modules():
            if isinstance(m, torch.nn.PReLU):
                m.weight.fill_(0.1)
    ref = copy.deepcopy(gnn)
    x = torch.randn(n, in_dim, dtype=torch.float64)
    y, y_ref = gnn(x, ei), _pyg_forward(ref, x, ei)
    torch.testing.assert_close(y, y_ref, rtol=1e-9, atol=1e-9)
    w = torch.randn_like(y)
    (y * w).sum().backward()
    (y_ref * w).sum().backward()
    for (name, p), q in zip(gnn.named_parameters(), ref.parameters()):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-8, atol=1e-9, msg=name)
    for (name, b), c in zip(gnn.named_buffers(), ref.buffers()):
        torch.testing.assert_close(b, c, rtol=1e-12, atol=1e-12, msg=name)
    assert list(gnn.state_dict()) == list(ref.state_dict())  # the same names: checkpoints load


@pytest.mark.parametrize(
    ("kind", "in_dim", "out_dim", "mlp_hidden", "residual"),
    [("gin", 16, 3, None, False), ("gin", 16, 3, 16, False), ("gin", 16, 16, None, True), ("gat", 16, 3, None, False)],
)
@pytest.mark.parametrize("pick", [False, True])
def test_rows_input_equals_the_zero_filled_input(kind, in_dim, out_dim, mlp_hidden, residual, pick):
    """``rows``: the decoder's first linear on the nonzero rows only gives the zero-filled input's values and gradients
    (GIN's fast path; GAT and residual stacks fill the zeros in and run as before); ``out_rows`` (``pick``): those
    rows of the same output (a GAT last layer projects only them), with the same gradients."""
    torch.manual_seed(0)
    ei, n = _graph()
    kw = {"layers": 2, "in_drop": 0.0, "attn_drop": 0.0, "norm": "batchnorm", "encoding": False, "residual": residual}
    if kind == "gin":
        kw["mlp_hidden"] = mlp_hidden
    gnn = FeatureGNN(kind, in_dim, 16, out_dim, heads=2, **kw).double().train()
    ref = copy.deepcopy(gnn)
    rows = torch.tensor([0, 3, 4, 9, 17, 28])  # the rest of the 30 nodes are zero
    xr = torch.randn(len(rows), in_dim, dtype=torch.float64, requires_grad=True)
    xd = xr.detach().clone().requires_grad_(True)
    out_rows = torch.tensor([29, 1, 2, 3, 17, 5, 5]) if pick else None  # any order, repeats allowed
    y = gnn(xr, ei, rows=rows, num_nodes=n, out_rows=out_rows)
    y_ref = ref(torch.zeros(n, in_dim, dtype=torch.float64).index_copy(0, rows, xd), ei)
    if pick:
        assert y.shape == (len(out_rows), out_dim)
        y_ref = y_ref.index_select(0, out_rows)
    torch.testing.assert_close(y, y_ref, rtol=1e-9, atol=1e-10)
    w = torch.randn_like(y)
    (y * w).sum().backward()
    (y_ref * w).sum().backward()
    torch.testing.assert_close(xr.grad, xd.grad, rtol=1e-9, atol=1e-10)
    for (name, p), q in zip(gnn.named_parameters(), ref.parameters()):
        if q.grad is not None:
            torch.testing.assert_close(p.grad, q.grad, rtol=1e-8, atol=1e-10, msg=name)
    for (name, b), c in zip(gnn.named_buffers(), ref.buffers()):
        torch.testing.assert_close(b, c, rtol=1e-10, atol=1e-12, msg=name)
    with pytest.raises(ValueError, match="num_nodes"):
        gnn(xr, ei, rows=rows)


@pytest.mark.parametrize(("encoder", "gin_mlp"), [("gin", "out"), ("gin", "hidden"), ("gat", "out")])
def test_graphmae_feature_loss_equals_masked_fill_formulation(encoder, gin_mlp):
    """The re-mask (enc2dec and the decoder's first linear on the kept rows only) and the decoder's output on the
    masked rows only give GraphMAE's loss: enc2dec, rows zeroed, decoder on every row, SCE over the masked rows."""
    from torch_geometric.data import Batch, Data

    from geomask.methods.graphmae import build_graphmae

    torch.manual_seed(0)
    m = build_graphmae(
        encoder=encoder, in_dim=4, hidden=16, layers=2, dropout=0.0, attn_drop=0.0, norm="batchnorm", gamma=1.0,
        gin_mlp=gin_mlp, gat_heads=2,
    )  # fmt: skip
    m = m.double().train()
    ei, n = _graph()
    batch = Batch.from_data_list([Data(x=torch.randn(n, 4, dtype=torch.float64), edge_index=ei)] * 2)
    ref = copy.deepcopy(m)
    loss = m(batch, torch.Generator().manual_seed(1))["loss"]
    gen = torch.Generator().manual_seed(1)
    from geomask.masking.layout import RowLayout

    mask = ref.masker(RowLayout(batch.batch, 2), gen)
    h = ref.enc2dec(ref.encoder(ref._corrupt(batch.x, mask, gen), batch.edge_index)).masked_fill(mask[:, None], 0)
    expected = ref.criterion(ref.decoder(h, batch.edge_index), batch.x, mask)
    torch.testing.assert_close(loss, expected, rtol=1e-10, atol=1e-12)
    loss.backward()
    expected.backward()
    for (name, p), q in zip(m.named_parameters(), ref.parameters()):
        if q.grad is not None and q.grad.abs().max() > 1e-9:  # pre-BatchNorm biases: a zero gradient
            torch.testing.assert_close(p.grad, q.grad, rtol=1e-7, atol=1e-10, msg=name)


def test_gin_mlp_sets_the_decoder_mlp_width():
    """``gin_mlp: hidden`` is GraphMAE's own decoder MLP ``H → H → F``; the default ``out`` keeps ``H → F → F``; the
    encoder's MLPs (output width H) are the same either way."""
    from geomask.methods.graphmae import build_graphmae

    kw = {"encoder": "gin", "in_dim": 3, "hidden": 8, "layers": 2, "norm": "batchnorm"}
    narrow, wide = build_graphmae(**kw), build_graphmae(gin_mlp="hidden", **kw)
    shapes = lambda mlp: [tuple(m.weight.shape) for m in (mlp[0], mlp[3])]  # noqa: E731
    assert shapes(narrow.decoder.convs[0].nn) == [(3, 8), (3, 3)]
    assert shapes(wide.decoder.convs[0].nn) == [(8, 8), (3, 8)]
    assert [shapes(c.nn) for c in narrow.encoder.convs] == [shapes(c.nn) for c in wide.encoder.convs]
    with pytest.raises(ValueError, match="gin_mlp"):
        build_graphmae(gin_mlp="wide", **kw)
