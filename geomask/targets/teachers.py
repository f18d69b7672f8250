"""Teacher networks whose outputs are targets: an EMA copy of the student, or a frozen pretrained network.

Contract shared by both: ``teacher(*inputs)`` runs the wrapped network under ``torch.no_grad()`` and returns
its output unchanged (so the shapes are the wrapped network's); the teacher's parameters never require
gradients.

**EMA teacher** (BYOL, MSM, iBOT, data2vec).  Built from the student by a deep copy.  After every optimiser
step the method calls ``teacher.update(student, step)`` from its step hook (``on_train_step_end(step)``),
**never inside** ``forward``, so a forward has no side effects::

    θ_teacher ← m(step) · θ_teacher + (1 − m(step)) · θ_student      (parameters; buffers are copied)

with the momentum schedule :func:`ema_momentum`: ``"constant"`` (``m = m0``) or ``"cosine"`` from ``m0`` at
step 0 to ``final`` (1) at ``total_steps`` (BYOL's ``1 − (1 − m0)(cos(π k / K) + 1) / 2``, iBOT's
``cosine_scheduler(m0, 1)``).  The teacher follows its parent's train/eval mode like any submodule (as MSM's
teacher does).

**Frozen teacher**.  A network loaded from a ``weights_only`` state dict (a path read with
``torch.load(..., weights_only=True)``, a Lightning checkpoint's ``state_dict``, or a mapping) and kept in
eval mode for good.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from geomask.errors import FormatError, MissingFileError, UsageError
from geomask.targets.registry import register_target

__all__ = ["EMATeacher", "FrozenTeacher", "MOMENTUM_SCHEDULES", "ema_momentum", "load_state_dict"]

MOMENTUM_SCHEDULES = ("constant", "cosine")


def ema_momentum(
    step: int, momentum: float, schedule: str = "constant", total_steps: int = 0, final: float = 1.0
) -> float:
    """The EMA momentum at ``step``.

    ``"constant"``: ``momentum``.  ``"cosine"``: ``final − (final − momentum) · (cos(π k / K) + 1) / 2`` with
    ``k = min(step, K)``, ``K = total_steps``: ``momentum`` at step 0, ``final`` from step ``K`` on (``final``
    for every step when ``K <= 0``).
    """
    if schedule not in MOMENTUM_SCHEDULES:
        raise UsageError(f"unknown momentum schedule {schedule!r}; valid: {', '.join(MOMENTUM_SCHEDULES)}")
    if schedule == "constant":
        return float(momentum)
    if total_steps <= 0:
        return float(final)
    k = min(max(int(step), 0), int(total_steps))
    return float(final - (final - momentum) * (math.cos(math.pi * k / total_steps) + 1.0) / 2.0)


@register_target("ema_teacher")
class EMATeacher(nn.Module):
    """EMA copy of a student network (deep copy, frozen, updated by ``update(student, step)`` in a step hook).

    Args:
        student: the network to copy (not kept: pass it to :meth:`update`).
        momentum: ``m0``, in ``[0, 1]``.
        schedule: ``"constant"`` or ``"cosine"`` (``m0`` → ``final`` over ``total_steps``).
        total_steps: ``K`` of the cosine schedule.
        final: the cosine schedule's end value (1 in BYOL, MSM, iBOT).

    Shapes:
        ``teacher(*inputs)`` → the student network's output for the same inputs, computed without gradient.
    """

    def __init__(
        self,
        student: nn.Module,
        momentum: float = 0.99,
        schedule: str = "constant",
        total_steps: int = 0,
        final: float = 1.0,
    ) -> None:
        super().__init__()
        if not isinstance(student, nn.Module):
            raise UsageError(f"an EMA teacher wraps an nn.Module, got {type(student).__name__}")
        if not (0.0 <= momentum <= 1.0 and 0.0 <= final <= 1.0):
            raise UsageError(f"EMA momentum and final must be in [0, 1], got {momentum} and {final}")
        if schedule not in MOMENTUM_SCHEDULES:
            raise UsageError(f"unknown momentum schedule {schedule!r}; valid: {', '.join(MOMENTUM_SCHEDULES)}")
        self.module = copy.deepcopy(student).requires_grad_(False)
        self.momentum, self.schedule = float(momentum), schedule
        self.total_steps, self.final = int(total_steps), float(final)

    def momentum_at(self, step: int) -> float:
        """:func:`ema_momentum` with this teacher's schedule."""
        return ema_momentum(step, self.momentum, self.schedule, self.total_steps, self.final)

    @torch.no_grad()
    def update(self, student: nn.Module, step: int) -> float:
        """``teacher ← m · teacher + (1 − m) · student`` (parameters), buffers copied; returns ``m``.

        Call it from the method's step hook after the optimiser step, never from ``forward``.
        """
        m = self.momentum_at(step)
        for t, s in zip(self.module.parameters(), student.parameters(), strict=True):
            t.lerp_(s.detach(), 1.0 - m)
        for t, s in zip(self.module.buffers(), student.buffers(), strict=True):
            t.copy_(s)
        return m

    def forward(self, *inputs: Any, **kwargs: Any) -> Any:
        with torch.no_grad():
            return self.module(*inputs, **kwargs)


def load_state_dict(source: Mapping[str, Tensor] | str | Path, prefix: str = "") -> dict[str, Tensor]:
    """A state dict from a mapping or a file read with ``torch.load(weights_only=True)``.

    A Lightning checkpoint's ``state_dict`` entry is unwrapped; with ``prefix`` only the keys starting with it
    are kept, the prefix removed (``"method.encoder."`` picks an encoder out of a method's checkpoint).

    Raises:
        FormatError: a missing or non-weights-only file, or anything but tensors under the keys.
    """
    path = None
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.is_file():
            raise MissingFileError(path, "checkpoint")
        try:
            obj: Any = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001 - torch raises several types for foreign or corrupt files
            raise FormatError(path, f"not a weights-only checkpoint ({type(e).__name__})") from None
    else:
        obj = source
    if isinstance(obj, Mapping) and isinstance(obj.get("state_dict"), Mapping):
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping):
        raise FormatError(path, f"holds no state dict (a {type(obj).__name__})")
    state = {k[len(prefix) :]: v for k, v in obj.items() if isinstance(k, str) and k.startswith(prefix)}
    if not state or not all(isinstance(v, Tensor) for v in state.values()):
        raise FormatError(path, f"holds no state dict of tensors under prefix {prefix!r}")
    return state


@register_target("frozen_teacher")
class FrozenTeacher(nn.Module):
    """A network with pretrained weights (weights_only state dict or file), frozen and always in eval mode.

    Args:
        module: the network; the weights are loaded into it in place.
        weights: a state dict, or a path to one (``torch.load(weights_only=True)``; Lightning ``.ckpt`` files
            are unwrapped).
        prefix: keep only the keys starting with it, prefix removed.
        strict: passed to ``load_state_dict``.

    Shapes:
        ``teacher(*inputs)`` → the network's output, computed without gradient in eval mode.
    """

    def __init__(
        self, module: nn.Module, weights: Mapping[str, Tensor] | str | Path, prefix: str = "", strict: bool = True
    ) -> None:
        super().__init__()
        if not isinstance(module, nn.Module):
            raise UsageError(f"a frozen teacher wraps an nn.Module, got {type(module).__name__}")
        state = load_state_dict(weights, prefix)
        try:
            module.load_state_dict(state, strict=strict)
        except RuntimeError as e:
            where = Path(weights) if isinstance(weights, (str, Path)) else None
            raise FormatError(where, " ".join(str(e).split())) from None
        self.module = module.requires_grad_(False).eval()

    def train(self, mode: bool = True) -> FrozenTeacher:
        """Sets ``self.training``; the wrapped network stays in eval mode."""
        super().train(mode)
        self.module.eval()
        return self

    def forward(self, *inputs: Any, **kwargs: Any) -> Any:
        with torch.no_grad():
            return self.module(*inputs, **kwargs)
