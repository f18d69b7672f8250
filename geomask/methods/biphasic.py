"""Biphasic pretraining (Gisserot-Boukhlef et al. 2025, "Should we still pretrain encoders with masked language
modeling?"): causal language modeling first, then masked language modeling, with one encoder and one LM head.

For the first ``switch_step`` optimiser steps the step is :class:`~geomask.methods.clm.CLM`'s (causal attention,
next-token cross-entropy over every maskable token, the ``causal`` masker); from then on it is
:class:`~geomask.methods.mlm.MLM`'s (bidirectional attention, the ``masker`` section, default
``{name: mlm, ratio: 0.15}``, 80/10/10 replacement, cross-entropy on the masked tokens).  The same
:class:`~geomask.nn.sequence_encoder.SequenceEncoder` and :class:`~geomask.methods.mlm.LMHead` serve both
phases, so a step costs what an MLM step costs (one encoder pass over ``[B, L]``; CLM projects every target row
to the vocabulary, MLM only the masked ones).

.. math::
    \\mathcal{L}_s = \\begin{cases} \\mathcal{L}_{\\text{CLM}} & s < s_{\\text{switch}} \\\\
    \\mathcal{L}_{\\text{MLM}} & s \\ge s_{\\text{switch}} \\end{cases}

The step counter ``steps`` is a buffer (saved in checkpoints, so a resumed run stays in its phase) advanced only by
:meth:`Biphasic.on_train_step_end`; ``forward`` reads it and changes nothing.  Every step's terms are ``loss``,
``phase`` (0 = CLM, 1 = MLM), ``accuracy`` and the phase's own term (``clm`` or ``mlm``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from geomask.errors import UsageError
from geomask.masking.base import Masker
from geomask.masking.sequence_causal import CausalMasker
from geomask.masking.sequence_layout import SequenceLayout
from geomask.methods.clm import CLM
from geomask.methods.compose import loss_section, masker_section
from geomask.methods.mlm import MLM, SEQUENCE_DATA
from geomask.nn.sequence_encoder import SequenceEncoder

__all__ = ["Biphasic", "build_biphasic"]


class Biphasic(CLM):
    """CLM for ``switch_step`` steps, then MLM (module docstring).

    Args:
        encoder: a :class:`~geomask.nn.sequence_encoder.SequenceEncoder` (both phases).
        masker: the MLM phase's masker (on a :class:`SequenceLayout`).
        loss: ``loss(logits [M, V], labels [M]) -> scalar`` (both phases).
        switch_step: optimiser steps of CLM before MLM (0: MLM from the start).
        tie_embeddings: the output embedding is the input embedding.
        mask_prob, random_prob: MLM's replacement shares (0.8, 0.1).
    """

    data_kinds = SEQUENCE_DATA
    lm_scoring = "masked"  # it ends in its MLM phase
    steps: Tensor

    def __init__(
        self,
        encoder: SequenceEncoder,
        masker: Masker,
        loss: nn.Module,
        switch_step: int,
        tie_embeddings: bool = True,
        mask_prob: float = 0.8,
        random_prob: float = 0.1,
    ):
        super().__init__(encoder, masker, loss, tie_embeddings)
        if isinstance(switch_step, bool) or not isinstance(switch_step, int) or switch_step < 0:
            raise UsageError(f"biphasic: switch_step must be an integer >= 0, got {switch_step!r}")
        self.switch_step, self.mask_prob, self.random_prob = switch_step, mask_prob, random_prob
        self.clm_masker = CausalMasker()
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))

    @property
    def phase(self) -> str:
        """``"clm"`` while fewer than ``switch_step`` optimiser steps were taken, then ``"mlm"``."""
        return "clm" if int(self.steps) < self.switch_step else "mlm"

    def loss_terms(self, batch: Any, generator: torch.Generator) -> dict[str, Tensor]:
        if self.phase == "clm":
            out = self.clm_terms(batch, generator, self.clm_masker)
        else:
            out = MLM.loss_terms(self, batch, generator)
        out["phase"] = torch.tensor(float(self.phase == "mlm"), device=out["loss"].device)
        return out

    def on_train_step_end(self, step: int) -> None:
        """Step ``step`` (0-based) was taken: ``steps = step + 1``."""
        self.steps.fill_(step + 1)

    def features(self, batch: Any) -> Tensor:
        """Mean of the (bidirectional, as MLM) encoder's outputs over the real tokens, ``[B, E]``."""
        return MLM.features(self, batch)


def build_biphasic(
    *,
    switch_step: int = 1000,
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
) -> Biphasic:
    """Biphasic CLM → MLM by keywords (sizes of :func:`~geomask.methods.mlm.build_mlm`; ``switch_step`` CLM steps).

    ``masker`` (the MLM phase's) defaults to ``{name: mlm, ratio: 0.15}``, ``loss`` to ``{name: cross_entropy}``.
    """
    encoder = SequenceEncoder(vocab_size, dim, depth, heads, mlp_ratio, max_len, eps, drop_path, positions)
    msk = masker_section(masker, {"name": "mlm", "ratio": 0.15}, layout=SequenceLayout)
    crit = loss_section(loss, {"name": "cross_entropy"})
    return Biphasic(encoder, msk, crit, switch_step, tie_embeddings, mask_prob, random_prob)
