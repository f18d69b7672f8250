"""SpanBERT's span masking with an exact budget: contiguous spans of geometric length until the budget is met.

Span lengths are drawn from a geometric distribution ``P(ℓ) = p (1 - p)^{ℓ - 1}`` clipped at ``max_span``
(SpanBERT: ``p = 0.2``, ``max_span = 10``, mean ≈ 3.8) until they cover ``round(ratio * maskable)`` tokens of
the sequence; the last span is shortened so the count is exact.  The spans are then placed at random without
overlapping: the spans and the unmasked tokens are shuffled as units (a uniformly random arrangement), so two spans
may touch.  Positions count over the *maskable* tokens (special tokens and padding are skipped, so a span never
covers one; one that straddles a ``[SEP]`` in the middle of a pair continues after it).  SpanBERT masks spans of
whole words; this masker measures spans in tokens (with one token per word, e.g. residues, they are the same).

Batched: ``[B, K]`` lengths, one random arrangement per sequence by sorting keys, one ``searchsorted``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from geomask.masking.base import Masker, check_int, check_ratio, mask_counts
from geomask.masking.registry import register_masker
from geomask.masking.sequence_layout import SequenceLayout

__all__ = ["SpanMasker", "geometric_lengths"]


def geometric_lengths(shape: tuple[int, ...], p: float, max_span: int, generator: torch.Generator) -> Tensor:
    """``shape`` int64 lengths ``1 + floor(log U / log(1 - p))`` (geometric on 1, 2, ...), clipped at ``max_span``."""
    u = torch.rand(shape, generator=generator, dtype=torch.float64, device=generator.device).clamp_min(1e-300)
    if p >= 1.0:
        return torch.ones(shape, dtype=torch.long, device=generator.device)
    return (1 + torch.floor(torch.log(u) / math.log1p(-p))).clamp(max=max_span).long()


@register_masker("span")
class SpanMasker(Masker):
    """SpanBERT spans: geometric lengths (p, clipped at max_span) covering exactly round(ratio * maskable) tokens.

    Args:
        ratio: fraction of the maskable tokens (SpanBERT: 0.15).
        p: the geometric distribution's parameter (SpanBERT: 0.2).
        max_span: the longest span (SpanBERT: 10).
    """

    layouts = (SequenceLayout,)

    def __init__(self, ratio: float = 0.15, p: float = 0.2, max_span: int = 10):
        self.ratio = check_ratio("span", "ratio", ratio)
        self.p = check_ratio("span", "p", p)
        if self.p == 0.0:
            raise ValueError("span: p must be > 0")
        self.max_span = check_int("span", "max_span", max_span)

    def mask(self, layout: SequenceLayout, generator: torch.Generator) -> Tensor:
        m = layout.maskable
        b, n = m.shape
        dev = m.device
        count = layout.maskable_counts()
        budget = mask_counts(count, self.ratio)
        k = int(budget.max()) if b else 0
        if k == 0:
            return torch.zeros(b * n, dtype=torch.bool, device=dev)
        lengths = geometric_lengths((b, k), self.p, self.max_span, generator).to(dev)
        before = torch.cumsum(lengths, 1) - lengths
        lengths = torch.minimum(lengths, (budget[:, None] - before).clamp_min(0))  # exact total: cut the last
        spans = (lengths > 0).sum(1)  # K_b
        units = spans + count - budget  # spans + unmasked tokens
        s = int(units.max())
        key = torch.rand((b, s), generator=generator, dtype=torch.float64, device=generator.device).to(dev)
        slot = torch.arange(s, device=dev).expand(b, s)
        key = key.masked_fill(slot >= units[:, None], 2.0)
        rank = key.argsort(1).argsort(1)
        is_span = rank < spans[:, None]  # the K_b lowest keys are the span units
        span_no = (torch.cumsum(is_span.long(), 1) - 1).clamp(min=0, max=k - 1)
        width = torch.where(is_span, lengths.gather(1, span_no), torch.ones_like(span_no))
        width = width.masked_fill(slot >= units[:, None], 0)
        ends = torch.cumsum(width, 1)  # [B, S]: unit u covers maskable positions [ends - width, ends)
        t = torch.arange(n, device=dev).expand(b, n).contiguous()
        unit = torch.searchsorted(ends, t, right=True).clamp(max=s - 1)
        covered = is_span.gather(1, unit)  # [B, n] over maskable-rank positions
        rank_in_maskable = (torch.cumsum(m.long(), 1) - 1).clamp(min=0)
        return (m & covered.gather(1, rank_in_maskable)).reshape(-1)
