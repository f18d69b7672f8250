"""The sequence maskers (mlm, whole_word, span) and the 80/10/10 step: budgets, specials, labels, proportions."""

from __future__ import annotations

import math

import pytest
import torch

from geomask.masking import RowLayout, SequenceLayout, build_masker, mask_counts, mlm_replace
from geomask.masking.sequence_span import geometric_lengths
from geomask.sequences import SequenceItem, Vocab, amino_vocab, collate_sequences

VOCAB = Vocab(50, 0, 4, (0, 1, 2, 3, 4), 2, 3, "test")


def _batch(seed=0, b=16, words=True):
    g = torch.Generator().manual_seed(seed)
    items = []
    for n in torch.randint(1, 60, (b,), generator=g).tolist():
        ids = torch.randint(5, 50, (n,), generator=g)
        w = torch.cumsum((torch.rand(n, generator=g) < 0.5).long(), 0) if words else None
        if w is not None:
            w = w - w[0]
        items.append(SequenceItem(ids, w, VOCAB))
    return collate_sequences(items)


@pytest.mark.parametrize("name", ["mlm", "whole_word", "span"])
def test_specials_and_padding_never_masked_and_seeded(name):
    batch = _batch()
    lay = batch.layout()
    m1 = build_masker({"name": name, "ratio": 0.3})(lay, torch.Generator().manual_seed(3)).view(batch.ids.shape)
    m2 = build_masker({"name": name, "ratio": 0.3})(lay, torch.Generator().manual_seed(3)).view(batch.ids.shape)
    assert torch.equal(m1, m2)
    assert not (m1 & ~batch.maskable).any()
    assert not m1[:, 0].any()  # [CLS]
    assert not m1[torch.arange(len(batch)), batch.lengths - 1].any()  # [SEP]


@pytest.mark.parametrize("name", ["mlm", "span"])
def test_exact_budget(name):
    batch = _batch(1)
    m = build_masker({"name": name, "ratio": 0.15})(batch.layout(), torch.Generator().manual_seed(0))
    got = m.view(batch.ids.shape).sum(1)
    assert torch.equal(got, mask_counts(batch.maskable.sum(1), 0.15))


def test_mlm_bernoulli_is_hf_like():
    batch = _batch(2, b=64)
    m = build_masker({"name": "mlm", "ratio": 0.15, "bernoulli": True})(
        batch.layout(), torch.Generator().manual_seed(0)
    )
    n = int(batch.maskable.sum())
    k = int(m.sum())
    assert abs(k - 0.15 * n) < 4 * math.sqrt(n * 0.15 * 0.85)
    assert not (m.view(batch.ids.shape) & ~batch.maskable).any()


def test_whole_word_keeps_words_whole_and_within_budget():
    batch = _batch(4, b=32)
    m = build_masker({"name": "whole_word", "ratio": 0.2})(batch.layout(), torch.Generator().manual_seed(1))
    m = m.view(batch.ids.shape)
    budget = mask_counts(batch.maskable.sum(1), 0.2)
    for b in range(len(batch)):
        w = batch.word_ids[b][batch.maskable[b]]
        mb = m[b][batch.maskable[b]]
        for word in w.unique():
            sel = mb[w == word]
            assert sel.all() or not sel.any(), "a word was split"
        # within the budget, except the one word always taken when the budget is >= 1 (it may be longer)
        first = int(mb.sum()) if budget[b] > 0 and int(mb.sum()) > int(budget[b]) else None
        if first is not None:
            assert len(w[mb].unique()) == 1
        else:
            assert int(mb.sum()) <= int(budget[b])
    assert m.any()


def test_span_lengths_geometric_mean():
    lengths = geometric_lengths((200_000,), 0.2, 10, torch.Generator().manual_seed(0)).double()
    # SpanBERT: Geo(0.2) clipped at 10 has mean sum_{l<10} l p (1-p)^(l-1) + 10 (1-p)^9 = 3.7842
    want = sum(l * 0.2 * 0.8 ** (l - 1) for l in range(1, 10)) + 10 * 0.8**9
    assert abs(lengths.mean().item() - want) < 0.03
    assert lengths.min() == 1 and lengths.max() == 10


def test_span_masks_contiguous_runs():
    m = build_masker({"name": "span", "ratio": 0.15})(
        SequenceLayout(torch.ones(1, 400, dtype=torch.bool)), torch.Generator().manual_seed(0)
    )
    runs = torch.diff(torch.cat([torch.zeros(1), m.float(), torch.zeros(1)])).eq(1).sum()
    assert int(m.sum()) == 60 and int(runs) < 40  # spans, not 60 scattered tokens


def test_replace_80_10_10_within_binomial_bounds_and_labels():
    v = amino_vocab()
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(4, 29, (200, 500), generator=g)
    mask = torch.rand(ids.shape, generator=g) < 0.15
    inputs, labels = mlm_replace(ids, mask, v, g)
    assert torch.equal(labels[~mask], torch.full_like(labels[~mask], -100))
    assert torch.equal(labels[mask], ids[mask])
    assert torch.equal(inputs[~mask], ids[~mask])
    n = int(mask.sum())
    to_mask = int((inputs[mask] == v.mask_id).sum())
    changed = inputs[mask] != ids[mask]
    rand = int((changed & (inputs[mask] != v.mask_id)).sum())
    special = v.special_table()[inputs[mask]] & (inputs[mask] != v.mask_id)
    assert not special.any()  # random replacements are regular ids only
    for got, p in ((to_mask, 0.8), (rand, 0.1 * 24 / 25)):  # a random draw hits the original 1 time in 25
        assert abs(got - p * n) < 4.5 * math.sqrt(n * p * (1 - p)), (got, p * n)


def test_layout_refuses_bad_input():
    from geomask.errors import UsageError

    with pytest.raises(UsageError, match="maskable"):
        SequenceLayout(torch.ones(3, 4))
    with pytest.raises(UsageError, match="takes a SequenceLayout"):
        build_masker("mlm")(RowLayout(torch.zeros(5, dtype=torch.long)))
