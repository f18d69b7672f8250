"""The ``causal`` and ``terminus`` sequence maskers: exact targets, never special or padding, seeded (no draws)."""

from __future__ import annotations

import pytest
import torch

from geomask.errors import UsageError
from geomask.masking import CausalMasker, SequenceLayout, TerminusLayout, TerminusMasker, build_masker

pytestmark = pytest.mark.usefixtures("one_thread")


def pair_layout():
    """``<cls> r.. <eos> p.. <eos> <pad>..``: receptors 4, 2, 0 residues, peptides 3, 0, 2."""
    from geomask.datasets.peptides import PeptidePair, collate_peptide_pairs
    from geomask.sequences import amino_vocab

    v = amino_vocab()
    items = [PeptidePair(torch.full((r,), 5), torch.full((p,), 6), v) for r, p in ((4, 3), (2, 0), (0, 2))]
    return collate_peptide_pairs(items)


def test_causal_masks_exactly_the_maskable_tokens_and_draws_nothing():
    m = torch.tensor([[False, True, True, False, False], [False, True, False, False, False]])
    g = torch.Generator().manual_seed(3)
    state = g.get_state()
    out = build_masker("causal")(SequenceLayout(m), g)
    assert torch.equal(out, m.reshape(-1)) and torch.equal(g.get_state(), state)
    assert isinstance(build_masker({"name": "causal"}), CausalMasker)


def test_terminus_masks_the_whole_peptide_only():
    batch = pair_layout()
    layout = batch.layout()
    assert isinstance(layout, TerminusLayout)
    got = TerminusMasker()(layout, torch.Generator().manual_seed(0)).view(batch.ids.shape)
    peptide = batch.ids == 6  # the peptide residues, and nothing else, carry id 6
    assert torch.equal(got, peptide)
    assert got.sum(1).tolist() == [3, 0, 2]
    assert not (got & ~layout.maskable).any()  # never <cls>, <eos>, padding
    assert not (got & (batch.ids == 5)).any()  # never the receptor


def test_terminus_is_deterministic_and_needs_segments():
    layout = pair_layout().layout()
    a = TerminusMasker()(layout, torch.Generator().manual_seed(0))
    b = TerminusMasker()(layout, torch.Generator().manual_seed(1))
    assert torch.equal(a, b)
    with pytest.raises(UsageError, match="takes a TerminusLayout"):
        TerminusMasker()(SequenceLayout(layout.maskable), torch.Generator())
    with pytest.raises(UsageError, match="segment_ids must be"):
        TerminusLayout(layout.maskable, None, None)
    with pytest.raises(UsageError, match="segment must be an integer"):
        build_masker({"name": "terminus", "segment": 0})
