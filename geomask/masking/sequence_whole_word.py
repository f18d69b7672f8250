"""Whole-word masking: whole words (all their WordPiece pieces) in random order until the token budget is spent.

Budget: ``round(ratio * maskable)`` tokens of every sequence (:func:`~geomask.masking.base.mask_counts`).  The words
of a sequence are taken in a random order, and a word is masked when the running count of tokens up to and
including it is within the budget -- so the count never exceeds the budget, as in Hugging Face's
``DataCollatorForWholeWordMask`` (which skips a word that would exceed it and goes on with the next; here the
first word that does not fit ends the draw, so a sequence of long words may mask a little fewer).  At least one
word is masked where the budget is at least 1 (the shortest possible).  Tokens of one word are never split.

Batched: one sort of all words of the batch by ``(sequence, random key)``, a cumulative sum per sequence.
"""

from __future__ import annotations

import torch
from torch import Tensor

from geomask.masking.base import Masker, check_ratio, mask_counts
from geomask.masking.registry import register_masker
from geomask.masking.sequence_layout import SequenceLayout

__all__ = ["WholeWordMasker"]


@register_masker("whole_word")
class WholeWordMasker(Masker):
    """Whole-word masking: random whole words up to round(ratio * maskable) tokens per sequence.

    Args:
        ratio: fraction of the maskable tokens (BERT: 0.15).
    """

    layouts = (SequenceLayout,)

    def __init__(self, ratio: float = 0.15):
        self.ratio = check_ratio("whole_word", "ratio", ratio)

    def mask(self, layout: SequenceLayout, generator: torch.Generator) -> Tensor:
        m = layout.maskable
        b, n = m.shape
        dev = m.device
        if m.numel() == 0:
            return torch.zeros(0, dtype=torch.bool, device=dev)
        pos = torch.arange(n, device=dev).expand(b, n)
        w = layout.word_ids if layout.word_ids is not None else pos
        w = w.long()
        # renumber each sequence's maskable words 0..W_b-1 in order of first appearance (word ids are sorted)
        prev_w = torch.cat([w.new_full((b, 1), -2), w[:, :-1]], 1)
        prev_m = torch.cat([m.new_zeros(b, 1), m[:, :-1]], 1)
        start = m & ((w != prev_w) | ~prev_m)
        local = torch.cumsum(start.long(), 1) - 1  # word index within the sequence (valid where maskable)
        wmax = n  # at most one word per position
        gid = torch.arange(b, device=dev)[:, None] * wmax + local  # global word id
        gid = torch.where(m, gid, torch.full_like(gid, b * wmax))  # unmaskable tokens → a spare slot
        size = torch.bincount(gid.reshape(-1), minlength=b * wmax + 1)[:-1].view(b, wmax)
        exists = size > 0
        key = torch.rand((b, wmax), generator=generator, dtype=torch.float64, device=generator.device).to(dev)
        key = key.masked_fill(~exists, 2.0)
        order = key.argsort(1)
        cum = torch.cumsum(size.gather(1, order), 1)
        budget = mask_counts(layout.maskable_counts(), self.ratio)[:, None]
        take_sorted = (cum <= budget) & exists.gather(1, order)
        take_sorted[:, 0] |= (budget[:, 0] > 0) & exists.gather(1, order)[:, 0]  # at least one word
        take = torch.zeros_like(take_sorted).scatter(1, order, take_sorted)
        flat = torch.cat([take.reshape(-1), take.new_zeros(1)])
        return flat[gid.reshape(-1)]
