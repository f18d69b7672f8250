"""EdgeConv and the patch embedding on the shared kernel equal their per-edge formulas (values and gradients)."""

from __future__ import annotations

import torch

from geomask.nn.dgcnn import DGCNN, EdgeConv
from geomask.nn.point_patch import PatchEmbed


def _edgeconv_per_edge(layer: EdgeConv, h, nbr):
    """Written out edge by edge: MLP([h_j - h_i, h_i]) on every (i, j), max over j."""
    b, g, k = nbr.shape
    out = torch.empty(b, g, layer.mlp[0].out_features, dtype=h.dtype)
    for s in range(b):
        for i in range(g):
            edges = torch.stack([torch.cat([h[s, j] - h[s, i], h[s, i]]) for j in nbr[s, i].tolist()])
            out[s, i] = layer.mlp(edges).max(0).values
    return out


def test_edgeconv_equals_the_per_edge_formula():
    torch.manual_seed(0)
    layer = EdgeConv(6, 5).double()
    h = torch.randn(2, 7, 6, dtype=torch.float64, requires_grad=True)
    nbr = torch.randint(0, 7, (2, 7, 3))
    nbr[..., 0] = torch.arange(7)  # the self loop, as DGCNN's kNN gives
    got = layer(h, nbr)
    want = _edgeconv_per_edge(layer, h, nbr)
    torch.testing.assert_close(got, want)
    gw = torch.autograd.grad(got.square().sum(), [h, *layer.parameters()])
    ww = torch.autograd.grad(want.square().sum(), [h, *layer.parameters()])
    for a, b in zip(gw, ww):
        torch.testing.assert_close(a, b)


def test_dgcnn_runs_every_layer_on_one_table():
    torch.manual_seed(0)
    net = DGCNN(8, 4, hidden=(6, 5), k=3).double()
    tokens, centers = torch.randn(2, 9, 8, dtype=torch.float64), torch.randn(2, 9, 3, dtype=torch.float64)
    out = net(tokens, centers)
    assert out.shape == (2, 9, 4) and torch.isfinite(out).all()
    # each sample sees only its own tokens: changing sample 1 leaves sample 0 alone
    tokens2 = tokens.clone()
    tokens2[1] += 1.0
    torch.testing.assert_close(net(tokens2, centers)[0], out[0])
    assert not torch.allclose(net(tokens2, centers)[1], out[1])


def test_patch_embed_equals_the_concatenation_formula():
    torch.manual_seed(0)
    emb = PatchEmbed(out_dim=10, hidden=4).double().train()
    x = torch.randn(2, 3, 5, 3, dtype=torch.float64, requires_grad=True)
    got = emb(x)
    # MLP_1 per point, max per patch, MLP_2 on [patch feature, point feature], max per patch
    h = emb.mlp1(x.reshape(-1, 3))
    patch = h.view(6, 5, -1).max(1).values
    cat = torch.cat([patch.repeat_interleave(5, 0), h], 1)
    want = emb.mlp2(cat).view(6, 5, -1).max(1).values.view(2, 3, 10)
    torch.testing.assert_close(got, want)
    gw = torch.autograd.grad(got.sum(), [x, *emb.parameters()])
    ww = torch.autograd.grad(want.sum(), [x, *emb.parameters()])
    for a, b in zip(gw, ww):
        torch.testing.assert_close(a, b)
