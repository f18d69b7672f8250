"""Losses as registered modules: ``loss(pred, target, mask=None) -> scalar``, built by name from a config.

``build_loss({"name": "sce", "gamma": 3})``; :func:`available_losses` lists the names.  Every module calls the
function of the same name in :mod:`geomask.losses.functional` (the masked-mean convention is there).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from torch import Tensor, nn

from geomask.errors import UsageError
from geomask.losses import functional as L
from geomask.targets.registry import Registry

__all__ = [
    "ChamferL1",
    "ChamferL2",
    "CosineError",
    "CrossEntropy",
    "Huber",
    "JSDivergence",
    "L1",
    "L2",
    "Loss",
    "ScaledCosineError",
    "SmoothL1",
    "available_losses",
    "build_loss",
    "register_loss",
]

T = TypeVar("T", bound=Callable[..., Any])

LOSSES = Registry("loss")


def register_loss(name: str, description: str | None = None) -> Callable[[T], T]:
    """Register a loss class or factory under ``name`` (description: the docstring's first line by default)."""
    return LOSSES.register(name, description)


def build_loss(spec: Mapping[str, Any] | str) -> Loss:
    """Build a loss from ``{"name": ..., **keywords}`` (or a bare name).

    Raises:
        UsageError: an unknown name or keyword (the message lists the valid ones), or a bad value.
    """
    return LOSSES.build(spec)


def available_losses() -> dict[str, str]:
    """``{name: one-line description}`` of every registered loss."""
    return LOSSES.available()


def _positive(name: str, value: float) -> float:
    if not value > 0:
        raise UsageError(f"loss keyword {name} must be > 0, got {value}")
    return float(value)


class Loss(nn.Module):
    """Base class: ``forward(pred, target, mask=None) -> scalar``, the mean over masked elements.

    ``mask``: bool over the leading dims of the per-element loss, True = counted, ``None`` = all; an empty
    mask gives 0 with a zero gradient.
    """

    def forward(self, pred: Tensor, target: Tensor, mask: Tensor | None = None) -> Tensor:
        raise NotImplementedError


@register_loss("cross_entropy")
class CrossEntropy(Loss):
    """Cross-entropy of logits [*L, K] and class ids [*L] over masked rows, ids == ignore_index skipped."""

    def __init__(self, ignore_index: int = L.IGNORE_INDEX) -> None:
        super().__init__()
        self.ignore_index = int(ignore_index)

    def forward(self, pred: Tensor, target: Tensor, mask: Tensor | None = None) -> Tensor:
        return L.cross_entropy(pred, target, mask, self.ignore_index)


@register_loss("huber")
class Huber(Loss):
    """Huber loss with threshold delta (F.huber_loss; MGVGA's degree loss), mean over masked entries."""

    def __init__(self, delta: float = 1.0) -> None:
        super().__init__()
        self.delta = _positive("delta", delta)

    def forward(self, pred: Tensor, target: Tensor, mask: Tensor | None = None) -> Tensor:
        return L.huber(pred, target, mask, self.delta)


@register_loss("smooth_l1")
class SmoothL1(Loss):
    """Smooth L1 with threshold beta (F.smooth_l1_loss; MSM's smooth_l1 level loss), mean over masked entries."""

    def __init__(self, beta: float = 1.0) -> None:
        super().__init__()
        self.beta = _positive("beta", beta)

    def forward(self, pred: Tensor, target: Tensor, mask: Tensor | None = None) -> Tensor:
        return L.smooth_l1(pred, target, mask, self.beta)


@register_loss("l1")
class L1(Loss):
    """Mean absolute error over masked entries; norm_target normalises each target patch (MAE norm_pix)."""

    def __init__(self, norm_target: bool = False, eps: float = 1e-6) -> None:
        super().__init__()
        self.norm_target, self.eps = bool(norm_target), _positive("eps", eps)

    def forward(self, pred: Tensor, target: Tensor, mask: Tensor | None = None) -> Tensor:
        return L.l1(pred, target, mask, self.norm_target, self.eps)


@register_loss("l2")
class L2(Loss):
    """Mean squared error over masked entries; norm_target normalises each target patch (MAE norm_pix)."""

    def __init__(self, norm_target: bool = False, eps: float = 1e-6) -> None:
        super().__init__()
        self.norm_target, self.eps = bool(norm_target), _positive("eps", eps)

    def forward(self, pred: Tensor, target: Tensor, mask: Tensor | None = None) -> Tensor:
        return L.l2(pred, target, mask, self.norm_target, self.eps)


@register_loss("cosine")
class CosineError(Loss):
    """Mean of 1 - cos(pred, target) over masked rows (MSM's cosine level loss with eps 1e-6)."""

    def __init__(self, eps: float = 1e-8) -> None:
        super().__init__()
        self.eps = _positive("eps", eps)

    def forward(self, pred: Tensor, target: Tensor, mask: Tensor | None = None) -> Tensor:
        return L.cosine_error(pred, target, mask, self.eps)


@register_loss("sce")
class ScaledCosineError(Loss):
    """Scaled cosine error: mean of max(1 - cos, 0)^gamma over masked rows (GraphMAE)."""

    def __init__(self, gamma: float = 2.0, eps: float = 1e-8) -> None:
        super().__init__()
        self.gamma, self.eps = _positive("gamma", gamma), _positive("eps", eps)

    def forward(self, pred: Tensor, target: Tensor, mask: Tensor | None = None) -> Tensor:
        return L.scaled_cosine_error(pred, target, mask, self.gamma, self.eps)


@register_loss("js")
class JSDivergence(Loss):
    """Jensen-Shannon divergence of softmax(logits) and target probabilities, mean over masked rows (CPCM)."""

    def __init__(self, eps: float = 1e-8) -> None:
        super().__init__()
        self.eps = _positive("eps", eps)

    def forward(self, pred: Tensor, target: Tensor, mask: Tensor | None = None) -> Tensor:
        return L.js_loss(pred, target, mask, self.eps)


class _Chamfer(Loss):
    kind = "l2"

    def __init__(self, eps: float = 1e-12) -> None:
        super().__init__()
        self.eps = _positive("eps", eps)

    def forward(self, pred: Tensor, target: Tensor, mask: Tensor | None = None) -> Tensor:
        return L.chamfer(pred, target, mask, self.kind, self.eps)


@register_loss("chamfer_l2")
class ChamferL2(_Chamfer):
    """Chamfer-L2 of point sets [*L, N, D] / [*L, M, D] (squared distances, directions summed; Point-MAE)."""

    kind = "l2"


@register_loss("chamfer_l1")
class ChamferL1(_Chamfer):
    """Chamfer-L1 of point sets [*L, N, D] / [*L, M, D] (distances, directions averaged; Point-BERT dVAE)."""

    kind = "l1"
