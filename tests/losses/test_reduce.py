"""masked_mean: the sum over counted entries over their number; empty masks give 0 with a zero gradient."""

from __future__ import annotations

import pytest
import torch

from geomask.errors import UsageError
from geomask.losses import masked_mean


def test_row_mask_averages_the_entries_of_the_masked_rows():
    v = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0]])
    mask = torch.tensor([True, False, True])
    # rows 0 and 2: six entries
    assert masked_mean(v, mask).item() == pytest.approx((1 + 2 + 3 + 7 + 8 + 9) / 6)


def test_element_mask_and_none():
    v = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    assert masked_mean(v, torch.tensor([[True, False], [False, True]])).item() == pytest.approx((1 + 4) / 2)
    assert masked_mean(v).item() == pytest.approx(2.5)
    assert masked_mean(v, torch.ones(2, 2, dtype=torch.bool)).item() == pytest.approx(2.5)


def test_empty_mask_gives_zero_with_zero_gradient():
    v = torch.tensor([1.0, -2.0, 3.0], requires_grad=True)
    out = masked_mean(v, torch.zeros(3, dtype=torch.bool))
    assert out.item() == 0.0 and out.requires_grad
    out.backward()
    assert torch.equal(v.grad, torch.zeros(3))


def test_empty_tensor_without_mask_gives_zero():
    v = torch.zeros(0, 4, requires_grad=True)
    out = masked_mean(v)
    assert out.item() == 0.0
    out.backward()
    assert v.grad.shape == (0, 4)


def test_gradient_is_one_over_count_on_counted_entries():
    v = torch.randn(4, 2, requires_grad=True)
    mask = torch.tensor([False, True, True, False])
    masked_mean(v, mask).backward()
    expected = torch.tensor([[0.0, 0.0], [0.25, 0.25], [0.25, 0.25], [0.0, 0.0]])
    assert torch.allclose(v.grad, expected)


def test_nan_in_uncounted_entries_does_not_leak():
    v = torch.tensor([1.0, float("nan"), 3.0])
    assert masked_mean(v, torch.tensor([True, False, True])).item() == pytest.approx(2.0)


def test_bad_masks_are_usage_errors():
    v = torch.ones(3, 2)
    with pytest.raises(UsageError, match="bool"):
        masked_mean(v, torch.ones(3))
    with pytest.raises(UsageError, match="leading dims"):
        masked_mean(v, torch.ones(2, dtype=torch.bool))
