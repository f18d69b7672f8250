"""PepMLM: the loss is the whole peptide's cross-entropy, generation writes valid residues, and a small seeded run
on GENERATED pairs scores true binders below shuffled ones and a unigram baseline (measured in the same test)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from geomask.datasets.peptides import PeptidePair, collate_peptide_pairs, generate_peptide_pairs
from geomask.methods import build_method
from geomask.methods.pepmlm import binder_pseudo_perplexity, generate
from geomask.sequences import AMINO_ACIDS, amino_vocab, encode_protein

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = {"dim": 32, "depth": 1, "heads": 2, "max_len": 64}


def items(pairs):
    v = amino_vocab()
    return [PeptidePair(encode_protein([r])[0], encode_protein([p])[0], v) for r, p in pairs]


def test_loss_is_the_masked_peptides_cross_entropy():
    torch.manual_seed(0)
    m = build_method("pepmlm", **TINY).eval()
    b = collate_peptide_pairs(items([("ACDEFGHIK", "LMNP"), ("WYV", "RRSTQ")]))
    out = m(b, torch.Generator().manual_seed(0))
    pep = b.segment_ids.eq(1) & b.maskable
    assert pep.sum().item() == 9
    inputs = b.ids.masked_fill(pep, amino_vocab().mask_id)  # every peptide residue <mask>, nothing else
    want = F.cross_entropy(m.logits(inputs, b.attention_mask)[pep], b.ids[pep])
    assert torch.allclose(out["loss"], want, atol=1e-6) and torch.equal(out["loss"], out["pepmlm"])


def test_generation_returns_valid_residues_of_the_requested_length():
    torch.manual_seed(0)
    m = build_method("pepmlm", **TINY)
    got = generate(m, "ACDEFGHIKLMN", 7, steps=3, candidates=4, generator=torch.Generator().manual_seed(0))
    again = generate(m, "ACDEFGHIKLMN", 7, steps=3, candidates=4, generator=torch.Generator().manual_seed(0))
    assert got == again and len(got) == 4
    assert all(len(p) == 7 and set(p) <= set(AMINO_ACIDS) for p in got)
    assert m.training  # the model's mode is restored
    greedy = generate(m, "ACDEFGHIKLMN", 5, temperature=0.0, candidates=2)
    assert greedy[0] == greedy[1] and len(greedy[0]) == 5


def test_trained_model_scores_true_binders_below_shuffled_ones_and_the_unigram_baseline():
    train, test = items(generate_peptide_pairs(400, 0)), generate_peptide_pairs(64, 1)
    receptors, peptides = [r for r, _ in test], [p for _, p in test]
    torch.manual_seed(0)
    m = build_method("pepmlm", **TINY)
    before = binder_pseudo_perplexity(m, receptors, peptides, generator=torch.Generator().manual_seed(1))
    opt = torch.optim.AdamW(m.parameters(), 3e-3)
    g = torch.Generator().manual_seed(0)
    for _ in range(150):
        idx = torch.randint(0, len(train), (32,), generator=g)
        loss = m(collate_peptide_pairs([train[i] for i in idx]), g)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = binder_pseudo_perplexity(m, receptors, peptides, generator=torch.Generator().manual_seed(1))
    assert abs(before["true"] - before["shuffled"]) < 0.05 * before["true"]  # untrained: order means nothing
    assert after["true"] < 0.7 * after["shuffled"] and after["true"] < 0.8 * after["unigram"]
    assert after["true"] < 0.7 * before["true"] and after["residues"] == sum(map(len, peptides))
