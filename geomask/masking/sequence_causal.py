"""Causal language modeling's "mask": every maskable token is a target, predicted from its left context.

CLM (GPT; Radford et al. 2018) predicts token ``t`` from tokens ``< t``.  On a
:class:`~geomask.masking.sequence_layout.SequenceLayout` the targets are exactly the layout's ``maskable``
positions: every real token that is not special (``[CLS]``/``<cls>``, ``[SEP]``/``<eos>``, padding never are).
The masker draws nothing (the generator is not advanced); the method (``clm``) reads the mask as "predict this
token from the positions before it" under a causal attention mask and leaves the input ids unchanged.

.. math::
    M = \\{(b, t) : \\mathrm{maskable}_{b,t}\\},\\qquad
    \\mathcal{L} = -\\frac{1}{|M|} \\sum_{(b, t) \\in M} \\log p(x_{b,t} \\mid x_{b,<t})
"""

from __future__ import annotations

import torch
from torch import Tensor

from geomask.masking.base import Masker
from geomask.masking.registry import register_masker
from geomask.masking.sequence_layout import SequenceLayout

__all__ = ["CausalMasker"]


@register_masker("causal")
class CausalMasker(Masker):
    """CLM targets: every maskable token (non-special, non-padding), predicted from its left context.

    Shapes:
        layout ``maskable [B, L]`` → ``[B * L]`` bool (``= maskable``, row-major).
    """

    layouts = (SequenceLayout,)

    def __init__(self) -> None:  # no options (the protocol's registry builds it from ``{name: causal}``)
        pass

    def mask(self, layout: SequenceLayout, generator: torch.Generator) -> Tensor:
        return layout.maskable.reshape(-1).clone()
