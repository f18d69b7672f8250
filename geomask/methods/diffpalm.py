"""DiffPALM's language model (Lupo, Sgarbossa, Bitbol, PNAS 2024): masked LM over concatenated interacting pairs
``<cls> A <eos> B <eos>``, the scorer that :func:`geomask.eval.pairing.pair_species` uses to pair two families.

DiffPALM pairs the paralogs of two interacting families within species by minimising MSA Transformer's masked-LM
loss over the paired alignment.  MSA Transformer is not available offline, so the LM here is a small
:class:`~geomask.methods.mlm.MLM` (imported and subclassed: the same masker, 80/10/10 replacement, encoder, LM
head and loss) trained from scratch on the *true* concatenated pairs of the training species (data kind
``paired_families``, GENERATED families; :mod:`geomask.datasets.paired_families`).  It sees one concatenated pair
at a time, never the whole alignment: the coupling between A and B must be learnt from the training pairs, not read
in context from the other rows as MSA Transformer does.

The step is MLM's:

.. math::
    \\mathcal{L} = -\\frac{1}{|M|} \\sum_{t \\in M} \\log p(x_t \\mid \\tilde{x}), \\quad x = (A, B)

:meth:`DiffPALM.soft_logits` runs the same model on token *distributions* ``[N, L, V]`` (the embedding of a
distribution is its mixture of token embeddings), which is how a soft permutation of B reaches the model.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from geomask.datasets.peptides import PeptidePairBatch
from geomask.errors import UsageError
from geomask.masking.base import Masker
from geomask.masking.sequence_replace import mlm_replace
from geomask.masking.sequence_terminus import TerminusLayout
from geomask.methods.compose import loss_section, masker_section
from geomask.methods.mlm import MLM
from geomask.nn.sequence_encoder import SequenceEncoder
from geomask.nn.vit import attention_mask as padding_attention

__all__ = ["PAIRED_DATA", "DiffPALM", "build_diffpalm"]

PAIRED_DATA = ("paired_families",)
"""DiffPALM's data kind: the true pairs of the GENERATED paired families' training species."""


class DiffPALM(MLM):
    """The paired masked LM of DiffPALM (module docstring).

    Args:
        encoder, masker, loss, tie_embeddings, mask_prob, random_prob: :class:`~geomask.methods.mlm.MLM`'s.
        segment: the masker draws only among the tokens of this segment and after (``1``: B, as DiffPALM masks
            B when it pairs; ``0``: the whole pair).
    """

    data_kinds = PAIRED_DATA

    def __init__(
        self,
        encoder: SequenceEncoder,
        masker: Masker,
        loss: nn.Module,
        tie_embeddings: bool = True,
        mask_prob: float = 0.8,
        random_prob: float = 0.1,
        segment: int = 1,
    ):
        super().__init__(encoder, masker, loss, tie_embeddings, mask_prob, random_prob)
        if segment not in (0, 1):
            raise UsageError(f"diffpalm: segment must be 0 (the whole pair) or 1 (B), got {segment}")
        self.segment = segment

    def masked(self, batch: PeptidePairBatch, generator: torch.Generator) -> tuple[Tensor, Tensor, Tensor]:
        """The step's mask ``[B, L]`` (drawn among the tokens of segment ``>= self.segment``), inputs, labels."""
        full = batch.layout()
        maskable = full.maskable & (full.segment_ids >= self.segment)
        layout = TerminusLayout(maskable, full.word_ids, full.segment_ids)
        mask = self.masker(layout, generator).view(batch.ids.shape) & maskable
        inputs, labels = mlm_replace(batch.ids, mask, batch.vocab, generator, self.mask_prob, self.random_prob)
        return mask, inputs, labels

    def _check(self, batch: Any) -> PeptidePairBatch:
        if not isinstance(batch, PeptidePairBatch):
            raise UsageError(
                f"diffpalm trains on concatenated pairs (data.kind paired_families), got {type(batch).__name__}"
            )
        return super()._check(batch)  # type: ignore[return-value]

    def loss_terms(self, batch: Any, generator: torch.Generator) -> dict[str, Tensor]:
        """``loss`` (= ``diffpalm``, the masked tokens' cross-entropy) and ``accuracy``."""
        out = super().loss_terms(batch, generator)
        out["diffpalm"] = out.pop("mlm")
        return out

    def soft_logits(self, probs: Tensor, attention_mask: Tensor) -> Tensor:
        """Logits ``[N, L, V]`` of token distributions ``probs [N, L, V]`` (one-hot rows: the tokens' own logits).

        The input embedding is ``probs @ E`` (``E`` the token embedding) plus the positions, then the encoder's
        blocks, its norm and the LM head, as :meth:`MLM.logits` runs them on ids.
        """
        enc: SequenceEncoder = self.encoder
        if probs.dim() != 3 or probs.size(-1) != enc.vocab_size or probs.size(1) > enc.max_len:
            raise UsageError(
                f"soft_logits: probs must be [N, L <= {enc.max_len}, {enc.vocab_size}], got {tuple(probs.shape)}"
            )
        h = probs.to(enc.tokens.weight.dtype) @ enc.tokens.weight
        if enc.positions is not None:
            h = h + enc.positions[: probs.size(1)]
        attn = padding_attention(~attention_mask)
        for block in enc.blocks:
            h = block(h, attn)
        return self.head(enc.norm(h))


def build_diffpalm(
    *,
    vocab_size: int = 33,
    dim: int = 768,
    depth: int = 12,
    heads: int = 12,
    mlp_ratio: float = 4.0,
    max_len: int = 1026,
    eps: float = 1e-5,
    drop_path: float = 0.0,
    positions: str = "learned",
    tie_embeddings: bool = True,
    mask_prob: float = 0.8,
    random_prob: float = 0.1,
    segment: int = 1,
    masker: Mapping | str | None = None,
    loss: Mapping | str | None = None,
) -> DiffPALM:
    """DiffPALM's LM by keywords (MSA Transformer's width, depth and heads by default: 768, 12, 12; the 33-token ESM
    alphabet; learned positions).

    ``masker`` defaults to ``{name: mlm, ratio: 0.5}`` drawn among B's residues (``segment=1``), ``loss`` to
    ``{name: cross_entropy}``.
    """
    encoder = SequenceEncoder(vocab_size, dim, depth, heads, mlp_ratio, max_len, eps, drop_path, positions)
    msk = masker_section(masker, {"name": "mlm", "ratio": 0.5}, layout=TerminusLayout)
    crit = loss_section(loss, {"name": "cross_entropy"})
    return DiffPALM(encoder, msk, crit, tie_embeddings, mask_prob, random_prob, segment)
