"""ERNIE-Gram's n-gram masking: lexicon n-grams masked as whole units, exactly ``round(ratio * maskable)`` tokens.

**Segmentation.**  Every maskable position ``t`` may start a unit of length 1 (the token) or ``n = 2 .. max_n``
(a lexicon n-gram of maskable tokens starting there: :class:`NgramLayout`'s ``ngrams``).  Each position draws its
length from ``probs`` (``P(n)`` for n = 1, 2, 3; default 0.4 / 0.3 / 0.3) renormalised over the lengths available
there; overlapping n-grams (n >= 2) are resolved by a random priority (a unit is kept when its key is the lowest
of every unit it overlaps, so kept units never overlap); tokens outside kept n-grams are units of length 1.

**Budget.**  The units of a sequence are taken in a random order while the running token count stays within
``budget = mask_counts(maskable, ratio)`` (the protocol's rounding rule, round half up: 0.15 x 10 → 2).  The
shortfall ``d`` (< max_n) is then filled from the units not taken, longest that fits first (so a shortfall of 2
takes a bigram if one is left, else two single tokens).  Only where no unit left fits (every unmasked maskable
token lies in a longer n-gram) are single tokens of such an n-gram masked: the one case a unit is cut, reported
as length-1 units by :meth:`NgramMasker.units`.  So the count is always exactly the budget.

With a plain :class:`SequenceLayout` (no n-grams) every unit is one token: exact uniform token masking.

Batched over the batch: ``[B, L]`` keys and sorts, a loop over ``n <= max_n`` only.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from geomask.errors import UsageError
from geomask.masking.base import Masker, check_ratio, mask_counts
from geomask.masking.registry import register_masker
from geomask.masking.sequence_layout import SequenceLayout

__all__ = ["NgramLayout", "NgramMasker"]


@dataclass(frozen=True, eq=False)
class NgramLayout(SequenceLayout):
    """A :class:`SequenceLayout` with the lexicon n-grams found in it.

    Args:
        ngrams: ``[B, L, max_n - 1]`` bool, column ``n - 2`` True where a lexicon n-gram of ``n`` maskable tokens
            starts (:func:`geomask.sequences.ngrams.match_lexicon` ``>= 0``); ``None``: none.
    """

    ngrams: Tensor | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        g = self.ngrams
        if g is not None and (not isinstance(g, Tensor) or g.dim() != 3 or g.shape[:2] != self.maskable.shape):
            raise UsageError(f"ngrams must be a [B, L, max_n - 1] tensor for maskable {tuple(self.maskable.shape)}")


def _rand(shape: tuple[int, ...], generator: torch.Generator, device: torch.device) -> Tensor:
    return torch.rand(shape, generator=generator, dtype=torch.float64, device=generator.device).to(device)


def _take_prefix(size: Tensor, key: Tensor, budget: Tensor) -> Tensor:
    """``[B, L]`` bool: units (``size > 0``) in ascending ``key`` order while the running size is ``<= budget``."""
    order = key.argsort(1)
    s = size.gather(1, order)
    take_sorted = (torch.cumsum(s, 1) <= budget[:, None]) & (s > 0)
    return torch.zeros_like(take_sorted).scatter(1, order, take_sorted)


@register_masker("ngram")
class NgramMasker(Masker):
    """ERNIE-Gram n-grams: lexicon n-grams (lengths drawn from probs) masked whole, exactly round(ratio * maskable).

    Args:
        ratio: fraction of the maskable tokens (ERNIE-Gram: 0.15).
        probs: ``P(n)`` for ``n = 1 .. max_n`` (renormalised over the lengths available at a position).
    """

    layouts = (SequenceLayout,)

    def __init__(self, ratio: float = 0.15, probs: tuple[float, ...] | list[float] = (0.4, 0.3, 0.3)):
        self.ratio = check_ratio("ngram", "ratio", ratio)
        p = [float(x) for x in probs]
        if not 1 <= len(p) <= 3 or any(not x >= 0.0 for x in p) or p[0] <= 0.0:
            raise UsageError(f"ngram: probs must be 1 to 3 numbers >= 0 with probs[0] > 0, got {list(probs)!r}")
        self.probs = tuple(p)

    def mask(self, layout: SequenceLayout, generator: torch.Generator) -> Tensor:
        return self.units(layout, generator)[0].reshape(-1)

    def units(self, layout: SequenceLayout, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """The mask ``[B, L]`` bool and the masked units' lengths ``[B, L]`` int64 at their first tokens (0 else)."""
        m = layout.maskable
        b, L = m.shape
        dev = m.device
        max_n = len(self.probs)
        avail = torch.zeros((b, L, max_n), dtype=torch.bool, device=dev)
        avail[..., 0] = m
        grams = getattr(layout, "ngrams", None)
        if grams is not None:
            k = min(grams.size(-1), max_n - 1)
            avail[..., 1 : 1 + k] = grams[..., :k].bool() & m[..., None]
        # lengths: inverse-CDF draw from probs restricted to the available lengths
        w = avail.double() * torch.tensor(self.probs, dtype=torch.float64, device=dev)
        cdf = torch.cumsum(w, -1)
        u = _rand((b, L), generator, dev) * cdf[..., -1]
        want = (cdf <= u[..., None]).sum(-1).clamp(max=max_n - 1) + 1  # [B, L] in 1..max_n
        want = torch.where(m, want, torch.zeros_like(want))
        # overlap resolution among n >= 2: kept iff its key is below every overlapping candidate's
        cand = want >= 2
        key = _rand((b, L), generator, dev).masked_fill(~cand, 2.0)
        kept = cand.clone()
        pos = torch.arange(L, device=dev)
        for off in range(-(max_n - 1), max_n):
            if off == 0:
                continue
            s = pos + off  # the other start
            inside = (s >= 0) & (s < L)
            sc = s.clamp(0, L - 1)
            other_key = key[:, sc]
            other_len = want[:, sc]
            other_cand = cand[:, sc] & inside
            if off < 0:
                overlaps = other_cand & (sc + other_len > pos)  # an earlier unit reaching position t
            else:
                overlaps = other_cand & (sc < pos + want)  # a later unit starting inside this one
            kept &= ~(overlaps & (other_key < key))
        size = torch.where(kept, want, m.long())  # unit size at its start (1: a single token)
        covered = torch.zeros((b, L), dtype=torch.long, device=dev)
        for j in range(1, max_n):  # tokens inside a kept n-gram are no unit starts of their own
            shifted = torch.zeros_like(kept)
            shifted[:, j:] = kept[:, :-j] & (want[:, :-j] > j) if j < L else shifted[:, j:]
            covered += shifted.long()
        size = size.masked_fill(covered > 0, 0)
        budget = mask_counts(layout.maskable_counts(), self.ratio)
        order_key = _rand((b, L), generator, dev).masked_fill(size == 0, 2.0)
        take = _take_prefix(size, order_key, budget)
        short = budget - (size * take).sum(1)
        # fill the shortfall: longest unit that fits first, random among equals
        left = torch.where(take | (size > short[:, None]), torch.zeros_like(size), size)
        take |= _take_prefix(left, order_key - left.double() * 4.0, short)
        short = budget - (size * take).sum(1)
        start = size * take  # unit lengths at their starts
        mask = torch.zeros((b, L), dtype=torch.bool, device=dev)
        for j in range(max_n):
            mask[:, j:] |= start[:, : L - j] > j if j < L else mask[:, j:]
        # the one split: single tokens of unmasked n-grams, random order, when nothing else fits
        extra_key = _rand((b, L), generator, dev).masked_fill(~m | mask, 2.0)
        rank = extra_key.argsort(1).argsort(1)
        extra = (rank < short[:, None]) & m & ~mask
        return mask | extra, torch.where(extra, torch.ones_like(start), start)
