"""Token-id targets (argmax of a tokenizer's logits, eval mode, no grad) and the target registry."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from geomask.errors import UsageError
from geomask.targets import (
    EMATeacher,
    NodeDegree,
    NormalizedPatches,
    TokenIds,
    available_targets,
    build_target,
    register_target,
)
from geomask.targets.registry import TARGETS


class Scorer(nn.Module):
    """Logits that depend on the mode: dropout adds 100 to class 0 in training mode."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(2, 3, bias=False)
        with torch.no_grad():
            self.proj.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, -1.0]]))
        self.calls: list[bool] = []

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        self.calls.append(self.training)
        out = self.proj(x)
        return out + 100.0 * torch.tensor([1.0, 0.0, 0.0]) if self.training else out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return -self.logits(x)


def test_token_ids_are_the_argmax_in_eval_mode_and_the_mode_is_restored():
    tok = Scorer().train()
    target = TokenIds(tok)
    x = torch.tensor([[[2.0, 1.0], [0.0, 3.0]], [[-2.0, -3.0], [1.0, 1.5]]])
    # eval logits per row: (x0, x1, -x0-x1) → argmax 0, 1, 2, 1
    ids = target(x)
    assert ids.dtype == torch.int64 and ids.shape == (2, 2)
    assert ids.tolist() == [[0, 1], [2, 1]]
    assert tok.calls == [False] and tok.training
    # calling the module: argmin of the same logits
    assert TokenIds(tok, method=None)(x).tolist() == [[2, 2], [1, 2]]


def test_token_ids_have_no_gradient_and_restore_mode_after_an_error():
    tok = Scorer().train()
    x = torch.ones(3, 2, requires_grad=True)
    assert not TokenIds(tok)(x).requires_grad
    with pytest.raises(RuntimeError):
        TokenIds(tok)(torch.ones(3, 5))  # wrong width
    assert tok.training
    with pytest.raises(UsageError, match="no method"):
        TokenIds(tok, method="encode")


def test_available_targets_lists_every_target_with_one_line():
    got = available_targets()
    names = {"node_attribute", "node_degree", "norm_pix", "layer_norm", "ema_teacher", "frozen_teacher", "tokens"}
    assert names <= set(got)
    assert all(line and "\n" not in line for line in got.values())


def test_build_target_from_config_and_objects():
    assert isinstance(build_target("norm_pix"), NormalizedPatches)
    assert build_target({"name": "node_degree", "direction": "out"}).direction == "out"
    net = nn.Linear(2, 2)
    t = build_target({"name": "ema_teacher", "momentum": 0.9, "schedule": "cosine", "total_steps": 4}, student=net)
    assert isinstance(t, EMATeacher) and t.momentum_at(4) == 1.0
    assert isinstance(build_target({"name": "tokens"}, tokenizer=Scorer()), TokenIds)
    assert isinstance(build_target({"name": "node_degree"}), NodeDegree)


def test_build_target_errors_list_the_valid_choices():
    with pytest.raises(UsageError) as e:
        build_target({"name": "ema"})
    assert "ema_teacher" in str(e.value) and "frozen_teacher" in str(e.value)
    with pytest.raises(UsageError) as e:
        build_target({"name": "ema_teacher", "decay": 0.9}, student=nn.Linear(1, 1))
    assert "'decay'" in str(e.value) and "momentum" in str(e.value) and "total_steps" in str(e.value)
    with pytest.raises(UsageError, match="student"):
        build_target({"name": "ema_teacher"})  # the student object is missing
    with pytest.raises(UsageError, match="both"):
        build_target({"name": "tokens", "tokenizer": 1}, tokenizer=Scorer())


def test_register_target():
    @register_target("test_double")
    class Double(nn.Module):
        """Twice the input (test only)."""

        def forward(self, x):
            return 2 * x

    try:
        assert available_targets()["test_double"] == "Twice the input (test only)."
        assert build_target("test_double")(torch.tensor([1.5])).item() == 3.0
    finally:
        TARGETS._entries.pop("test_double", None)
