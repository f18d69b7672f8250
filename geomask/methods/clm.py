"""CLM (causal language modeling, GPT): every token predicted from the tokens before it.

The same :class:`~geomask.nn.sequence_encoder.SequenceEncoder` and BERT LM head (:class:`~geomask.methods.mlm.LMHead`,
imported, tied to the input embedding by default) as :mod:`geomask.methods.mlm`, run under a *causal* attention
mask: position ``t`` attends to positions ``s <= t`` that are real tokens (the padding mask ANDed with the lower
triangle, one boolean ``attn_mask`` for SDPA).  The ``masker`` (default ``{name: causal}``: every maskable token,
i.e. every real non-special token) names the targets; the inputs are the ids unchanged.  Position ``t - 1``'s
output predicts token ``t``; the ``loss`` section (default ``{name: cross_entropy}``) averages over the targets:

.. math::
    \\mathcal{L} = -\\frac{1}{|M|} \\sum_{(b, t) \\in M} \\log \\mathrm{softmax}(W h_{b, t-1})_{x_{b,t}},
    \\qquad h = \\mathrm{Enc}_{\\text{causal}}(x)

Shapes: ids ``[B, L]`` → hidden ``[B, L, E]`` → logits of the ``M`` targets ``[M, V]``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from geomask.masking.base import Masker
from geomask.masking.sequence_layout import SequenceLayout
from geomask.methods.compose import loss_section, masker_section
from geomask.methods.mlm import MLM, SEQUENCE_DATA
from geomask.nn.sequence_encoder import SequenceEncoder
from geomask.nn.vit import attention_mask as padding_attention

__all__ = ["CLM", "build_clm", "causal_attention", "encode_causal"]


def causal_attention(attention_mask: Tensor | None, length: int, device: torch.device) -> Tensor:
    """The SDPA boolean ``attn_mask`` (True = may attend) of causal attention over real keys.

    Shapes:
        ``attention_mask [B, L]`` bool (True = real; ``None``: all real) → ``[B, 1, L, L]`` (``[1, 1, L, L]``).
    """
    tri = torch.ones(length, length, dtype=torch.bool, device=device).tril()[None, None]
    if attention_mask is None:
        return tri
    return tri & padding_attention(~attention_mask)


def encode_causal(encoder: SequenceEncoder, ids: Tensor, attention_mask: Tensor | None) -> Tensor:
    """The encoder's forward (embeddings, blocks, final norm) under :func:`causal_attention`, ``[B, L, E]``.

    The first position of every sequence attends to itself at least, so no attention row is empty (right padding:
    a padding query still sees the real keys before it)."""
    h = encoder.embed(ids)
    attn = causal_attention(attention_mask, ids.size(1), ids.device)
    for block in encoder.blocks:
        h = block(h, attn)
    return encoder.norm(h)


class CLM(MLM):
    """Causal language modeling (module docstring): an :class:`~geomask.methods.mlm.MLM` whose encoder runs causal
    and whose targets are the next tokens (no replacement step).

    Args:
        encoder: a :class:`~geomask.nn.sequence_encoder.SequenceEncoder`.
        masker: chooses the target tokens on a :class:`SequenceLayout` (``causal``: all maskable ones).
        loss: ``loss(logits [M, V], labels [M]) -> scalar``.
        tie_embeddings: the output embedding is the input embedding.
    """

    data_kinds = SEQUENCE_DATA
    lm_scoring = "causal"  # evaluations score it left to right (log p(x_t | x_<t)), not with a token masked

    def __init__(self, encoder: SequenceEncoder, masker: Masker, loss: nn.Module, tie_embeddings: bool = True):
        super().__init__(encoder, masker, loss, tie_embeddings)

    def causal_logits(self, ids: Tensor, attention_mask: Tensor | None) -> Tensor:
        """``[B, L, V]``: position ``t``'s distribution of token ``t + 1`` given tokens ``<= t``."""
        return self.head(encode_causal(self.encoder, ids, attention_mask))

    def clm_terms(self, batch: Any, generator: torch.Generator, masker: Masker | None = None) -> dict[str, Tensor]:
        """``loss`` (= ``clm``, the targets' next-token cross-entropy) and ``accuracy``; ``masker`` (default: the
        method's) names the targets."""
        batch = self._check(batch)
        layout: SequenceLayout = batch.layout()
        target = ((masker or self.masker)(layout, generator).view(batch.ids.shape) & layout.maskable)[:, 1:]
        h = encode_causal(self.encoder, batch.ids, batch.attention_mask)[:, :-1]
        logits = self.head(h[target])  # only the rows that predict a target reach the vocabulary
        labels = batch.ids[:, 1:][target]
        if labels.numel() == 0:
            loss = logits.sum() * 0.0 + self.head.bias.sum() * 0.0
            return {"loss": loss, "clm": loss}
        loss = self.criterion(logits, labels)
        acc = (logits.argmax(-1) == labels).float().mean().detach()
        return {"loss": loss, "clm": loss, "accuracy": acc}

    def loss_terms(self, batch: Any, generator: torch.Generator) -> dict[str, Tensor]:
        return self.clm_terms(batch, generator)

    def features(self, batch: Any) -> Tensor:
        """Mean of the causal encoder's outputs over the real tokens, ``[B, E]``."""
        batch = self._check(batch)
        h = encode_causal(self.encoder, batch.ids, batch.attention_mask)
        w = batch.attention_mask.unsqueeze(-1).to(h.dtype)
        return (h * w).sum(1) / w.sum(1).clamp_min(1.0)


def build_clm(
    *,
    vocab_size: int = 30522,
    dim: int = 768,
    depth: int = 12,
    heads: int = 12,
    mlp_ratio: float = 4.0,
    max_len: int = 512,
    eps: float = 1e-12,
    drop_path: float = 0.0,
    positions: str = "learned",
    tie_embeddings: bool = True,
    masker: Mapping | str | None = None,
    loss: Mapping | str | None = None,
) -> CLM:
    """CLM by keywords (the sizes of :func:`~geomask.methods.mlm.build_mlm`, BERT-base by default).

    ``masker`` defaults to ``{name: causal}``, ``loss`` to ``{name: cross_entropy}``.
    """
    encoder = SequenceEncoder(vocab_size, dim, depth, heads, mlp_ratio, max_len, eps, drop_path, positions)
    msk = masker_section(masker, {"name": "causal"}, layout=SequenceLayout)
    return CLM(encoder, msk, loss_section(loss, {"name": "cross_entropy"}), tie_embeddings)
