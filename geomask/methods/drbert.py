"""DrBERT / BPDec (Liang & Liang, 2024, arXiv:2401.15861): BERT's MLM with an enhanced decoder used only in
pretraining.  The encoder is MLM's :class:`~geomask.nn.sequence_encoder.SequenceEncoder`, unchanged (its state
dict has MLM's keys); the decoder (:mod:`geomask.nn.mlm_decoders`, ``decoder:`` names the design) sits between the
encoder's output and BERT's LM head and is dropped after pretraining, so fine-tuning and serving cost nothing extra.

The step is MLM's (the ``masker``, default ``{name: mlm, ratio: 0.15}``; 80/10/10 replacement; the ``loss``, default
``{name: cross_entropy}``, over the masked tokens) with the head reading the decoder's output:

.. math::
    H = \\mathrm{Enc}(\\tilde x),\\quad D = \\mathrm{Dec}(H),\\quad
    \\mathcal{L} = -\\frac{1}{|M|} \\sum_{t \\in M} \\log \\mathrm{softmax}\\big(\\mathrm{Head}(Z_t)\\big)_{x_t},\\quad
    Z_t = \\begin{cases} H_t & r_t < p_{mix} \\\\ D_t & \\text{otherwise} \\end{cases}

``decoder``: ``stack`` (``decoder_depth`` more self-attention blocks; the paper's main design) or ``positions``
(queries ``H + P`` cross-attending to ``H``; absolute positions re-injected as in DeBERTa's enhanced mask decoder).
``output_mix`` ``p_mix`` is the paper's output randomness: in training, each masked token is predicted from the
encoder's output instead of the decoder's with this probability (``r_t`` uniform, from the step's generator); at
evaluation (``model.eval()``) always from the decoder.  The paper's Gradual Unmasking Attention is not implemented.

``features(batch)`` is MLM's: the encoder's mean-pooled output, ``[B, E]``; the decoder takes no part.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from geomask.errors import UsageError
from geomask.masking.base import Masker
from geomask.masking.sequence_layout import SequenceLayout
from geomask.methods.compose import loss_section, masker_section
from geomask.methods.mlm import MLM
from geomask.nn.mlm_decoders import build_mlm_decoder
from geomask.nn.sequence_encoder import SequenceEncoder

__all__ = ["DrBERT", "build_drbert"]


class DrBERT(MLM):
    """MLM with a pretraining-only decoder (module docstring).

    Args:
        encoder: the :class:`~geomask.nn.sequence_encoder.SequenceEncoder` (kept after pretraining).
        decoder: ``(H [B, L, E], attention_mask [B, L]) -> [B, L, E]`` (:mod:`geomask.nn.mlm_decoders`).
        masker, loss, tie_embeddings, mask_prob, random_prob: as :class:`~geomask.methods.mlm.MLM`.
        output_mix: ``p_mix``, the share of masked tokens predicted from the encoder's output in training.
    """

    def __init__(
        self,
        encoder: SequenceEncoder,
        decoder: nn.Module,
        masker: Masker,
        loss: nn.Module,
        tie_embeddings: bool = True,
        mask_prob: float = 0.8,
        random_prob: float = 0.1,
        output_mix: float = 0.0,
    ):
        super().__init__(encoder, masker, loss, tie_embeddings, mask_prob, random_prob)
        if not 0.0 <= output_mix <= 1.0:
            raise UsageError(f"drbert: output_mix must be in [0, 1], got {output_mix!r}")
        self.decoder, self.output_mix = decoder, float(output_mix)

    def logits(self, inputs: Tensor, attention_mask: Tensor) -> Tensor:
        """``[B, L, V]`` logits of every position through the decoder."""
        return self.head(self.decoder(self.encoder(inputs, attention_mask), attention_mask))

    def loss_terms(self, batch: Any, generator: torch.Generator) -> dict[str, Tensor]:
        """``loss`` (= ``mlm``, the masked tokens' cross-entropy through the decoder) and their ``accuracy``."""
        batch = self._check(batch)
        mask, inputs, labels = self.masked(batch, generator)
        h = self.encoder(inputs, batch.attention_mask)
        rows = self.decoder(h, batch.attention_mask)[mask]
        if self.output_mix > 0.0 and self.training:
            r = torch.rand(rows.size(0), generator=generator, device=generator.device).to(rows.device)
            rows = torch.where((r < self.output_mix)[:, None], h[mask], rows)
        logits = self.head(rows)
        target = labels[mask]
        if target.numel() == 0:
            loss = sum(p.sum() * 0.0 for p in self.parameters() if p.requires_grad)
            return {"loss": loss, "mlm": loss}
        loss = self.criterion(logits, target)
        acc = (logits.argmax(-1) == target).float().mean().detach()
        return {"loss": loss, "mlm": loss, "accuracy": acc}


def build_drbert(
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
    mask_prob: float = 0.8,
    random_prob: float = 0.1,
    decoder: str = "stack",
    decoder_depth: int = 2,
    output_mix: float = 0.0,
    masker: Mapping | str | None = None,
    loss: Mapping | str | None = None,
) -> DrBERT:
    """DrBERT by keywords: MLM's (BERT-base sizes by default) plus ``decoder`` (``stack`` or ``positions``),
    ``decoder_depth`` (its layers, the encoder's width and heads) and ``output_mix``.

    ``masker`` defaults to ``{name: mlm, ratio: 0.15}``, ``loss`` to ``{name: cross_entropy}``.
    """
    encoder = SequenceEncoder(vocab_size, dim, depth, heads, mlp_ratio, max_len, eps, drop_path, positions)
    try:
        dec = build_mlm_decoder(decoder, dim, decoder_depth, heads, max_len, mlp_ratio, eps)
    except UsageError as e:
        raise UsageError(f"method.decoder: {e}") from None
    msk = masker_section(masker, {"name": "mlm", "ratio": 0.15}, layout=SequenceLayout)
    crit = loss_section(loss, {"name": "cross_entropy"})
    return DrBERT(encoder, dec, msk, crit, tie_embeddings, mask_prob, random_prob, output_mix)
