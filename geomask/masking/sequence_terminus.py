"""PepMLM's terminus masking: the whole C-terminal segment (a peptide after its receptor) is masked, nothing else.

PepMLM (Chen et al. 2024, "PepMLM: target sequence-conditioned generation of therapeutic peptide binders via
span masked language modeling") writes a receptor and its peptide binder as one sequence, the peptide at the
C-terminus, and masks the *whole* peptide, so the model learns to write a binder for a receptor.

**Where the span is.**  The layout says it: :class:`TerminusLayout` is a
:class:`~geomask.masking.sequence_layout.SequenceLayout` with ``segment_ids [B, L]`` int64, the segment of every
position (``0``: the receptor, ``1``: the peptide after the separator, the ``[SEP]`` / ``<eos>`` between them
counting with the receptor; ``-1`` at padding).  The ``peptide_pairs`` batch
(:class:`geomask.datasets.peptides.PeptidePairBatch`) builds it from the lengths it collated
(``<cls> receptor <eos> peptide <eos>``), so no token id has to be searched for.  The mask is

.. math::
    m_{b,t} = \\mathrm{maskable}_{b,t} \\wedge (\\mathrm{segment}_{b,t} \\ge \\mathrm{segment})

exact (every peptide residue, never a receptor residue, a special token or padding; a pair with an empty
peptide masks nothing).  Deterministic: the generator is not advanced.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from geomask.errors import UsageError
from geomask.masking.base import Masker, check_int
from geomask.masking.registry import register_masker
from geomask.masking.sequence_layout import SequenceLayout

__all__ = ["TerminusLayout", "TerminusMasker"]


@dataclass(frozen=True, eq=False)
class TerminusLayout(SequenceLayout):
    """A :class:`SequenceLayout` of segment pairs (module docstring).

    Args:
        segment_ids: ``[B, L]`` int64, the segment of every position (0 first, 1 the C-terminal one; -1 padding).
    """

    segment_ids: Tensor | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        s = self.segment_ids
        if not isinstance(s, Tensor) or s.shape != self.maskable.shape or s.is_floating_point():
            raise UsageError(f"segment_ids must be an integer tensor of maskable's shape {tuple(self.maskable.shape)}")


@register_masker("terminus")
class TerminusMasker(Masker):
    """PepMLM: the whole C-terminal segment (the peptide after its receptor), exactly, never specials or padding.

    Args:
        segment: the first segment masked (1: everything after the first separator).
    """

    layouts = (TerminusLayout,)

    def __init__(self, segment: int = 1):
        self.segment = check_int("terminus", "segment", segment)

    def mask(self, layout: TerminusLayout, generator: torch.Generator) -> Tensor:
        return (layout.maskable & (layout.segment_ids >= self.segment)).reshape(-1)
