"""The layout of padded token sequences: ``[B, L]`` positions, which of them may be masked, and their words.

Rows are the ``B * L`` positions of a padded ``[B, L]`` id tensor in row-major order (``dense_shape = (B, L)``),
padding included, so a mask reshapes to ``[B, L]``.  ``maskable`` is False at padding and special tokens
(``[CLS]``, ``[SEP]``, ``<eos>``, ...): the sequence maskers never mask them and count their budget among the
maskable tokens only (Hugging Face's ``special_tokens_mask``).  A generic masker (``uniform``) knows nothing of
``maskable``; a method that accepts one ANDs its mask with ``maskable``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from geomask.errors import UsageError
from geomask.masking.layout import Layout

__all__ = ["SequenceLayout"]


@dataclass(frozen=True, eq=False)
class SequenceLayout(Layout):
    """Padded token sequences (module docstring).

    Args:
        maskable: ``[B, L]`` bool, True where a token may be masked.
        word_ids: ``[B, L]`` int64 word of every token within its sequence (``-1``: special or padding), for
            whole-word masking; ``None``: every token is its own word.
    """

    maskable: Tensor
    word_ids: Tensor | None = None

    def __post_init__(self) -> None:
        m = self.maskable
        if not isinstance(m, Tensor) or m.dtype != torch.bool or m.dim() != 2:
            got = f"{m.dtype} {tuple(m.shape)}" if isinstance(m, Tensor) else type(m).__name__
            raise UsageError(f"maskable must be a [B, L] bool tensor, got {got}")
        w = self.word_ids
        if w is not None and (not isinstance(w, Tensor) or w.shape != m.shape or w.is_floating_point()):
            raise UsageError(f"word_ids must be an integer tensor of maskable's shape {tuple(m.shape)}")

    @property
    def num_samples(self) -> int:  # type: ignore[override]
        return self.maskable.size(0)

    @property
    def length(self) -> int:
        return self.maskable.size(1)

    @property
    def batch(self) -> Tensor:  # type: ignore[override]
        return torch.arange(self.num_samples, device=self.device).repeat_interleave(self.length)

    @property
    def device(self) -> torch.device:
        return self.maskable.device

    @property
    def num_rows(self) -> int:
        return self.maskable.numel()

    @property
    def dense_shape(self) -> tuple[int, int]:
        return (self.num_samples, self.length)

    def counts(self) -> Tensor:
        return torch.full((self.num_samples,), self.length, dtype=torch.long, device=self.device)

    def maskable_counts(self) -> Tensor:
        """Maskable tokens per sequence, ``[B]`` int64 (what the sequence maskers' budgets count)."""
        return self.maskable.sum(1)
