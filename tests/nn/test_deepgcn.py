"""DeepGCN against PyG's DeepGCNLayer(GENConv) with the same weights (the reference's building block)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch_geometric.nn import DeepGCNLayer
from torch_geometric.nn import GENConv as PygGENConv

from geomask.circuits import aig_to_graph
from geomask.io.aig import AIG
from geomask.nn.aggregation import build_neighbors
from geomask.nn.deepgcn import DeepGCN, ResPlusBlock

H = 16


def random_aig(rng: np.random.Generator, ni: int = 6, na: int = 40, no: int = 5) -> AIG:
    var = np.arange(na) + ni + 1
    a = rng.integers(1, var)
    b = rng.integers(1, var)
    ands = np.stack([2 * a + rng.integers(0, 2, na), 2 * b + rng.integers(0, 2, na)], 1).astype(np.int64)
    outs = rng.integers(2, 2 * (ni + na) + 2, size=no).astype(np.int64)
    return AIG(num_inputs=ni, ands=ands, outputs=outs)


def reference_block(ours: ResPlusBlock) -> DeepGCNLayer:
    """PyG's res+ GENConv layer configured as MGVGA's, carrying our weights."""
    conv = PygGENConv(H, H, aggr="softmax", t=1.0, learn_t=True, num_layers=2, norm="layer")
    ref = DeepGCNLayer(conv, torch.nn.LayerNorm(H), block="res+", dropout=0.0)
    with torch.no_grad():
        ref.norm.load_state_dict(ours.norm.state_dict())
        conv.aggr_module.t.copy_(ours.conv.t)
        conv.mlp[0].weight.copy_(ours.conv.lin1.weight)
        conv.mlp[1].load_state_dict(ours.conv.norm.state_dict())
        conv.mlp[4].weight.copy_(ours.conv.lin2.weight)
    return ref


def graphs():
    rng = np.random.default_rng(3)
    aig = aig_to_graph(random_aig(rng), "per_edge")
    # a graph with in-degree up to 5 (dense softmax path) and one with a hub of in-degree 20 (edge-wise path)
    n = 30
    src = torch.as_tensor(rng.integers(0, n, 80))
    dst = torch.as_tensor(rng.integers(0, n, 80))
    keep = torch.bincount(dst, minlength=n)[dst] <= 5
    low = torch.stack([src[keep], dst[keep]])
    hub = torch.cat([low, torch.stack([torch.arange(20), torch.full((20,), 7)])], 1)
    return [(aig.edge_index, aig.num_nodes), (low, n), (hub, n)]


@pytest.mark.parametrize("case", range(3))
def test_block_matches_pyg_deepgcn_layer(case):
    edge_index, n = graphs()[case]
    torch.manual_seed(case)
    ours = ResPlusBlock(H)
    with torch.no_grad():
        ours.conv.t.fill_(0.7)
        ours.norm.weight.uniform_(0.5, 1.5)
        ours.conv.norm.bias.uniform_(-0.2, 0.2)
    ref = reference_block(ours)
    x = torch.randn(n, H, dtype=torch.float64)
    ours, ref = ours.double(), ref.double()
    xa = x.clone().requires_grad_()
    xb = x.clone().requires_grad_()
    ya = ours(xa, build_neighbors(edge_index, n))
    yb = ref(xb, edge_index)
    torch.testing.assert_close(ya, yb)
    w = torch.randn_like(ya)
    (ya * w).sum().backward()
    (yb * w).sum().backward()
    torch.testing.assert_close(xa.grad, xb.grad)
    torch.testing.assert_close(ours.conv.t.grad, ref.conv.aggr_module.t.grad)
    torch.testing.assert_close(ours.conv.lin1.weight.grad, ref.conv.mlp[0].weight.grad)


def test_encoder_is_blocks_with_relu_between():
    edge_index, n = graphs()[0]
    torch.manual_seed(0)
    enc = DeepGCN(H, layers=3).double()
    x = torch.randn(n, H, dtype=torch.float64)
    refs = [reference_block(b).double() for b in enc.blocks]
    y = x
    for i, r in enumerate(refs):
        y = r(y, edge_index)
        if i < 2:
            y = torch.relu(y)
    torch.testing.assert_close(enc(x, edge_index), y)


def test_checkpointing_gives_same_gradients():
    edge_index, n = graphs()[0]
    torch.manual_seed(1)
    enc = DeepGCN(H, layers=3)
    x = torch.randn(n, H)
    grads = []
    for ckpt in (None, 1):
        enc.checkpoint_nodes = ckpt
        enc.zero_grad()
        enc(x, edge_index).pow(2).sum().backward()
        grads.append([p.grad.clone() for p in enc.parameters()])
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b)


def test_neighbor_table_holds_each_edge_once():
    edge_index, n = graphs()[1]
    nb = build_neighbors(edge_index, n)
    assert nb.dense
    rows, slots = torch.nonzero(nb.table < n, as_tuple=True)
    got = sorted(zip(nb.table[rows, slots].tolist(), rows.tolist()))
    assert got == sorted(zip(*edge_index.tolist()))
    assert not build_neighbors(graphs()[2][0], n).dense


def test_bad_layers():
    with pytest.raises(ValueError, match="layers"):
        DeepGCN(H, layers=0)
