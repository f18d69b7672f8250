"""ERNIE-Gram: the loss against its formula by hand on a tiny batch (with and without the replaced-token detection
term), one mask draw per step, a seeded tiny run whose held-out masked-token loss beats the unigram baseline
measured in the same test, and one whose RTD head beats the majority class on held-out batches."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from geomask.datasets.text import generate_text
from geomask.errors import UsageError
from geomask.masking.base import Masker
from geomask.masking.sequence_ngram import NgramLayout, NgramMasker
from geomask.masking.sequence_replace import mlm_replace
from geomask.methods import build_method
from geomask.sequences import SequenceItem, Vocab, collate_sequences
from geomask.sequences.ngrams import match_lexicon, mine_lexicon

pytestmark = pytest.mark.usefixtures("one_thread")

SMALL = {"dim": 16, "depth": 1, "heads": 2, "max_len": 32, "generator_dim": 8, "generator_depth": 1}


def word_batches(sentences: int, seed: int):
    """GENERATED sentences (geomask's grammar) as word-level ids, specials 0..4."""
    words = sorted({w for s in generate_text(400, 0) for w in s.split()})
    table = {w: i + 5 for i, w in enumerate(words)}
    vocab = Vocab(len(words) + 5, 0, 4, (0, 1, 2, 3, 4), 2, 3, "words")
    items = [
        SequenceItem(torch.tensor([table[w] for w in s.split()]), None, vocab) for s in generate_text(sentences, seed)
    ]
    return vocab, items


def test_loss_matches_the_formula_by_hand():
    vocab, items = word_batches(6, 1)
    batch = collate_sequences(items)
    lex = mine_lexicon(batch.ids[batch.maskable], vocab_size=vocab.size, top_k=6, min_count=2)
    grams = [row[:n].tolist() for row, n in zip(lex.grams, lex.lengths)]
    m = build_method(
        "ernie_gram",
        vocab_size=vocab.size,
        lexicon=grams,
        lexicon_size=8,
        generator_ratio=0.0,
        coarse_weight=0.5,
        generator_weight=0.25,
        rtd_weight=0.0,  # today's loss: no RTD head, no term
        masker={"name": "ngram", "ratio": 0.5},
        **SMALL,
    ).eval()
    assert m.rtd_head is None
    out = m(batch, torch.Generator().manual_seed(7))
    assert "rtd" not in out
    # by hand: the same draws in the same order
    g = torch.Generator().manual_seed(7)
    layout = batch.layout()
    match = match_lexicon(batch.ids, layout.maskable, lex)
    mask, starts = m.masker.units(NgramLayout(layout.maskable, None, match >= 0), g)
    inputs, labels = mlm_replace(batch.ids, mask, vocab, g)
    unit = starts > 0
    row = match.gather(2, (starts - 2).clamp(0, 1).unsqueeze(-1)).squeeze(-1)
    target = torch.where(starts >= 2, vocab.size + row, batch.ids)[unit]
    assert int((starts >= 2).sum()) > 0  # the batch has n-gram units
    h = m.encoder(inputs, batch.attention_mask)
    fine = F.cross_entropy(m.head(h[mask]), batch.ids[mask])
    valid = torch.cat([(~vocab.special_table()).long(), (torch.arange(8) < len(grams)).long()]).bool()
    coarse = F.cross_entropy(m.coarse_head(h[unit]).masked_fill(~valid, -1e9), target)
    gl = m.generator_head(m.generator(inputs, batch.attention_mask)[unit]).masked_fill(~valid, -1e9)
    gen = F.cross_entropy(gl, target)
    assert float(out["mlm"]) == pytest.approx(float(fine), rel=1e-5)
    assert float(out["ngram"]) == pytest.approx(float(coarse), rel=1e-5)
    assert float(out["generator"]) == pytest.approx(float(gen), rel=1e-5)
    assert float(out["loss"]) == pytest.approx(float(fine + 0.5 * coarse + 0.25 * gen), rel=1e-5)


def test_generator_replaces_units_with_same_length_identities():
    vocab, items = word_batches(8, 2)
    batch = collate_sequences(items)
    lex = mine_lexicon(batch.ids[batch.maskable], vocab_size=vocab.size, top_k=6, min_count=2)
    grams = [row[:n].tolist() for row, n in zip(lex.grams, lex.lengths)]
    kw = {"vocab_size": vocab.size, "lexicon": grams, "lexicon_size": 8, **SMALL}
    torch.manual_seed(0)
    a = build_method("ernie_gram", generator_ratio=0.0, **kw).eval()
    torch.manual_seed(0)
    b = build_method("ernie_gram", generator_ratio=1.0, **kw).eval()
    oa, ob = a(batch, torch.Generator().manual_seed(3)), b(batch, torch.Generator().manual_seed(3))
    assert float(oa["generator"]) == pytest.approx(float(ob["generator"]))  # same masks, same generator input
    assert float(oa["mlm"]) != pytest.approx(float(ob["mlm"]))  # the main model saw the generator's samples


def _trained_tiny(steps: int, test_sentences: int, **extra):
    """A tiny ERNIE-Gram on the word-batch fixture (lexicon mined from its training half), trained ``steps`` seeded
    AdamW steps; returns the model (eval mode), the vocabulary, the training and the held-out items."""
    torch.manual_seed(0)
    vocab, train = word_batches(640, 0)
    _, test = word_batches(test_sentences, 1)
    ids = torch.cat([it.ids for it in train])
    lex = mine_lexicon(ids, vocab_size=vocab.size, top_k=30, min_count=5)
    grams = [row[:n].tolist() for row, n in zip(lex.grams, lex.lengths)]
    m = build_method(
        "ernie_gram",
        vocab_size=vocab.size,
        lexicon=grams,
        lexicon_size=32,
        dim=32,
        depth=1,
        heads=2,
        max_len=32,
        generator_dim=16,
        generator_depth=1,
        generator_heads=2,
        **extra,
    )
    opt = torch.optim.AdamW(m.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(0)
    m.train()
    for _ in range(steps):
        idx = torch.randint(0, len(train), (32,), generator=g)
        out = m(collate_sequences([train[i] for i in idx]), g)
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
    m.eval()
    return m, vocab, train, test


def test_tiny_run_beats_the_unigram_baseline():
    m, vocab, train, test = _trained_tiny(120, 64)
    ids = torch.cat([it.ids for it in train])
    # held-out masked-token loss: ERNIE-Gram's fine head vs the training unigram distribution, same masks
    batch = collate_sequences(test)
    gt = torch.Generator().manual_seed(1)
    layout = batch.layout()
    match = match_lexicon(batch.ids, layout.maskable, (m.grams, m.gram_lengths))
    mask, _ = m.masker.units(NgramLayout(layout.maskable, None, match >= 0), gt)
    inputs = batch.ids.masked_fill(mask, vocab.mask_id)
    with torch.no_grad():
        model_ce = float(F.cross_entropy(m.head(m.encoder(inputs, batch.attention_mask)[mask]), batch.ids[mask]))
    uni = torch.bincount(ids, minlength=vocab.size).double() + 1.0  # add-one smoothed training unigram
    unigram_ce = float(-(uni / uni.sum()).log()[batch.ids[mask]].mean())
    assert model_ce < 0.8 * unigram_ce, (model_ce, unigram_ce)


def _lexicon_batch(seed: int = 1):
    vocab, items = word_batches(6, seed)
    batch = collate_sequences(items)
    lex = mine_lexicon(batch.ids[batch.maskable], vocab_size=vocab.size, top_k=6, min_count=2)
    return vocab, batch, [row[:n].tolist() for row, n in zip(lex.grams, lex.lengths)]


def test_rtd_term_by_hand_and_weight_zero_leaves_the_other_terms():
    vocab, batch, grams = _lexicon_batch()
    kw = {"vocab_size": vocab.size, "lexicon": grams, "lexicon_size": 8, "generator_ratio": 1.0, **SMALL}
    torch.manual_seed(0)
    off = build_method("ernie_gram", rtd_weight=0.0, **kw).eval()
    torch.manual_seed(0)
    on = build_method("ernie_gram", rtd_weight=0.5, **kw).eval()
    a, b = off(batch, torch.Generator().manual_seed(4)), on(batch, torch.Generator().manual_seed(4))
    for k in ("mlm", "ngram", "generator", "accuracy"):  # the head is built last: same weights, same draws
        assert float(a[k]) == float(b[k]), k
    assert float(b["loss"]) == pytest.approx(float(a["loss"]) + 0.5 * float(b["rtd"]), rel=1e-6)
    # by hand: BCE of the head on the real tokens, labels = tokens the generator's samples changed
    c = on.corrupt(batch, torch.Generator().manual_seed(4))
    assert c.replaced.any() and not c.replaced[~batch.attention_mask].any()
    assert torch.equal(c.replaced & ~c.mask, torch.zeros_like(c.replaced))  # only masked units are replaced
    assert not (c.inputs[c.replaced] == batch.ids[c.replaced]).any()
    real = batch.attention_mask
    logits = on.rtd_head(on.encoder(c.inputs, batch.attention_mask)[real])
    want = F.binary_cross_entropy_with_logits(logits, c.replaced[real].float())
    assert float(b["rtd"]) == pytest.approx(float(want), rel=1e-5)
    # generator_ratio 0: nothing is replaced, the labels are all 0
    torch.manual_seed(0)
    none = build_method("ernie_gram", rtd_weight=1.0, **{**kw, "generator_ratio": 0.0}).eval()
    assert not none.corrupt(batch, torch.Generator().manual_seed(4)).replaced.any()
    with pytest.raises(UsageError, match="rtd_weight"):
        build_method("ernie_gram", rtd_weight=-1.0, **kw)
    with pytest.raises(UsageError, match="no RTD head"):
        off.rtd_scores(batch, torch.Generator().manual_seed(4))


def test_one_mask_draw_per_step(monkeypatch):
    vocab, batch, grams = _lexicon_batch()
    m = build_method("ernie_gram", vocab_size=vocab.size, lexicon=grams, lexicon_size=8, **SMALL).eval()
    units, calls = NgramMasker.units, []
    protocol = Masker.__call__

    def counting_units(self, layout, generator):
        calls.append("units")
        return units(self, layout, generator)

    def counting_call(self, layout, generator=None, *args, **kwargs):
        calls.append("call")
        return protocol(self, layout, generator, *args, **kwargs)

    monkeypatch.setattr(NgramMasker, "units", counting_units)
    monkeypatch.setattr(Masker, "__call__", counting_call)
    m(batch, torch.Generator().manual_seed(2))
    assert calls == ["call", "units"]  # one protocol call, one draw of the units
    # the units the step uses are the masker's own draw from the same generator state
    layout = batch.layout()
    match = match_lexicon(batch.ids, layout.maskable, (m.grams, m.gram_lengths))
    mask, starts = units(m.masker, NgramLayout(layout.maskable, None, match >= 0), torch.Generator().manual_seed(2))
    got_mask, got_starts, _ = m.units(batch, torch.Generator().manual_seed(2))
    assert torch.equal(got_mask, mask) and torch.equal(got_starts, starts)


def test_rtd_head_beats_the_majority_class_on_held_out_batches():
    """A short seeded run (generator_ratio 1.0 so that every masked unit carries a sample, rtd_weight 5.0): on
    held-out sentences the RTD head's accuracy beats always answering the majority class ("original") and its
    log-loss the class prior's entropy, both measured on the same held-out labels."""
    m, _, _, test = _trained_tiny(300, 128, generator_ratio=1.0, rtd_weight=5.0)
    batch = collate_sequences(test)
    probs, labels = [], []
    for seed in range(4):  # four corruptions of the held-out sentences
        p, y = m.rtd_scores(batch, torch.Generator().manual_seed(100 + seed))
        probs.append(p[batch.attention_mask])
        labels.append(y[batch.attention_mask])
    p, y = torch.cat(probs), torch.cat(labels).float()
    pos = float(y.mean())
    assert 0.02 < pos < 0.5  # both classes present
    accuracy = float(((p > 0.5).float() == y).float().mean())
    majority = max(pos, 1.0 - pos)
    log_loss = float(F.binary_cross_entropy(p.clamp(1e-6, 1 - 1e-6), y))
    prior = -(pos * math.log(pos) + (1 - pos) * math.log(1 - pos))
    assert accuracy > majority, (accuracy, majority)
    assert log_loss < 0.85 * prior, (log_loss, prior)
