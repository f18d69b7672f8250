"""Masked losses as functions: per-element loss, then :func:`~geomask.losses.reduce.masked_mean`.

Every function takes ``mask`` (bool, True = counted, ``None`` = all; over the leading dims of the
per-element loss) and returns a scalar: the mean over masked elements, 0 with a zero gradient for an empty
mask.  They reproduce the inline losses of the methods bit for bit (same reduction, same eps):

* :func:`cross_entropy` with a mask = MGVGA's ``masked_cross_entropy`` loss (its accuracy =
  :func:`masked_accuracy`); without one = ``F.cross_entropy(logits, target)`` (Point-BERT, CPCM).
* :func:`scaled_cosine_error` = GraphMAE's; :func:`cosine_error` with ``eps=1e-6`` and :func:`smooth_l1` =
  MSM's two ``_level_loss`` kinds; :func:`huber` = MGVGA's degree loss; :func:`js_divergence` = CPCM's.
* :func:`chamfer` (``"l2"`` / ``"l1"``) without a mask = :func:`geomask.ops.chamfer.chamfer_distance`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from geomask.errors import UsageError
from geomask.losses.reduce import check_mask, masked_mean
from geomask.ops.chamfer import nearest_sq_distances
from geomask.targets.normalize import normalize_patches

__all__ = [
    "CHAMFER_KINDS",
    "IGNORE_INDEX",
    "chamfer",
    "cosine_error",
    "cross_entropy",
    "huber",
    "js_divergence",
    "js_loss",
    "l1",
    "l2",
    "masked_accuracy",
    "row_cosine",
    "scaled_cosine_error",
    "smooth_l1",
]

IGNORE_INDEX = -100
CHAMFER_KINDS = ("l1", "l2")


class _RowCosine(torch.autograd.Function):
    """``F.cosine_similarity(a, b, dim=-1, eps)`` in three passes forward and two backward.

    torch computes ``Σ (a / max(‖a‖, eps)) (b / max(‖b‖, eps))`` with the clamps outside autograd (so the norms'
    gradients are the unclamped norms' ``a / ‖a‖``, zero where ``‖a‖ = 0``) in six passes over the rows and ten in its
    backward, each writing a full-size temporary (27 ms forward + backward for GraphMAE's ``[1354, 1433]`` Cora
    decoder output on one core). Here: the two norms and the row dot product forward, and the gradient
    ``∂a = g (b / (A B) − cos a / (A ‖a‖))`` (``A``, ``B`` the clamped norms) as one product and one fused
    multiply-add backward: the same function and gradient, summed in another order (equal to float rounding).
    """

    @staticmethod
    def forward(ctx, a: Tensor, b: Tensor, eps: float) -> Tensor:  # type: ignore[override]
        na, nb = torch.linalg.vector_norm(a, dim=-1), torch.linalg.vector_norm(b, dim=-1)
        ca, cb = na.clamp_min(eps), nb.clamp_min(eps)
        cos = torch.einsum("...c,...c->...", a, b) / (ca * cb)
        ctx.save_for_backward(a, b, na, nb, ca, cb, cos)
        return cos

    @staticmethod
    def backward(ctx, g: Tensor):  # type: ignore[override]
        a, b, na, nb, ca, cb, cos = ctx.saved_tensors
        both = g / (ca * cb)
        gc = g * cos
        ga = gb = None
        if ctx.needs_input_grad[0]:
            ga = b * both.unsqueeze(-1)
            ga.addcmul_(a, (gc / (ca * na)).masked_fill_(na == 0, 0.0).unsqueeze(-1), value=-1.0)
        if ctx.needs_input_grad[1]:
            gb = a * both.unsqueeze(-1)
            gb.addcmul_(b, (gc / (cb * nb)).masked_fill_(nb == 0, 0.0).unsqueeze(-1), value=-1.0)
        return ga, gb, None


def row_cosine(a: Tensor, b: Tensor, eps: float = 1e-8) -> Tensor:
    """``F.cosine_similarity(a, b, dim=-1, eps=eps)`` (same shapes, no broadcasting), fused (:class:`_RowCosine`).

    Shapes:
        a, b ``[*L, C]`` → ``[*L]``.
    """
    if a.shape != b.shape or a.dtype != b.dtype:
        return F.cosine_similarity(a, b, dim=-1, eps=eps)
    return _RowCosine.apply(a, b, eps)


def _same_shape(pred: Tensor, target: Tensor) -> None:
    if pred.shape != target.shape:
        raise UsageError(f"prediction {tuple(pred.shape)} and target {tuple(target.shape)} differ in shape")


def _flat_classes(logits: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    if logits.dim() < 1 or logits.shape[:-1] != target.shape:
        raise UsageError(f"logits {tuple(logits.shape)} must be target {tuple(target.shape)} plus a class dim")
    return logits.reshape(-1, logits.shape[-1]), target.reshape(-1)


def cross_entropy(
    logits: Tensor, target: Tensor, mask: Tensor | None = None, ignore_index: int = IGNORE_INDEX
) -> Tensor:
    """Cross-entropy over masked rows whose target is not ``ignore_index`` (Hugging Face's -100).

    With a mask: ``Σ_{mask, valid} CE / count`` (rows summed by ``torch.sum``, as MGVGA's
    ``masked_cross_entropy``).  Without: ``F.cross_entropy``'s own summation divided by the number of valid
    rows, bit-identical to ``F.cross_entropy(logits, target, ignore_index=...)`` (Point-BERT, CPCM) wherever
    that is not NaN.  The two agree up to rounding.

    Shapes:
        logits ``[*L, K]``, target ``[*L]`` int64, mask ``[*L]`` bool or ``None`` → scalar.
    """
    flat_logits, flat_target = _flat_classes(logits, target)
    valid = flat_target != ignore_index
    if mask is None:
        total = F.cross_entropy(flat_logits, flat_target, ignore_index=ignore_index, reduction="sum")
        return total / valid.sum().clamp(min=1)
    check_mask(mask, target.shape, "target")
    ce = F.cross_entropy(flat_logits, flat_target, ignore_index=ignore_index, reduction="none")
    return masked_mean(ce, mask.reshape(-1) & valid)


def masked_accuracy(
    logits: Tensor, target: Tensor, mask: Tensor | None = None, ignore_index: int = IGNORE_INDEX
) -> Tensor:
    """Detached share of counted rows whose argmax is the target, in ``logits``' dtype (0 for none counted).

    Shapes:
        logits ``[*L, K]``, target ``[*L]``, mask ``[*L]`` bool or ``None`` → scalar.
    """
    flat_logits, flat_target = _flat_classes(logits, target)
    counted = flat_target != ignore_index
    if mask is not None:
        check_mask(mask, target.shape, "target")
        counted = counted & mask.reshape(-1)
    hits = ((flat_logits.argmax(-1) == flat_target) & counted).sum() / counted.sum().clamp(min=1)
    return hits.detach().to(logits.dtype)


def huber(pred: Tensor, target: Tensor, mask: Tensor | None = None, delta: float = 1.0) -> Tensor:
    """Huber loss ``0.5 d² if |d| < delta else delta (|d| − 0.5 delta)`` (``F.huber_loss``), masked mean.

    Shapes:
        pred, target ``[*L, *R]``, mask ``[*L]`` → scalar.
    """
    _same_shape(pred, target)
    return masked_mean(F.huber_loss(pred, target, reduction="none", delta=delta), mask)


def smooth_l1(pred: Tensor, target: Tensor, mask: Tensor | None = None, beta: float = 1.0) -> Tensor:
    """Smooth L1 ``0.5 d² / beta if |d| < beta else |d| − 0.5 beta`` (``F.smooth_l1_loss``), masked mean.

    Shapes:
        pred, target ``[*L, *R]``, mask ``[*L]`` → scalar.
    """
    _same_shape(pred, target)
    return masked_mean(F.smooth_l1_loss(pred, target, reduction="none", beta=beta), mask)


def _maybe_normalized(target: Tensor, norm_target: bool, eps: float) -> Tensor:
    return normalize_patches(target, eps) if norm_target else target


def l1(
    pred: Tensor, target: Tensor, mask: Tensor | None = None, norm_target: bool = False, eps: float = 1e-6
) -> Tensor:
    """Mean absolute error over masked entries; ``norm_target`` normalises each target patch first (MAE).

    Shapes:
        pred, target ``[*L, *R]`` (patches along the last dim), mask ``[*L]`` → scalar.
    """
    _same_shape(pred, target)
    return masked_mean((pred - _maybe_normalized(target, norm_target, eps)).abs(), mask)


def l2(
    pred: Tensor, target: Tensor, mask: Tensor | None = None, norm_target: bool = False, eps: float = 1e-6
) -> Tensor:
    """Mean squared error over masked entries; ``norm_target`` normalises each target patch first (MAE).

    Per masked patch this is MAE's ``((pred − target)²).mean(-1)``, averaged over masked patches.

    Shapes:
        pred, target ``[*L, *R]`` (patches along the last dim), mask ``[*L]`` → scalar.
    """
    _same_shape(pred, target)
    return masked_mean((pred - _maybe_normalized(target, norm_target, eps)).pow(2), mask)


def cosine_error(pred: Tensor, target: Tensor, mask: Tensor | None = None, eps: float = 1e-8) -> Tensor:
    """Mean of ``1 − cos(pred, target)`` over masked rows (no clamp; MSM's cosine loss with ``eps=1e-6``).

    Shapes:
        pred, target ``[*L, C]``, mask ``[*L]`` → scalar.
    """
    _same_shape(pred, target)
    return masked_mean(1.0 - row_cosine(pred, target, eps), mask)


def scaled_cosine_error(
    pred: Tensor, target: Tensor, mask: Tensor | None = None, gamma: float = 2.0, eps: float = 1e-8
) -> Tensor:
    """GraphMAE's scaled cosine error: mean of ``max(1 − cos, 0)^gamma`` over masked rows.

    Shapes:
        pred, target ``[*L, C]``, mask ``[*L]`` → scalar.
    """
    _same_shape(pred, target)
    cos = row_cosine(pred, target, eps)
    return masked_mean((1.0 - cos).clamp(min=0.0).pow(gamma), mask)


def js_divergence(logits: Tensor, target: Tensor, eps: float = 1e-8) -> Tensor:
    """Jensen-Shannon divergence (natural log) of ``softmax(logits)`` and ``target`` probabilities, per row.

    ``JS(p, q) = ½ KL(p ‖ m) + ½ KL(q ‖ m)``, ``m = ½ (p + q)``, logs of values floored at ``eps``.

    Shapes:
        logits ``[*L, K]``, target ``[*L, K]`` (rows sum to 1) → ``[*L]`` in ``[0, ln 2]``.
    """
    _same_shape(logits, target)
    p = logits.softmax(-1)
    m = 0.5 * (p + target)
    log_m = m.clamp(min=eps).log()
    kl_p = (p * (p.clamp(min=eps).log() - log_m)).sum(-1)
    kl_q = (target * (target.clamp(min=eps).log() - log_m)).sum(-1)
    return 0.5 * (kl_p + kl_q)


def js_loss(logits: Tensor, target: Tensor, mask: Tensor | None = None, eps: float = 1e-8) -> Tensor:
    """Mean :func:`js_divergence` over masked rows (CPCM's consistency loss).

    Shapes:
        logits, target ``[*L, K]``, mask ``[*L]`` → scalar.
    """
    return masked_mean(js_divergence(logits, target, eps), mask)


def chamfer(pred: Tensor, target: Tensor, mask: Tensor | None = None, kind: str = "l2", eps: float = 1e-12) -> Tensor:
    """Chamfer distance per point set, mean over masked sets (each direction averaged separately).

    ``"l2"``: ``mean_sets(mean_x d(x, Y)) + mean_sets(mean_y d(y, X))`` with squared distances (Point-MAE);
    ``"l1"``: half the sum of the same with ``sqrt(max(d, eps))`` (Point-BERT).  Without a mask this is
    :func:`geomask.ops.chamfer.chamfer_distance` exactly.

    Shapes:
        pred ``[*L, N, D]``, target ``[*L, M, D]``, mask ``[*L]`` bool or ``None`` → scalar.
    """
    if kind not in CHAMFER_KINDS:
        raise UsageError(f"unknown Chamfer kind {kind!r}; valid: {', '.join(CHAMFER_KINDS)}")
    if pred.dim() < 3 or pred.shape[:-2] != target.shape[:-2] or pred.shape[-1] != target.shape[-1]:
        shapes = f"{tuple(pred.shape)} and {tuple(target.shape)}"
        raise UsageError(f"Chamfer needs point sets [*L, N, D] and [*L, M, D], got {shapes}")
    lead = pred.shape[:-2]
    if mask is not None:
        check_mask(mask, lead, "point sets")
        mask = mask.reshape(-1)
    dx, dy = nearest_sq_distances(pred.reshape(-1, *pred.shape[-2:]), target.reshape(-1, *target.shape[-2:]))
    if kind == "l2":
        return masked_mean(dx.mean(1), mask) + masked_mean(dy.mean(1), mask)
    return 0.5 * (
        masked_mean(dx.clamp(min=eps).sqrt().mean(1), mask) + masked_mean(dy.clamp(min=eps).sqrt().mean(1), mask)
    )
