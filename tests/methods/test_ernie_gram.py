"""ERNIE-Gram: the loss against its formula by hand on a tiny batch, and a seeded tiny run whose held-out
masked-token loss beats the unigram baseline measured in the same test."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from geomask.datasets.text import generate_text
from geomask.masking.sequence_ngram import NgramLayout
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
        masker={"name": "ngram", "ratio": 0.5},
        **SMALL,
    ).eval()
    out = m(batch, torch.Generator().manual_seed(7))
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


def test_tiny_run_beats_the_unigram_baseline():
    torch.manual_seed(0)
    vocab, train = word_batches(640, 0)
    _, test = word_batches(64, 1)
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
    )
    opt = torch.optim.AdamW(m.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(0)
    m.train()
    for _ in range(120):
        idx = torch.randint(0, len(train), (32,), generator=g)
        out = m(collate_sequences([train[i] for i in idx]), g)
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
    # held-out masked-token loss: ERNIE-Gram's fine head vs the training unigram distribution, same masks
    m.eval()
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
