"""The LightningModule that trains any registered method.

A method is a :class:`~geomask.methods.base.Method` (or any ``nn.Module``) whose ``forward(batch, generator)``
returns a dict of named scalar losses with a ``"loss"`` key (the total) and changes no state.  This module
owns everything around it: the optimiser and schedule, logging, the randomness of each step, and the step
hook.

**Randomness.**  At every training step a fresh CPU ``torch.Generator`` is seeded from ``(seed, global_step,
rank)`` and handed to the method for its masks and augmentations (maskers draw on ``generator.device`` and
move the result, so a seed gives the same masks on any accelerator); a :class:`~geomask.methods.base.Method`
also seeds its dropout from that generator.  The global torch RNG is never reseeded: the step runs inside
:func:`~geomask.methods.base.seeded_rng` (a fork of the global RNG, restored afterwards) seeded from
``(seed, global_step, rank)`` as well, which covers methods outside the base that draw from the global RNG.
So a resumed run repeats an uninterrupted one step for step without storing any generator state.

**Step hook.**  ``method.on_train_step_end(step)`` (when the method has one) runs in :meth:`MethodModule.
optimizer_step`, right after the optimiser's step and before Lightning's ``on_train_batch_end`` callbacks, so
a checkpoint that :class:`~lightning.pytorch.callbacks.ModelCheckpoint` writes at the end of step ``k`` holds
the teacher, counters and schedules after that step's update: resuming from it is exact.  (The module's own
``on_train_batch_end`` would run *after* the callbacks and leave every periodic checkpoint one EMA update
behind.)  It runs once per optimiser step, ``step`` being the 0-based index of the step just taken.
"""

from __future__ import annotations

import math
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from torch import nn

from geomask.methods.base import seeded_rng
from geomask.train.config import OptimConfig
from geomask.train.optimizers import build_optimizer

__all__ = ["MethodModule", "step_seed"]

_VAL_STREAM = 1  # distinguishes validation generators from training ones


def step_seed(seed: int, step: int, rank: int, stream: int = 0) -> int:
    """A 63-bit seed mixed from ``(seed, step, rank, stream)`` by NumPy's ``SeedSequence``."""
    words = np.random.SeedSequence([int(seed) % (1 << 63), int(step), int(rank), int(stream)]).generate_state(2)
    return int((int(words[0]) << 32 | int(words[1])) & ((1 << 63) - 1))


def _num_graphs(batch: Any) -> int:
    """Samples in a batch, for the logged means: PyG's ``num_graphs``, a grid's ``batch_size``, a scene batch's
    ``num_scenes``, the first axis of a dense tensor (point clouds ``[B, N, 3]``), else 1."""
    if isinstance(batch, torch.Tensor):
        return int(batch.shape[0])
    for name in ("num_graphs", "batch_size", "num_scenes"):
        n = getattr(batch, name, None)
        if n is not None:
            return int(n)
    return 1


class MethodModule(pl.LightningModule):
    """Wraps a method for Lightning.

    Args:
        method: the method (``forward(batch, generator) -> dict`` with a ``"loss"`` key; optionally
            ``on_train_step_end(step)``).
        optim: the ``optim`` config section.
        max_steps: the run's length (the end of the learning-rate schedule unless ``optim.schedule_steps``).
        seed: the run's seed.
        hparams: the whole config as a plain dict, saved in checkpoints and logs (plain containers only, so
            checkpoints load with ``torch.load(..., weights_only=True)``).
    """

    def __init__(
        self, method: nn.Module, optim: OptimConfig, max_steps: int, seed: int, hparams: dict[str, Any]
    ) -> None:
        super().__init__()
        self.method = method
        self.optim_cfg = optim
        self.max_steps = int(max_steps)
        self.seed = int(seed)
        self.save_hyperparameters(hparams)
        self.validated_at: int | None = None  # the global step of the latest validation

    def forward(self, batch: Any, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        return self.method(batch, generator)

    def _generator(self, step: int, stream: int) -> torch.Generator:
        gen = torch.Generator()  # on the CPU, so a seed gives the same masks on every accelerator
        gen.manual_seed(step_seed(self.seed, step, self.global_rank, stream))
        return gen

    def _losses(self, batch: Any, gen: torch.Generator) -> dict[str, torch.Tensor]:
        losses = self.method(batch, gen)
        if not isinstance(losses, dict) or "loss" not in losses:
            raise TypeError(f"{type(self.method).__name__}.forward must return a dict with a 'loss' key")
        return losses

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        step = self.global_step
        with seeded_rng(step_seed(self.seed, step, self.global_rank, 2), self.device):
            losses = self._losses(batch, self._generator(step, 0))
        n = _num_graphs(batch)
        for name, value in losses.items():
            self.log(f"train/{name}", value.detach().float(), on_step=True, prog_bar=name == "loss", batch_size=n)
        return losses["loss"]

    def optimizer_step(self, epoch: int, batch_idx: int, optimizer: Any, optimizer_closure: Any = None) -> None:
        """The optimiser's step (whose closure runs :meth:`training_step` and the backward pass), then the
        method's ``on_train_step_end(step)`` without gradient tracking (see the module docstring)."""
        step = self.global_step  # the step being taken: training_step runs inside the closure below
        super().optimizer_step(epoch, batch_idx, optimizer, optimizer_closure)
        hook = getattr(self.method, "on_train_step_end", None)
        if callable(hook):
            with torch.no_grad():
                hook(step)

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        losses = self._losses(batch, self._generator(batch_idx, _VAL_STREAM))
        n = _num_graphs(batch)
        for name, value in losses.items():
            self.log(f"val/{name}", value.detach().float(), on_epoch=True, batch_size=n, sync_dist=True)

    def on_validation_epoch_end(self) -> None:
        self.validated_at = self.global_step

    def configure_optimizers(self) -> Any:
        o = self.optim_cfg
        params = [p for p in self.method.parameters() if p.requires_grad]
        opt = build_optimizer(o.name, params, o.lr, tuple(o.betas), o.weight_decay)
        if o.scheduler == "none" and o.warmup_steps == 0:
            return opt
        warmup, total, floor = o.warmup_steps, o.schedule_steps or self.max_steps, o.min_lr / o.lr

        def factor(step: int) -> float:
            if step < warmup:
                return (step + 1) / warmup
            if o.scheduler == "none":
                return 1.0
            t = min(1.0, (step - warmup) / max(1, total - warmup))
            decay = 0.5 * (1.0 + math.cos(math.pi * t)) if o.scheduler == "cosine" else 1.0 - t
            return floor + (1.0 - floor) * decay

        sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
