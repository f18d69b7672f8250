"""DeepGCN against PyG's DeepGCNLayer(GENConv) with the same weights (the reference's building block)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch_geometric.nn import DeepGCNLayer
from torch_geometric.nn import GENConv as PygGENConv
from torch_geometric.utils import scatter as pyg_scatter
from torch_geometric.utils import softmax as pyg_softmax

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


# ---------------------------------------------------------------------------------------------------------------
# the shared aggregation kernel: today's outputs for untyped graphs, edge types as a second relation


def _old_softmax_aggregate(m, nb, t):
    """geomask.nn.aggregation.softmax_aggregate before it moved onto the ops kernel (kept verbatim)."""
    s, h = m.shape
    if not nb.dense:
        mj = m.index_select(0, nb.src)
        alpha = pyg_softmax(mj * t, nb.dst, num_nodes=nb.num_nodes)
        return pyg_scatter(mj * alpha, nb.dst, 0, dim_size=nb.num_nodes, reduce="sum")
    table = nb.table
    n, k = table.shape
    m_pad = torch.cat([m, m.new_zeros(1, h)], 0)
    g = m_pad.index_select(0, table.reshape(-1)).view(n, k, h)
    if k == 1:
        return g[:, 0]
    if k == 2 and nb.full is not None:
        g0, g1 = g.unbind(1)
        d = g0 - g1
        a = torch.sigmoid(d * t + nb.full)
        return g1 + a * d
    logits = (g * t).masked_fill(~nb.valid.unsqueeze(-1), float("-inf"))
    return (torch.softmax(logits, dim=1) * g).sum(1)


def _old_encoder(enc: DeepGCN, x, nb):
    """DeepGCN.forward as it was computed before (same weights, old aggregation)."""
    last = len(enc.blocks) - 1
    for i, b in enumerate(enc.blocks):
        h = b.norm(x)
        c = b.conv
        agg = _old_softmax_aggregate(torch.relu(h) + c.eps, nb, c.t)
        x = x + c.lin2(torch.relu(c.norm(c.lin1(agg + h))))
        if i < last:
            x = torch.relu(x)
    return x


def _aig_graph(mode: str, flip: int | None = None):
    aig = random_aig(np.random.default_rng(8))
    if flip is not None:
        aig = AIG(num_inputs=aig.num_inputs, ands=aig.ands.copy(), outputs=aig.outputs)
        aig.ands[flip // 2, flip % 2] ^= 1  # invert one fanin edge
    return aig_to_graph(aig, mode)


@pytest.mark.parametrize("case", range(3))
def test_kernel_aggregation_equals_old_on_untyped_graphs(case):
    edge_index, n = graphs()[case]
    torch.manual_seed(10 + case)
    enc = DeepGCN(H, layers=3)
    with torch.no_grad():
        for b in enc.blocks:
            b.conv.t.fill_(0.6 + 0.2 * case)
    x = torch.randn(n, H)
    nb = build_neighbors(edge_index, n)
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    ya, yb = enc(xa, edge_index, nb), _old_encoder(enc, xb, nb)
    torch.testing.assert_close(ya, yb)
    w = torch.randn_like(ya)
    (ya * w).sum().backward()
    (yb * w).sum().backward()
    torch.testing.assert_close(xa.grad, xb.grad)


@pytest.mark.parametrize("mode", ["per_edge", "shared"])
def test_graphs_without_inversion_types_give_todays_outputs(mode):
    g = _aig_graph(mode)
    assert not g.edge_type.any()
    torch.manual_seed(4)
    typed = DeepGCN(H, layers=3, num_relations=2)
    plain = DeepGCN(H, layers=3)
    plain.load_state_dict({k: v for k, v in typed.state_dict().items() if "edge_emb" not in k})
    x = torch.randn(g.num_nodes, H)
    old = _old_encoder(plain, x, build_neighbors(g.edge_index, g.num_nodes))
    assert torch.equal(typed(x, g.edge_index, edge_type=g.edge_type), old)
    assert torch.equal(plain(x, g.edge_index), old)


def _typed_graphs():
    aig = _aig_graph("attr")
    assert aig.edge_type.any()
    edge_index, n = graphs()[2]  # in-degree 20: the edge-wise path
    etype = torch.as_tensor(np.random.default_rng(1).integers(0, 3, edge_index.shape[1]))
    return [(aig.edge_index, aig.edge_type, aig.num_nodes, 2), (edge_index, etype, n, 3)]


@pytest.mark.parametrize("case", range(2))
def test_typed_block_matches_pyg_genconv_with_edge_features(case):
    edge_index, etype, n, num_rel = _typed_graphs()[case]
    torch.manual_seed(20 + case)
    ours = ResPlusBlock(H, num_relations=num_rel)
    ref = reference_block(ours)
    ours, ref = ours.double(), ref.double()
    x = torch.randn(n, H, dtype=torch.float64)
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    nb = build_neighbors(edge_index, n, edge_type=etype)
    assert nb.dense == (case == 0)
    ya = ours(xa, nb)
    # PyG GENConv with edge_dim = H adds edge_attr to x_j before relu + eps: the edge attribute is e[type]
    emb = torch.cat([torch.zeros(1, H, dtype=torch.float64), ours.conv.edge_emb.detach()])
    yb = ref(xb, edge_index, emb[etype])
    torch.testing.assert_close(ya, yb)
    w = torch.randn_like(ya)
    (ya * w).sum().backward()
    (yb * w).sum().backward()
    torch.testing.assert_close(xa.grad, xb.grad)
    assert ours.conv.edge_emb.grad is not None and ours.conv.edge_emb.grad.abs().sum() > 0


def test_inversion_changes_encoder_output_with_edge_types_only():
    g1, g2 = _aig_graph("attr"), _aig_graph("attr", flip=7)
    assert torch.equal(g1.edge_index, g2.edge_index) and torch.equal(g1.node_type, g2.node_type)
    assert int((g1.edge_type != g2.edge_type).sum()) == 1
    torch.manual_seed(5)
    enc = DeepGCN(H, layers=3, num_relations=2)
    x = torch.randn(H, H)[g1.node_type]  # node features from the node type alone
    y1 = enc(x, g1.edge_index, edge_type=g1.edge_type)
    y2 = enc(x, g2.edge_index, edge_type=g2.edge_type)
    assert not torch.allclose(y1, y2)
    nb = build_neighbors(g2.edge_index, g2.num_nodes, edge_type=g2.edge_type)
    torch.testing.assert_close(enc(x, g2.edge_index, nb), y2)
    assert torch.equal(enc(x, g1.edge_index), enc(x, g2.edge_index))


def test_typed_graph_needs_relations():
    g = _aig_graph("attr")
    with pytest.raises(ValueError, match="num_relations"):
        DeepGCN(H, layers=1)(torch.randn(g.num_nodes, H), g.edge_index, edge_type=g.edge_type)
