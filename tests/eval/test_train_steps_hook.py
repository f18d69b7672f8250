"""The evaluations' own training loops call a method's step hook after every optimiser step, as the engine
does: EMA teachers (MSM) and schedules (CPCM) move there, never inside ``forward``."""

from __future__ import annotations

import torch
from torch import nn

from geomask.eval.scan_common import EvalConfig, train_steps
from geomask.points.augment import ScenePoints


class Counting(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.ones(3))
        self.hooked: list[int] = []
        self.weights_at_hook: list[float] = []

    def forward(self, batch: ScenePoints, generator: torch.Generator) -> dict[str, torch.Tensor]:
        return {"loss": (batch.feats @ self.w).square().mean()}

    def on_train_step_end(self, step: int) -> None:
        self.hooked.append(step)
        self.weights_at_hook.append(float(self.w.detach().sum()))


def test_scan_eval_loop_calls_the_step_hook_after_each_step():
    n = 50
    scene = ScenePoints(torch.rand(n, 3), torch.rand(n, 3), torch.zeros(n, dtype=torch.long))
    method = Counting()
    train_steps(method, [scene], EvalConfig(steps=4, crop_points=40), seed=0)
    assert method.hooked == [0, 1, 2, 3]
    assert method.weights_at_hook[0] < 3.0  # the hook ran after the optimiser moved the weights
