"""CLM and biphasic CLM → MLM: the loss is next-token cross-entropy under causal attention, the future never leaks,
and biphasic switches exactly at ``switch_step`` with a side-effect-free forward."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from geomask.methods import build_method
from geomask.methods.clm import causal_attention

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = {"vocab_size": 40, "dim": 16, "depth": 2, "heads": 2, "max_len": 32}


def batch():
    from geomask.sequences import SequenceItem, Vocab, collate_sequences

    vocab = Vocab(40, 0, 4, (0, 1, 2, 3, 4), 2, 3, "case")
    g = torch.Generator().manual_seed(0)
    return collate_sequences([SequenceItem(torch.randint(5, 40, (n,), generator=g), None, vocab) for n in (9, 4, 1)])


def hand_written_loss(model, b):
    """Attention by hand (a [L, L] lower triangle AND real keys, -inf elsewhere), then next-token CE over the real,
    non-special tokens."""
    enc = model.encoder
    h = enc.tokens(b.ids) + enc.positions[: b.ids.size(1)]
    n = b.ids.size(1)
    allowed = torch.tril(torch.ones(n, n, dtype=torch.bool))[None] & b.attention_mask[:, None, :]  # [B, Lq, Lk]
    for blk in enc.blocks:
        x = blk.norm1(h)
        q, k, v = blk.attn.qkv(x).view(*x.shape[:2], 3, blk.attn.heads, -1).permute(2, 0, 3, 1, 4)
        s = (q @ k.transpose(-1, -2)) / q.size(-1) ** 0.5
        s = s.masked_fill(~allowed[:, None], float("-inf"))
        a = (s.softmax(-1) @ v).transpose(1, 2).reshape(x.shape)
        h = h + blk.attn.proj(a)
        h = h + blk.mlp(blk.norm2(h))
    logits = model.head(enc.norm(h))
    target = b.maskable[:, 1:]
    return F.cross_entropy(logits[:, :-1][target], b.ids[:, 1:][target])


def test_clm_loss_is_next_token_cross_entropy_with_a_causal_mask():
    torch.manual_seed(0)
    m = build_method("clm", **TINY).eval()
    b = batch()
    got = m(b, torch.Generator().manual_seed(0))["loss"]
    assert torch.allclose(got, hand_written_loss(m, b), atol=1e-5)
    # a bidirectional encoder gives another number: the causal mask matters
    bidir = F.cross_entropy(
        m.logits(b.ids, b.attention_mask)[:, :-1][b.maskable[:, 1:]], b.ids[:, 1:][b.maskable[:, 1:]]
    )
    assert not torch.allclose(got, bidir, atol=1e-4)


def test_a_future_token_leaves_earlier_logits_unchanged():
    torch.manual_seed(0)
    m = build_method("clm", **TINY, positions="rotary").eval()
    b = batch()
    ids = b.ids.clone()
    ids[0, 6] = 7 if int(ids[0, 6]) != 7 else 8
    before = m.causal_logits(b.ids, b.attention_mask)
    after = m.causal_logits(ids, b.attention_mask)
    assert torch.allclose(before[0, :6], after[0, :6], atol=1e-6)
    assert not torch.allclose(before[0, 6:], after[0, 6:], atol=1e-4)
    assert causal_attention(b.attention_mask, 11, torch.device("cpu")).shape == (3, 1, 11, 11)


def test_biphasic_switches_exactly_at_switch_step_and_forward_has_no_side_effects():
    torch.manual_seed(0)
    bi = build_method("biphasic", **TINY, switch_step=3)
    torch.manual_seed(0)
    clm = build_method("clm", **TINY)
    torch.manual_seed(0)
    mlm = build_method("mlm", **TINY)
    assert set(bi.state_dict()) == set(mlm.state_dict()) | {"steps"}  # one encoder and head: MLM's compute
    b = batch()
    phases = []
    for step in range(5):
        state = {k: v.clone() for k, v in bi.state_dict().items()}
        out = bi(b, torch.Generator().manual_seed(step))
        again = bi(b, torch.Generator().manual_seed(step))
        assert torch.equal(out["loss"], again["loss"])  # forward changed nothing
        assert all(torch.equal(v, bi.state_dict()[k]) for k, v in state.items())
        ref = (clm if out["phase"] == 0 else mlm)(b, torch.Generator().manual_seed(step))["loss"]
        assert torch.allclose(out["loss"], ref)  # the phase's own loss, same weights
        phases.append(int(out["phase"]))
        bi.on_train_step_end(step)
    assert phases == [0, 0, 0, 1, 1] and int(bi.steps) == 5
    assert "steps" in bi.state_dict()  # saved with checkpoints: a resumed run stays in its phase
    with pytest.raises(ValueError, match="switch_step"):
        build_method("biphasic", **TINY, switch_step=-1)
