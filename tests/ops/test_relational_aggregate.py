"""Typed-edge aggregation (sum / mean / max / softmax) against a per-node loop, both table paths, gradients."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from geomask.ops.neighbor_aggregate import (
    REDUCTIONS,
    build_neighbors,
    neighbor_aggregate,
    relational_aggregate,
    relational_messages,
    scatter_aggregate,
    segment_table,
)
from geomask.ops.relational import relational_message_passing

R, C, C_OUT = 3, 4, 5


def _reference(
    x, edge_index, edge_type, reduce, num_dst, weight=None, edge_emb=None, message=None, t=1.0, dst_term=None
):
    """Per destination: collect its incoming messages one edge at a time and reduce them."""
    width = weight.shape[-1] if weight is not None else x.shape[1]
    rows = []
    for v in range(num_dst):
        msgs = []
        for e in range(edge_index.shape[1]):
            if int(edge_index[1, e]) != v:
                continue
            r = 0 if edge_type is None else int(edge_type[e])
            m = x[int(edge_index[0, e])]
            if weight is not None:
                m = m @ weight[r]
            if edge_emb is not None:
                m = m + edge_emb[r]
            if dst_term is not None:
                m = m + dst_term[v]
            if message is not None:
                m = message(m)
            msgs.append(m)
        if not msgs:
            rows.append(x.new_zeros(width))
            continue
        m = torch.stack(msgs)
        if reduce == "sum":
            rows.append(m.sum(0))
        elif reduce == "mean":
            rows.append(m.mean(0))
        elif reduce == "max":
            rows.append(m.max(0).values)
        else:
            rows.append((torch.softmax(t * m, dim=0) * m).sum(0))
    return torch.stack(rows)


def _graph(seed, n=9, e=22, num_dst=None, unique=False):
    """Random typed multigraph; destinations avoid the last two rows (they get no incoming edge)."""
    g = torch.Generator().manual_seed(seed)
    num_dst = n if num_dst is None else num_dst
    src = torch.randint(0, n, (e,), generator=g)
    dst = torch.randint(0, num_dst - 2, (e,), generator=g)
    etype = torch.randint(0, R, (e,), generator=g)
    if unique:  # no repeated (src, dst) pair: no ties in max, so finite differences are valid
        key = torch.unique(src * num_dst + dst)
        src, dst = key // num_dst, key % num_dst
        etype = etype[: key.numel()]
    return torch.stack([src, dst]), etype, g


def _message(m):
    return F.relu(m) + 0.1


PARTS = {
    "plain": dict(),
    "weight": dict(weight=True),
    "emb": dict(edge_emb=True),
    "weight_emb_message": dict(weight=True, edge_emb=True, message=True),
    "weight_dst_message": dict(weight=True, dst_term=True, message=True),  # EdgeConv's two-ended message
}


def _parts(g, spec, dtype=torch.float64, num_dst=9):
    kw = {}
    if spec.get("weight"):
        kw["weight"] = torch.randn(R, C, C_OUT, generator=g, dtype=dtype)
    if spec.get("edge_emb"):
        kw["edge_emb"] = torch.randn(R, C_OUT if spec.get("weight") else C, generator=g, dtype=dtype)
    if spec.get("dst_term"):
        kw["dst_term"] = torch.randn(num_dst, C_OUT if spec.get("weight") else C, generator=g, dtype=dtype)
    if spec.get("message"):
        kw["message"] = _message
    return kw


@pytest.mark.parametrize("typed", [True, False])
@pytest.mark.parametrize("max_dense", [32, 0], ids=["dense", "edgewise"])
@pytest.mark.parametrize("parts", list(PARTS))
@pytest.mark.parametrize("reduce", REDUCTIONS)
def test_matches_per_node_loop(reduce, parts, max_dense, typed):
    edge_index, etype, g = _graph(10 * REDUCTIONS.index(reduce) + list(PARTS).index(parts))
    etype = etype if typed else None
    x = torch.randn(9, C, generator=g, dtype=torch.float64)
    kw = _parts(g, PARTS[parts])
    t = 0.7
    got = relational_aggregate(x, edge_index, etype, reduce, t=t, max_dense=max_dense, **kw)
    want = _reference(x, edge_index, etype, reduce, 9, t=t, **kw)
    assert not want[-2:].any()  # the two rows without incoming edges
    torch.testing.assert_close(got, want)
    nb = build_neighbors(edge_index, 9, max_dense, etype)
    assert nb.dense == (max_dense > 0)
    torch.testing.assert_close(neighbor_aggregate(x, nb, reduce, t=t, **kw), want)


@pytest.mark.parametrize("max_dense", [8, 0], ids=["dense", "edgewise"])
@pytest.mark.parametrize("reduce", REDUCTIONS)
def test_bipartite_and_in_degree_two(reduce, max_dense):
    # 6 sources → 5 targets, in-degrees 2, 1, 2, 0, 2 (the K = 2 softmax fast path) with mixed relations
    g = torch.Generator().manual_seed(5)
    edge_index = torch.tensor([[0, 5, 3, 1, 2, 4, 0], [0, 0, 1, 2, 2, 4, 4]])
    etype = torch.tensor([1, 0, 2, 0, 1, 1, 2])
    x = torch.randn(6, C, generator=g, dtype=torch.float64)
    emb = torch.randn(R, C, generator=g, dtype=torch.float64)
    kw = dict(edge_emb=emb, message=_message, t=1.3)
    got = relational_aggregate(x, edge_index, etype, reduce, num_dst=5, max_dense=max_dense, **kw)
    torch.testing.assert_close(got, _reference(x, edge_index, etype, reduce, 5, **kw))
    assert not got[3].any()


def test_sum_with_weight_is_the_relational_matmul_path():
    edge_index, etype, g = _graph(11)
    x = torch.randn(9, C, generator=g, dtype=torch.float64)
    w = torch.randn(R, C, C_OUT, generator=g, dtype=torch.float64)
    want = relational_message_passing(x, w, edge_index, etype)
    assert torch.equal(relational_aggregate(x, edge_index, etype, "sum", weight=w), want)
    deg = torch.bincount(edge_index[1], minlength=9).clamp(min=1).unsqueeze(1)
    torch.testing.assert_close(relational_aggregate(x, edge_index, etype, "mean", weight=w), want / deg)


def test_all_zero_types_are_the_untyped_table():
    edge_index, _, _ = _graph(2)
    zero = torch.zeros(edge_index.shape[1], dtype=torch.long)
    assert build_neighbors(edge_index, 9, edge_type=zero).etype is None
    assert build_neighbors(edge_index, 9, edge_type=zero + 1).etype is not None
    assert build_neighbors(edge_index, 9, 0, zero + 1).etype is not None


@pytest.mark.parametrize("max_dense", [8, 0], ids=["dense", "edgewise"])
@pytest.mark.parametrize("reduce", REDUCTIONS)
def test_gradcheck(reduce, max_dense):
    edge_index, etype, g = _graph(7, n=6, e=12, unique=True)
    x = torch.randn(6, C, generator=g, dtype=torch.float64, requires_grad=True)
    w = torch.randn(R, C, C_OUT, generator=g, dtype=torch.float64, requires_grad=True)
    emb = torch.randn(R, C_OUT, generator=g, dtype=torch.float64, requires_grad=True)
    t = torch.tensor([0.8], dtype=torch.float64, requires_grad=True)
    nb = build_neighbors(edge_index, 6, max_dense, etype)

    def f(x, w, emb, t):
        # tanh keeps the message smooth (relu's kink would break finite differences)
        return neighbor_aggregate(x, nb, reduce, weight=w, edge_emb=emb, message=torch.tanh, t=t)

    assert torch.autograd.gradcheck(f, (x, w, emb, t))


@pytest.mark.parametrize("reduce", REDUCTIONS)
def test_scatter_aggregate_gradcheck_and_empty_rows(reduce):
    g = torch.Generator().manual_seed(3)
    dst = torch.tensor([0, 0, 2, 2, 2, 4])
    msg = torch.randn(6, 3, generator=g, dtype=torch.float64, requires_grad=True)
    t = torch.tensor([1.5], dtype=torch.float64, requires_grad=True)
    out = scatter_aggregate(msg, dst, 6, reduce, t)
    assert out.shape == (6, 3) and not out[[1, 3, 5]].any()
    assert torch.autograd.gradcheck(lambda m, t: scatter_aggregate(m, dst, 6, reduce, t), (msg, t))


def test_messages_per_relation():
    edge_index, etype, g = _graph(4)
    x = torch.randn(9, C, generator=g, dtype=torch.float64)
    w = torch.randn(R, C, C_OUT, generator=g, dtype=torch.float64)
    emb = torch.randn(R, C_OUT, generator=g, dtype=torch.float64)
    got = relational_messages(x, edge_index[0], etype, w, emb)
    want = torch.stack([x[s] @ w[r] + emb[r] for s, r in zip(edge_index[0].tolist(), etype.tolist())])
    torch.testing.assert_close(got, want)


def test_bad_reduce():
    edge_index, etype, _ = _graph(0)
    with pytest.raises(ValueError, match="reduce"):
        relational_aggregate(torch.zeros(9, C), edge_index, etype, "median")


@pytest.mark.parametrize("reduce", REDUCTIONS)
def test_segments_are_the_table_of_contiguous_groups(reduce):
    """The segment form (patches of K contiguous points) equals the same edges as an explicit graph."""
    g = torch.Generator().manual_seed(11)
    n, k = 4, 3
    x = torch.randn(n * k, C, generator=g, dtype=torch.float64)
    edge_index = torch.stack([torch.arange(n * k), torch.arange(n).repeat_interleave(k)])
    kw = _parts(g, PARTS["weight_dst_message"], num_dst=n)
    got = neighbor_aggregate(x, segment_table(n, k), reduce, t=0.7, **kw)
    torch.testing.assert_close(got, _reference(x, edge_index, None, reduce, n, t=0.7, **kw))
    with pytest.raises(ValueError, match="segments of 3"):
        neighbor_aggregate(x[:-1], segment_table(n, k), reduce)
    with pytest.raises(ValueError, match="one row per target"):
        neighbor_aggregate(x, segment_table(n, k), reduce, dst_term=torch.zeros(n + 1, C, dtype=torch.float64))


@pytest.mark.parametrize("max_dense", [32, 0], ids=["dense", "edgewise"])
def test_two_ended_message_gradcheck(max_dense):
    edge_index, _, g = _graph(3, n=5, e=8, unique=True)
    x = torch.randn(5, C, generator=g, dtype=torch.float64, requires_grad=True)
    w = torch.randn(1, C, C_OUT, generator=g, dtype=torch.float64, requires_grad=True)
    d = torch.randn(5, C_OUT, generator=g, dtype=torch.float64, requires_grad=True)
    nb = build_neighbors(edge_index, 5, max_dense)

    def f(x, w, d):
        return neighbor_aggregate(x, nb, "softmax", weight=w, message=torch.tanh, dst_term=d)

    assert torch.autograd.gradcheck(f, (x, w, d))
