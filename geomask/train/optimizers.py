"""The optimisers a config names (``optim.name``): :func:`build_optimizer`, and LAMB, which torch does not ship.

LAMB (You et al., "Large Batch Optimization for Deep Learning: Training BERT in 76 minutes", ICLR 2020).

Adam's bias-corrected moments with decoupled weight decay, then a per-tensor trust ratio:

.. math::
    u_t = \\frac{\\hat m_t}{\\sqrt{\\hat v_t} + \\epsilon} + \\lambda \\theta_{t-1},\\qquad
    \\theta_t = \\theta_{t-1} - \\eta \\, \\frac{\\lVert \\theta_{t-1} \\rVert}{\\lVert u_t \\rVert} \\, u_t

(the ratio is 1 when either norm is 0). Every tensor moves by ``η`` times its own norm per step, so weights that
feed a normalisation layer cannot drift far from their scale the way they do under AdamW's fixed-size steps:
SparK pretrains its CNNs with LAMB for this reason.

Adam and AdamW run torch's fused kernels (``fused=True``: one pass per tensor for the moments and the update, the
same math up to float rounding) where every parameter is a floating-point tensor on the CPU; torch's default CPU
path is a Python loop of six to eight kernels per tensor (3.3x slower a step on GraphMAE's 39 tensors).  On CUDA
torch's default (``foreach``) stays: a fused optimizer unscales gradients itself, which Lightning refuses together
with gradient clipping under 16-bit mixed precision.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor

__all__ = ["Lamb", "build_optimizer"]


class Lamb(torch.optim.Optimizer):
    """LAMB over ``params``.

    Args:
        params: tensors or parameter groups.
        lr: ``η``.
        betas: Adam's ``(β1, β2)``.
        eps: ``ε`` of the Adam denominator.
        weight_decay: ``λ``, decoupled (inside the trust-ratio update, as the paper).
    """

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-6,
        weight_decay: float = 0.0,
    ) -> None:
        if lr < 0 or eps < 0 or weight_decay < 0 or not all(0.0 <= b < 1.0 for b in betas):
            raise ValueError(f"invalid LAMB settings: lr {lr}, betas {betas}, eps {eps}, weight_decay {weight_decay}")
        super().__init__(params, {"lr": lr, "betas": tuple(betas), "eps": eps, "weight_decay": weight_decay})

    @torch.no_grad()
    def step(self, closure=None):  # type: ignore[override]
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            b1, b2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                if p.grad.is_sparse:
                    raise RuntimeError("LAMB does not support sparse gradients")
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(p)
                    state["exp_avg_sq"] = torch.zeros_like(p)
                state["step"] += 1
                t = state["step"]
                m, v = state["exp_avg"], state["exp_avg_sq"]
                m.lerp_(p.grad, 1 - b1)
                v.mul_(b2).addcmul_(p.grad, p.grad, value=1 - b2)
                update = (m / (1 - b1**t)) / ((v / (1 - b2**t)).sqrt_().add_(group["eps"]))
                if group["weight_decay"]:
                    update.add_(p, alpha=group["weight_decay"])
                w_norm, u_norm = p.norm(), update.norm()
                ratio = torch.where((w_norm > 0) & (u_norm > 0), w_norm / u_norm, torch.ones_like(w_norm))
                p.sub_(update * (group["lr"] * ratio))
        return loss


def _tensors(params: Tensor | Iterable[Tensor]) -> list[Tensor]:
    return [params] if isinstance(params, Tensor) else list(params)


_FUSED_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def _fusable(params: list) -> bool:
    """Every tensor (of plain parameters or of parameter groups) floating-point on the CPU."""
    tensors = [t for p in params for t in (p["params"] if isinstance(p, dict) else [p])]
    tensors = [t for t in tensors if isinstance(t, Tensor)]
    if not tensors:
        return False
    kinds = {t.device.type for t in tensors}
    return kinds == {"cpu"} and all(t.dtype in _FUSED_DTYPES for t in tensors)


def build_optimizer(
    name: str,
    params: Iterable[Tensor] | Iterable[dict],
    lr: float,
    betas: tuple[float, float] = (0.9, 0.999),
    weight_decay: float = 0.0,
) -> torch.optim.Optimizer:
    """``adamw`` / ``adam`` (torch's; fused where :func:`_fusable`), ``sgd`` (momentum ``betas[0]``) or ``lamb``
    (:class:`Lamb`)."""
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=betas[0], weight_decay=weight_decay)
    if name == "lamb":
        return Lamb(params, lr=lr, betas=betas, weight_decay=weight_decay)
    if name in ("adamw", "adam"):
        cls = torch.optim.AdamW if name == "adamw" else torch.optim.Adam
        params = [dict(p, params=_tensors(p["params"])) if isinstance(p, dict) else p for p in params]
        return cls(params, lr=lr, betas=betas, weight_decay=weight_decay, fused=_fusable(params) or None)
    raise ValueError(f"unknown optimiser {name!r}; valid: adamw, adam, sgd, lamb")
