"""masked_linear: the first layer over GraphMAE's masked input, row by row, equals the dense path."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch_geometric.data import Data

import geomask.nn.gnn as gnn
from geomask.methods import build_method
from geomask.nn.dropout import dropout
from geomask.nn.gat import GATConv
from geomask.nn.gnn import FeatureGNN
from geomask.nn.masked_input import MaskedInput, masked_linear


def _input(n: int, f: int, dtype: torch.dtype, seed: int = 0) -> MaskedInput:
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, f, generator=g, dtype=dtype)
    x = torch.where(torch.rand(n, f, generator=g) < 0.05, x, torch.zeros((), dtype=dtype))  # ~5 % non-zero
    token_rows = torch.rand(n, generator=g) < 0.45
    src = torch.arange(n)
    replaced = (~token_rows).nonzero().squeeze(1)[:5]
    src[replaced] = torch.randint(n, (len(replaced),), generator=g)  # some rows copy another node's features
    token = torch.randn(f, generator=g, dtype=dtype).requires_grad_(True)
    return MaskedInput(x, token, token_rows, src)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("p", [0.0, 0.2])
def test_masked_linear_equals_dropout_then_linear(dtype, p):
    inp = _input(57, 40, dtype)
    w = torch.randn(24, 40, dtype=dtype, requires_grad=True)
    g_out = torch.randn(57, 24, dtype=dtype)
    torch.manual_seed(5)
    out = masked_linear(inp, w, p, training=True)
    (out * g_out).sum().backward()
    got = (out.detach(), w.grad.clone(), inp.token.grad.clone())
    w.grad, inp.token.grad = None, None
    torch.manual_seed(5)  # the same dropout draws
    ref = F.linear(dropout(inp.dense(), p, True), w)
    (ref * g_out).sum().backward()
    tol = {"atol": 1e-5, "rtol": 1e-5} if dtype == torch.float32 else {"atol": 1e-12, "rtol": 1e-12}
    torch.testing.assert_close(got[0], ref.detach(), **tol)
    torch.testing.assert_close(got[1], w.grad, **tol)
    torch.testing.assert_close(got[2], inp.token.grad, **tol)
    if p > 0:  # the dropout really dropped: some data entries are gone
        torch.manual_seed(5)
        assert not torch.allclose(got[0], F.linear(inp.dense(), w.detach()))


def test_masked_linear_in_evaluation_has_no_dropout():
    inp = _input(30, 16, torch.float64)
    w = torch.randn(8, 16, dtype=torch.float64)
    torch.testing.assert_close(masked_linear(inp, w, 0.5, training=False), F.linear(inp.dense(), w))


def test_gat_with_a_projected_input_equals_the_layer():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(20, 12, generator=g)
    ei = torch.randint(0, 20, (2, 60), generator=g)
    conv = GATConv(12, 4, heads=2)
    torch.testing.assert_close(conv(None, ei, projected=conv.lin(x)), conv(x, ei))
    with pytest.raises(ValueError, match="residual"):
        GATConv(12, 4, heads=2, residual=True)(None, ei, projected=conv.lin(x))


@pytest.mark.parametrize("kind", ["gat", "gin"])
def test_feature_gnn_reads_a_masked_input_like_its_dense_form(kind):
    inp = _input(40, 30, torch.float32, seed=3)
    ei = torch.randint(0, 40, (2, 120), generator=torch.Generator().manual_seed(4))
    torch.manual_seed(0)
    enc = FeatureGNN(kind, 30, 16, 16, layers=2, heads=4, out_heads=4, in_drop=0.2, norm="batchnorm")
    enc.train()
    torch.manual_seed(7)
    a = enc(inp, ei)
    a.square().sum().backward()
    ga = inp.token.grad.clone()
    inp.token.grad = None
    torch.manual_seed(7)
    b = enc(inp.dense(), ei)
    b.square().sum().backward()
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(ga, inp.token.grad, atol=1e-5, rtol=1e-5)


def test_graphmae_loss_and_gradients_row_by_row_equal_the_dense_input(monkeypatch):
    g = torch.Generator().manual_seed(0)
    n, f = 120, 200
    x = (torch.rand(n, f, generator=g) < 0.03).float()  # bag-of-words-like binary features
    data = Data(x=x, edge_index=torch.randint(0, n, (2, 600), generator=g), num_nodes=n)
    kw = {"encoder": "gat", "in_dim": f, "hidden": 32, "layers": 2, "gat_heads": 4, "dropout": 0.2}
    kw.update(replace_rate=0.1, masker={"name": "uniform", "ratio": 0.5})

    def run(rowwise: bool):
        monkeypatch.setattr(gnn, "masked_linear_applies", lambda *a: rowwise)
        torch.manual_seed(0)
        model = build_method("graphmae", **kw)
        with torch.no_grad():
            model.mask_token.normal_()
        model.train()
        torch.manual_seed(1)
        loss = model(data, torch.Generator().manual_seed(2))["loss"]
        loss.backward()
        return loss.detach(), {k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None}

    (la, ga), (lb, gb) = run(True), run(False)
    torch.testing.assert_close(la, lb, atol=1e-6, rtol=1e-6)
    assert ga.keys() == gb.keys() and "mask_token" in ga
    for k in ga:
        torch.testing.assert_close(ga[k], gb[k], atol=1e-5, rtol=1e-4)
