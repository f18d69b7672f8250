"""Discrete token targets: the argmax of a tokenizer's logits (Point-BERT's dVAE, a VQ codebook's scores).

``targets`` sits below ``nn`` in the import order, so the tokenizer (e.g.
:class:`geomask.nn.dvae.DiscreteVAE`) is passed in, not imported.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from geomask.errors import UsageError
from geomask.targets.registry import register_target

__all__ = ["TokenIds"]


@register_target("tokens")
class TokenIds(nn.Module):
    """Token ids ``argmax(logits, -1)`` of a tokenizer, computed without gradient in eval mode.

    The tokenizer is switched to eval mode for the call and back to its previous mode after (Point-BERT's
    practice: dropout and batch norm off while tokenizing, even when the dVAE trains in the same step).

    Args:
        tokenizer: the tokenizer module (kept as a submodule; not frozen, so it may train elsewhere).
        method: the tokenizer's method returning logits (``"logits"`` for the dVAE); ``None`` calls the module.

    Shapes:
        ``target(*inputs)`` with logits ``[..., V]`` → ``[...]`` int64 ids in ``[0, V)``; for the dVAE,
        ``(neighborhood [B, G, K, 3], centers [B, G, 3])`` → ``[B, G]``.
    """

    def __init__(self, tokenizer: nn.Module, method: str | None = "logits") -> None:
        super().__init__()
        if not isinstance(tokenizer, nn.Module):
            raise UsageError(f"a token target wraps an nn.Module tokenizer, got {type(tokenizer).__name__}")
        if method is not None and not callable(getattr(tokenizer, method, None)):
            raise UsageError(f"the tokenizer {type(tokenizer).__name__} has no method {method!r}")
        self.tokenizer, self.method = tokenizer, method

    def forward(self, *inputs: Any, **kwargs: Any) -> Tensor:
        fn = self.tokenizer if self.method is None else getattr(self.tokenizer, self.method)
        was = self.tokenizer.training
        self.tokenizer.eval()
        try:
            with torch.no_grad():
                return fn(*inputs, **kwargs).argmax(-1)
        finally:
            self.tokenizer.train(was)
