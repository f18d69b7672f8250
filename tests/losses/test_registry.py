"""build_loss / register_loss / available_losses: names, keywords, errors listing the valid choices."""

from __future__ import annotations

import math

import pytest
import torch

from geomask.errors import UsageError
from geomask.losses import Loss, ScaledCosineError, available_losses, build_loss, register_loss
from geomask.losses.modules import LOSSES

EXPECTED = {"cross_entropy", "huber", "smooth_l1", "l1", "l2", "chamfer_l1", "chamfer_l2", "cosine", "sce", "js"}


def test_available_losses_lists_every_loss_with_one_line():
    got = available_losses()
    assert EXPECTED <= set(got)
    for name, line in got.items():
        assert line and "\n" not in line, name


def test_build_loss_passes_keywords():
    sce = build_loss({"name": "sce", "gamma": 3})
    assert isinstance(sce, ScaledCosineError) and sce.gamma == 3.0
    pred = torch.tensor([[1.0, 0.0]])
    target = torch.tensor([[0.0, 1.0]])  # cos = 0
    assert sce(pred, target).item() == pytest.approx(1.0)
    cos = build_loss({"name": "cosine"})
    target2 = torch.tensor([[1.0, 1.0]])  # cos = 1/sqrt(2)
    assert cos(pred, target2).item() == pytest.approx(1 - 1 / math.sqrt(2))
    assert build_loss("huber").delta == 1.0


def test_every_registered_loss_builds_and_runs_on_its_inputs():
    g = torch.Generator().manual_seed(0)
    inputs = {
        "cross_entropy": (torch.randn(4, 3, generator=g), torch.tensor([0, 2, 1, -100])),
        "js": (torch.randn(4, 3, generator=g), torch.softmax(torch.randn(4, 3, generator=g), -1)),
        "chamfer_l1": (torch.randn(4, 5, 3, generator=g), torch.randn(4, 6, 3, generator=g)),
        "chamfer_l2": (torch.randn(4, 5, 3, generator=g), torch.randn(4, 6, 3, generator=g)),
    }
    for name in EXPECTED:
        pred, target = inputs.get(name, (torch.randn(4, 3, generator=g), torch.randn(4, 3, generator=g)))
        pred = pred.clone().requires_grad_()
        loss = build_loss({"name": name})
        assert isinstance(loss, Loss)
        for mask in (None, torch.tensor([True, False, True, True]), torch.zeros(4, dtype=torch.bool)):
            out = loss(pred, target, mask)
            assert out.dim() == 0 and torch.isfinite(out), name
        assert loss(pred, target, torch.zeros(4, dtype=torch.bool)).item() == 0.0


def test_unknown_name_lists_the_valid_ones():
    with pytest.raises(UsageError) as e:
        build_loss({"name": "chamfer"})
    assert "chamfer_l1" in str(e.value) and "sce" in str(e.value)


def test_unknown_keyword_lists_the_valid_ones():
    with pytest.raises(UsageError) as e:
        build_loss({"name": "sce", "gama": 3})
    assert "'gama'" in str(e.value) and "gamma" in str(e.value) and "eps" in str(e.value)


@pytest.mark.parametrize("spec", [{"gamma": 3}, 7, {"name": 3}])
def test_spec_without_a_name_is_a_usage_error(spec):
    with pytest.raises(UsageError, match="name"):
        build_loss(spec)


@pytest.mark.parametrize("spec", [{"name": "huber", "delta": 0}, {"name": "sce", "gamma": -1}])
def test_bad_values_are_usage_errors(spec):
    with pytest.raises(UsageError, match="> 0"):
        build_loss(spec)


def test_register_loss_adds_a_buildable_loss_and_refuses_a_second_owner():
    @register_loss("test_sum", "sum of masked predictions (test only)")
    class SumLoss(Loss):
        def __init__(self, scale: float = 1.0) -> None:
            super().__init__()
            self.scale = scale

        def forward(self, pred, target, mask=None):
            return self.scale * pred[mask].sum()

    try:
        assert available_losses()["test_sum"] == "sum of masked predictions (test only)"
        loss = build_loss({"name": "test_sum", "scale": 2.0})
        assert loss(torch.tensor([1.0, 2.0, 4.0]), None, torch.tensor([True, False, True])).item() == 10.0
        register_loss("test_sum")(SumLoss)  # the same object again: allowed
        with pytest.raises(ValueError, match="already registered"):
            register_loss("test_sum")(ScaledCosineError)
    finally:
        LOSSES._entries.pop("test_sum", None)
