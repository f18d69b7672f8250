"""Node → Verilog-chunk cross-attention against torch's MultiheadAttention run graph by graph."""

from __future__ import annotations

import pytest
import torch

from geomask.nn.cross_attention import AlignBlock, NodeChunkCrossAttention

H, D, HEADS = 16, 12, 4


def oracle(att: NodeChunkCrossAttention) -> torch.nn.MultiheadAttention:
    mha = torch.nn.MultiheadAttention(H, HEADS, kdim=D, vdim=D, batch_first=True)
    with torch.no_grad():
        mha.q_proj_weight.copy_(att.q.weight)
        mha.k_proj_weight.copy_(att.k.weight)
        mha.v_proj_weight.copy_(att.v.weight)
        mha.in_proj_bias.copy_(torch.cat([att.q.bias, att.k.bias, att.v.bias]))
        mha.out_proj.load_state_dict(att.out.state_dict())
    return mha


def test_matches_per_graph_multihead_attention():
    torch.manual_seed(0)
    att = NodeChunkCrossAttention(H, D, HEADS)
    nodes, chunks = [5, 9, 1], [3, 1, 6]
    batch = torch.repeat_interleave(torch.arange(3), torch.tensor(nodes))
    key_batch = torch.repeat_interleave(torch.arange(3), torch.tensor(chunks))
    x, keys = torch.randn(sum(nodes), H), torch.randn(sum(chunks), D)
    got = att(x, batch, keys, key_batch, 3)
    mha = oracle(att)
    want = torch.cat(
        [mha(x[batch == g][None], keys[key_batch == g][None], keys[key_batch == g][None])[0][0] for g in range(3)]
    )
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    assert torch.isfinite(got).all()


def test_single_key_gives_every_node_the_same_context():
    torch.manual_seed(1)
    att = NodeChunkCrossAttention(H, D, HEADS)
    batch = torch.tensor([0, 0, 0, 1, 1])
    x, vec = torch.randn(5, H), torch.randn(2, D)
    ctx = att(x, batch, vec, torch.arange(2), 2)
    torch.testing.assert_close(ctx[0], ctx[2])
    torch.testing.assert_close(ctx[3], ctx[4])
    assert not torch.allclose(ctx[0], ctx[3])
    # identical to the general path with one key per graph (the attention weight is exactly 1)
    mha = oracle(att)
    torch.testing.assert_close(ctx[:3], mha(x[None, :3], vec[None, :1], vec[None, :1])[0][0], atol=1e-5, rtol=1e-5)


def test_chunks_give_nodes_different_contexts():
    torch.manual_seed(2)
    att = NodeChunkCrossAttention(H, D, HEADS)
    ctx = att(
        torch.randn(6, H), torch.zeros(6, dtype=torch.long), torch.randn(4, D), torch.zeros(4, dtype=torch.long), 1
    )
    assert torch.cdist(ctx, ctx).fill_diagonal_(1.0).min() > 1e-4


def test_graph_without_chunks_is_an_error():
    att = NodeChunkCrossAttention(H, D, HEADS)
    with pytest.raises(ValueError, match="chunk"):
        att(torch.randn(3, H), torch.tensor([0, 1, 1]), torch.randn(2, D), torch.tensor([0, 0]), 2)


def test_align_block_backward():
    blk = AlignBlock(H, D, HEADS)
    x = torch.randn(4, H, requires_grad=True)
    blk(x, torch.tensor([0, 0, 1, 1]), torch.randn(3, D), torch.tensor([0, 1, 1]), 2).sum().backward()
    assert all(p.grad is not None for p in blk.parameters())


def test_align_block_with_folded_head_equals_head_after_block():
    torch.manual_seed(0)
    blk = AlignBlock(H, D, HEADS, dropout=0.3).double()
    head = torch.nn.Linear(H, 5).double()
    rows = torch.randn(4, H, dtype=torch.float64)
    batch, keys, kb = torch.tensor([0, 0, 1, 1]), torch.randn(3, D, dtype=torch.float64), torch.tensor([0, 1, 1])
    inverse = torch.tensor([0, 1, 1, 2, 3, 3, 3])
    params = list(blk.parameters()) + list(head.parameters())
    for training in (False, True):
        blk.train(training)
        results = []
        for fold in (True, False):
            torch.manual_seed(1)
            if fold:
                y = blk(rows, batch, keys, kb, 2, inverse=inverse, head=head)
            else:
                y = head(blk(rows, batch, keys, kb, 2, inverse=inverse))
            weights = torch.arange(y.numel(), dtype=torch.float64).view_as(y)
            results.append((y, torch.autograd.grad((y * weights).sum(), params)))
        (ya, ga), (yb, gb) = results
        assert ya.shape == (7, 5)
        torch.testing.assert_close(ya, yb)
        for a, b in zip(ga, gb):
            torch.testing.assert_close(a, b)
