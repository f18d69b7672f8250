"""MLM (BERT, Devlin et al. 2019): mask 15 % of the maskable tokens, replace them 80/10/10, predict the originals.

The step: the ``masker`` (default ``{name: mlm, ratio: 0.15}``, exact counts; ``whole_word`` and ``span`` are the
other sequence maskers) chooses positions on the batch's
:class:`~geomask.masking.sequence_layout.SequenceLayout` (never padding or special tokens);
:func:`~geomask.masking.sequence_replace.mlm_replace` makes the inputs (``[MASK]`` 80 %, a random regular token
10 %, unchanged 10 %) and the labels (``-100`` off the mask); the
:class:`~geomask.nn.sequence_encoder.SequenceEncoder` encodes every token; BERT's LM head (dense, GELU, LayerNorm,
then the output embedding, tied to the input embedding by default, plus a bias) gives logits; the ``loss`` section
(default ``{name: cross_entropy}``) averages over the masked tokens:

.. math::
    \\mathcal{L} = -\\frac{1}{|M|} \\sum_{t \\in M} \\log p(x_t \\mid \\tilde{x})
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from geomask.errors import UsageError
from geomask.masking.base import Masker
from geomask.masking.sequence_layout import SequenceLayout
from geomask.masking.sequence_replace import mlm_replace
from geomask.methods.base import Method
from geomask.methods.compose import loss_section, masker_section
from geomask.nn.sequence_encoder import SequenceEncoder
from geomask.sequences.batch import SequenceBatch
from geomask.sequences.packing import PackedSequenceBatch

__all__ = ["MLM", "SEQUENCE_DATA", "LMHead", "build_mlm"]

SEQUENCE_DATA = ("text", "sequences", "generated_text")
"""The data kinds of the sequence methods: tokenized text, protein sequences, the GENERATED default text."""


class LMHead(nn.Module):
    """BERT's LM head: ``LN(GELU(W h + b)) E^T + c`` with ``E`` the output embedding (tied: the input one).

    Shapes:
        ``[*, E]`` → ``[*, V]``.
    """

    def __init__(self, dim: int, vocab_size: int, eps: float = 1e-12, tied: nn.Embedding | None = None):
        super().__init__()
        self.dense, self.act, self.norm = nn.Linear(dim, dim), nn.GELU(), nn.LayerNorm(dim, eps=eps)
        self.tied = tied is not None
        if tied is not None:
            self.register_parameter("weight", None)
            self._tied = [tied]  # not a submodule: its parameter belongs to the encoder
        else:
            self.weight = nn.Parameter(torch.empty(vocab_size, dim).normal_(std=0.02))
        self.bias = nn.Parameter(torch.zeros(vocab_size))

    def forward(self, h: Tensor) -> Tensor:
        w = self._tied[0].weight if self.tied else self.weight
        return nn.functional.linear(self.norm(self.act(self.dense(h))), w, self.bias)


class MLM(Method):
    """Masked language modeling (module docstring).

    Args:
        encoder: a :class:`~geomask.nn.sequence_encoder.SequenceEncoder`.
        masker: chooses masked tokens on a :class:`SequenceLayout`.
        loss: ``loss(logits [M, V], labels [M]) -> scalar``.
        tie_embeddings: the output embedding is the input embedding.
        mask_prob, random_prob: the replacement shares (0.8, 0.1).
    """

    data_kinds = SEQUENCE_DATA
    takes_packed = True  # packed batches (geomask.sequences.packing): masks drawn per sequence

    def __init__(
        self,
        encoder: SequenceEncoder,
        masker: Masker,
        loss: nn.Module,
        tie_embeddings: bool = True,
        mask_prob: float = 0.8,
        random_prob: float = 0.1,
    ):
        super().__init__()
        self.encoder, self.masker, self.criterion = encoder, masker, loss
        self.mask_prob, self.random_prob = mask_prob, random_prob
        tied = encoder.tokens if tie_embeddings else None
        self.head = LMHead(encoder.dim, encoder.vocab_size, encoder.norm.eps, tied)

    def _check(self, batch: Any) -> SequenceBatch | PackedSequenceBatch:
        if not isinstance(batch, (SequenceBatch, PackedSequenceBatch)):
            raise UsageError(f"mlm trains on sequence batches (data.kind text, sequences), got {type(batch).__name__}")
        if batch.vocab.size > self.encoder.vocab_size:
            raise UsageError(
                f"mlm: the data's vocabulary has {batch.vocab.size} ids but the model's vocab_size is "
                f"{self.encoder.vocab_size}: set method.vocab_size >= {batch.vocab.size}"
            )
        return batch

    def logits(self, inputs: Tensor, attention_mask: Tensor) -> Tensor:
        """``[B, L, V]`` logits of every position."""
        return self.head(self.encoder(inputs, attention_mask))

    def masked(
        self, batch: SequenceBatch | PackedSequenceBatch, generator: torch.Generator
    ) -> tuple[Tensor, Tensor, Tensor]:
        """The step's mask ``[B, L]``, inputs and labels (``mlm_replace``).  A packed batch is masked as its
        sequences (:meth:`PackedSequenceBatch.layout`: per-sequence budgets, the unpacked draws) and packed back."""
        view = batch.unpacked() if isinstance(batch, PackedSequenceBatch) else batch
        layout: SequenceLayout = view.layout()
        mask = self.masker(layout, generator).view(view.ids.shape) & layout.maskable
        inputs, labels = mlm_replace(view.ids, mask, view.vocab, generator, self.mask_prob, self.random_prob)
        if isinstance(batch, PackedSequenceBatch):
            return batch.pack(mask, False), batch.pack(inputs, batch.vocab.pad_id), batch.pack(labels, -100)
        return mask, inputs, labels

    def encode(self, inputs: Tensor, batch: SequenceBatch | PackedSequenceBatch) -> Tensor:
        """The encoder's ``[B, L, E]`` of ``inputs`` laid out as ``batch`` (packed: attention within each
        sequence, positions reset at each)."""
        if isinstance(batch, PackedSequenceBatch):
            return self.encoder(inputs, batch.attention_mask, batch.doc_ids, batch.positions)
        return self.encoder(inputs, batch.attention_mask)

    def loss_terms(self, batch: Any, generator: torch.Generator) -> dict[str, Tensor]:
        """``loss`` (= ``mlm``, the masked tokens' cross-entropy) and ``accuracy`` of the masked tokens."""
        batch = self._check(batch)
        mask, inputs, labels = self.masked(batch, generator)
        h = self.encode(inputs, batch)
        logits = self.head(h[mask])  # only the masked rows reach the vocabulary projection
        target = labels[mask]
        if target.numel() == 0:
            loss = logits.sum() * 0.0 + self.head.bias.sum() * 0.0
            return {"loss": loss, "mlm": loss}
        loss = self.criterion(logits, target)
        acc = (logits.argmax(-1) == target).float().mean().detach()
        return {"loss": loss, "mlm": loss, "accuracy": acc}

    def features(self, batch: Any) -> Tensor:
        """Mean of the encoder's outputs over the real tokens, ``[B, E]`` (packed: one per sequence, ``[D, E]``)."""
        batch = self._check(batch)
        h = self.encode(batch.ids, batch)
        if isinstance(batch, PackedSequenceBatch):
            return batch.pool(h)
        w = batch.attention_mask.unsqueeze(-1).to(h.dtype)
        return (h * w).sum(1) / w.sum(1).clamp_min(1.0)


def build_mlm(
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
    masker: Mapping | str | None = None,
    loss: Mapping | str | None = None,
) -> MLM:
    """MLM by keywords (BERT-base sizes by default: 768 wide, 12 blocks, 12 heads, 30522 ids, 512 positions;
    ``positions`` ``"learned"`` (BERT) or ``"rotary"`` (ESM-2)).

    ``masker`` defaults to ``{name: mlm, ratio: 0.15}``, ``loss`` to ``{name: cross_entropy}``.
    """
    encoder = SequenceEncoder(vocab_size, dim, depth, heads, mlp_ratio, max_len, eps, drop_path, positions)
    msk = masker_section(masker, {"name": "mlm", "ratio": 0.15}, layout=SequenceLayout)
    return MLM(encoder, msk, loss_section(loss, {"name": "cross_entropy"}), tie_embeddings, mask_prob, random_prob)
