"""BERT's token masking with an exact budget: ``round(ratio * maskable)`` random maskable tokens of every sequence.

**Difference from Hugging Face.**  ``DataCollatorForLanguageModeling`` draws each maskable token independently
with probability ``mlm_probability`` (Bernoulli), so the count per sequence varies (binomial) and may be 0; this
masker masks *exactly* :func:`~geomask.masking.base.mask_counts` ``(maskable, ratio)`` tokens (half rounds up:
0.15 × 10 = 1.5 → 2), the protocol's rule.  ``bernoulli=True`` gives Hugging Face's draw instead (same
expected count).  Special tokens and padding (``maskable`` False) are never masked in either mode.

The 80/10/10 replacement of the chosen tokens is a separate step, :func:`~geomask.masking.sequence_replace.mlm_replace`.
"""

from __future__ import annotations

import torch
from torch import Tensor

from geomask.masking.base import Masker, check_ratio, mask_counts
from geomask.masking.registry import register_masker
from geomask.masking.sequence_layout import SequenceLayout

__all__ = ["MLMMasker", "sequence_keys"]


def sequence_keys(layout: SequenceLayout, generator: torch.Generator) -> Tensor:
    """``[B, L]`` float64 uniform keys on the layout's device, 2 (never among the lowest) at unmaskable tokens."""
    m = layout.maskable
    u = torch.rand(m.shape, generator=generator, dtype=torch.float64, device=generator.device).to(m.device)
    return u.masked_fill(~m, 2.0)


@register_masker("mlm")
class MLMMasker(Masker):
    """BERT MLM: exactly round(ratio * maskable) random maskable tokens per sequence (or HF's Bernoulli draws).

    Args:
        ratio: fraction of the maskable tokens (BERT: 0.15).
        bernoulli: draw every maskable token with probability ``ratio`` instead (Hugging Face's collator).
    """

    layouts = (SequenceLayout,)

    def __init__(self, ratio: float = 0.15, bernoulli: bool = False):
        self.ratio = check_ratio("mlm", "ratio", ratio)
        self.bernoulli = bool(bernoulli)

    def mask(self, layout: SequenceLayout, generator: torch.Generator) -> Tensor:
        keys = sequence_keys(layout, generator)
        if self.bernoulli:
            return (keys < self.ratio).reshape(-1)
        budget = mask_counts(layout.maskable_counts(), self.ratio)
        # one sort: the budget-th smallest key of each row is its threshold (keys are distinct float64 draws; the
        # unmaskable tokens' 2.0 lie above every threshold because budget <= maskable)
        ranked = keys.sort(1).values
        thr = ranked.gather(1, (budget - 1).clamp(min=0)[:, None])
        return ((keys <= thr) & (budget[:, None] > 0)).reshape(-1)
