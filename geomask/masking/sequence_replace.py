"""BERT's 80/10/10 replacement of masked tokens, shared by collates and methods.

Of the masked tokens, a fraction ``mask_prob`` (0.8) becomes the mask token, ``random_prob`` (0.1) a random
token, and the rest (0.1) stay as they were; every masked token's label is its original id and every other
label is ``-100`` (PyTorch's and Hugging Face's ignore index).  One uniform draw per token decides (equivalent in
distribution to Hugging Face's two Bernoulli draws, 0.8 then 0.5 of the rest).

**Difference from Hugging Face**: random replacements are drawn from the *non-special* ids only
(:meth:`~geomask.sequences.vocab.Vocab.regular_ids`); ``DataCollatorForLanguageModeling`` draws from the whole
vocabulary, special tokens included.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

__all__ = ["IGNORE_INDEX", "mlm_replace"]

IGNORE_INDEX = -100


def mlm_replace(
    ids: Tensor,
    mask: Tensor,
    vocab: Any,
    generator: torch.Generator,
    mask_prob: float = 0.8,
    random_prob: float = 0.1,
) -> tuple[Tensor, Tensor]:
    """Inputs and labels of masked language modeling (module docstring).

    Args:
        ids: ``[B, L]`` int64 token ids.
        mask: ``[B, L]`` bool (or ``[B * L]``), True = masked.
        vocab: a :class:`~geomask.sequences.vocab.Vocab` (``mask_id``, ``regular_ids()``).
        generator: the source of randomness (draws on its device).
        mask_prob: share of masked tokens replaced by ``vocab.mask_id``.
        random_prob: share replaced by a random regular token (the rest keep their id).

    Shapes:
        → inputs ``[B, L]`` int64, labels ``[B, L]`` int64 (``-100`` off the mask).
    """
    if not (mask_prob >= 0.0 and random_prob >= 0.0 and mask_prob + random_prob <= 1.0):
        raise ValueError(f"need mask_prob, random_prob >= 0 with sum <= 1, got {mask_prob}, {random_prob}")
    mask = mask.reshape(ids.shape)
    dev = generator.device
    u = torch.rand(ids.shape, generator=generator, device=dev).to(ids.device)
    regular = vocab.regular_ids(ids.device)
    pick = torch.randint(0, regular.numel(), ids.shape, generator=generator, device=dev).to(ids.device)
    labels = torch.where(mask, ids, torch.full_like(ids, IGNORE_INDEX))
    inputs = torch.where(mask & (u < mask_prob), torch.full_like(ids, vocab.mask_id), ids)
    rand = mask & (u >= mask_prob) & (u < mask_prob + random_prob)
    inputs = torch.where(rand, regular[pick], inputs)
    return inputs, labels
