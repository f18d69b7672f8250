"""GCN / GIN / GAT encoders: shapes, gradients, permutation equivariance, name errors."""

from __future__ import annotations

import pytest
import torch

from geomask.nn.gnn import GNN_KINDS, GNNEncoder


def small_graph(n=12, e=30, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, n, (2, e), generator=g), n


@pytest.mark.parametrize("kind", GNN_KINDS)
def test_forward_backward_and_equivariance(kind):
    torch.manual_seed(0)
    edge_index, n = small_graph()
    enc = GNNEncoder(kind, hidden=16, layers=2).eval()
    x = torch.randn(n, 16, requires_grad=True)
    y = enc(x, edge_index)
    assert y.shape == (n, 16) and torch.isfinite(y).all()
    y.sum().backward()
    assert all(p.grad is not None for p in enc.parameters())
    perm = torch.randperm(n)
    inv = torch.argsort(perm)
    y2 = enc(x[perm], inv[edge_index])
    torch.testing.assert_close(y2, y[perm], atol=1e-5, rtol=1e-5)


def test_bad_kind_and_heads():
    with pytest.raises(ValueError, match="gcn"):
        GNNEncoder("sage", 16, 2)
    with pytest.raises(ValueError, match="divisible"):
        GNNEncoder("gat", 10, 2, heads=4)


def test_gat_encoder_equals_pyg_gatconv_with_the_same_weights():
    """GNNEncoder's GAT layers (geomask's sorted-edge GATConv, the graph sorted once per forward) load PyG
    GATConv state dicts and give PyG's outputs (repeated edges and self-loops included)."""
    from torch_geometric.nn import GATConv

    from geomask.nn.gnn import GNNEncoder

    torch.manual_seed(0)
    enc = GNNEncoder("gat", 32, 3, heads=4).eval()
    pyg = torch.nn.ModuleList(GATConv(32, 8, heads=4) for _ in range(3))
    pyg.load_state_dict(enc.convs.state_dict())
    x = torch.randn(50, 32)
    edge_index = torch.cat([torch.randint(0, 50, (2, 200)), torch.arange(5).repeat(2, 1)], 1)
    expected = x
    for conv, norm in zip(pyg, enc.norms):
        expected = expected + conv(torch.relu(norm(expected)), edge_index)
    torch.testing.assert_close(enc(x, edge_index), expected, atol=1e-5, rtol=1e-5)
