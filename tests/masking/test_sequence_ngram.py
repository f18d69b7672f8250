"""The ``ngram`` masker: exact budgets, lexicon units never split, never special or padding tokens, seeded, the
length distribution, and the one documented split."""

from __future__ import annotations

import pytest
import torch

from geomask.masking import SequenceLayout, build_masker, mask_counts
from geomask.masking.sequence_ngram import NgramLayout, NgramMasker
from geomask.sequences.ngrams import Lexicon, match_lexicon, mine_lexicon

pytestmark = pytest.mark.usefixtures("one_thread")


def gen(seed):
    return torch.Generator().manual_seed(seed)


def corpus(seed=0, b=8, length=40):
    g = gen(seed)
    ids = torch.randint(5, 11, (b, length), generator=g)
    maskable = torch.ones(b, length, dtype=torch.bool)
    maskable[:, 0] = False  # [CLS]
    lens = torch.randint(2, length, (b,), generator=g)
    lens[0] = length
    maskable &= torch.arange(length) < lens[:, None]  # padding after each length
    maskable[torch.arange(b), lens - 1] = False  # [SEP]
    lex = mine_lexicon(ids[maskable], vocab_size=11, top_k=20, min_count=2)
    match = match_lexicon(ids, maskable, lex)
    return ids, maskable, match


@pytest.mark.parametrize("ratio", [0.0, 0.15, 0.3, 0.5, 0.8, 1.0])
def test_exact_budget_never_special_units_whole(ratio):
    ids, maskable, match = corpus()
    layout = NgramLayout(maskable, None, match >= 0)
    mask, starts = NgramMasker(ratio).units(layout, gen(3))
    assert torch.equal(mask.sum(1), mask_counts(maskable.sum(1), ratio))
    assert not (mask & ~maskable).any()
    # every unit of n >= 2 is a lexicon n-gram, fully masked; the units tile the mask exactly
    b_idx, t_idx = torch.nonzero(starts >= 2, as_tuple=True)
    n = starts[b_idx, t_idx]
    assert bool((match[b_idx, t_idx, n - 2] >= 0).all())
    cover = torch.zeros_like(starts)
    for j in range(3):
        cover[:, j:] += (starts[:, : starts.size(1) - j] > j).long()
    assert torch.equal(cover.bool(), mask) and int(cover.max()) <= 1
    if ratio >= 0.5:
        assert int((starts >= 2).sum()) > 10  # n-grams really are masked as units


def test_lexicon_ngrams_are_masked_whole_or_not_at_all():
    # a lexicon that covers much of the text: a masked token inside a matched bigram of the segmentation takes
    # the whole bigram (no split while single tokens are left to fill the budget)
    ids, maskable, match = corpus(seed=1)
    layout = NgramLayout(maskable, None, match >= 0)
    masker = NgramMasker(0.4, probs=(0.2, 0.8))
    mask, starts = masker.units(layout, gen(0))
    assert torch.equal(mask.sum(1), mask_counts(maskable.sum(1), 0.4))
    two = starts == 2
    assert bool(mask[:, 1:][two[:, :-1]].all())
    assert float(two.sum() * 2) / float(mask.sum()) > 0.3  # many masked tokens lie in bigram units


def test_seeded_and_mask_equals_protocol_call():
    ids, maskable, match = corpus()
    layout = NgramLayout(maskable, None, match >= 0)
    m = build_masker({"name": "ngram", "ratio": 0.3})
    a, b, c = m(layout, gen(5)), m(layout, gen(5)), m(layout, gen(6))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert torch.equal(a.view(maskable.shape), m.units(layout, gen(5))[0])
    # a plain SequenceLayout: single tokens, still exact
    plain = m(SequenceLayout(maskable), gen(5)).view(maskable.shape)
    assert torch.equal(plain.sum(1), mask_counts(maskable.sum(1), 0.3))


def test_length_distribution_follows_probs():
    # every position starts a lexicon bigram and trigram: drawn lengths follow probs up to overlap losses
    ids = torch.tensor([[1, 2, 3] * 200])
    maskable = torch.ones_like(ids, dtype=torch.bool)
    lex = Lexicon.from_grams([[1, 2], [2, 3], [3, 1], [1, 2, 3], [2, 3, 1], [3, 1, 2]], vocab_size=4)
    layout = NgramLayout(maskable, None, match_lexicon(ids, maskable, lex) >= 0)
    _, starts = NgramMasker(1.0, probs=(1.0, 0.0, 1.0)).units(layout, gen(0))
    counts = torch.bincount(starts.flatten(), minlength=4)
    assert counts[2] == 0 and counts[3] > 60 and counts[1] > 60  # no bigrams at P(2) = 0


def test_the_only_split_keeps_the_budget():
    # the whole sequence is one lexicon trigram and the budget is 1: one token of it, as a unit of one
    ids = torch.tensor([[1, 2, 3, 1, 2, 3]])
    maskable = torch.ones_like(ids, dtype=torch.bool)
    lex = Lexicon.from_grams([[1, 2, 3], [2, 3, 1], [3, 1, 2]], vocab_size=4)
    layout = NgramLayout(maskable, None, match_lexicon(ids, maskable, lex) >= 0)
    mask, starts = NgramMasker(0.2, probs=(1e-9, 0.0, 1.0)).units(layout, gen(0))
    assert int(mask.sum()) == 1 and int(starts.sum()) == 1


def test_bad_options():
    with pytest.raises(ValueError, match="probs"):
        NgramMasker(0.15, probs=(0.0, 1.0))
    with pytest.raises(ValueError, match="ratio"):
        build_masker({"name": "ngram", "ratio": 2})
