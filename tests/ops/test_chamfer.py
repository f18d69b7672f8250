"""Chamfer distance against a hand computation."""

from __future__ import annotations

import pytest
import torch

from geomask.ops.chamfer import chamfer_distance


def test_hand_computed():
    x = torch.tensor([[[0.0, 0.0, 0.0], [1.0, 0.0, 0.0]]])
    y = torch.tensor([[[0.0, 0.0, 0.0], [3.0, 0.0, 0.0], [0.0, 2.0, 0.0]]])
    # x→y nearest squared: 0, 1; y→x: 0, 4, 4
    assert chamfer_distance(x, y, "l2").item() == pytest.approx(0.5 + 8.0 / 3.0)
    assert chamfer_distance(x, y, "l1").item() == pytest.approx(0.5 * (0.5 + 4.0 / 3.0))


def test_batch_mean_symmetry_and_gradient():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(3, 10, 3, generator=g, requires_grad=True)
    y = torch.rand(3, 7, 3, generator=g)
    each = torch.stack([chamfer_distance(x[i : i + 1], y[i : i + 1]) for i in range(3)])
    assert chamfer_distance(x, y).item() == pytest.approx(each.mean().item())
    assert chamfer_distance(y, x).item() == pytest.approx(chamfer_distance(x, y).item())
    chamfer_distance(x, x.detach(), "l1").backward()  # zero distances: finite gradient
    assert torch.isfinite(x.grad).all()
    with pytest.raises(ValueError):
        chamfer_distance(x, y, "l3")
