from __future__ import annotations

import pytest
import torch

from geomask.nn.dropout import dropout, dropout_mask


@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_drop_rate_scale_and_expectation(p):
    x = torch.ones(400, 257)  # an element count that is not a multiple of 4
    y = dropout(x, p, True, torch.Generator().manual_seed(0))
    dropped = (y == 0).float().mean().item()
    assert abs(dropped - p) < 4 * (p * (1 - p) / x.numel()) ** 0.5 + 1e-4
    kept = y[y != 0]
    torch.testing.assert_close(kept, torch.full_like(kept, 65536 / (65536 - round(p * 65536))))
    assert abs(y.mean().item() - 1.0) < 0.02


def test_masks_differ_across_elements_and_follow_the_generator():
    a = dropout_mask((64, 64), 0.5, torch.empty(0), torch.Generator().manual_seed(3))
    b = dropout_mask((64, 64), 0.5, torch.empty(0), torch.Generator().manual_seed(3))
    c = dropout_mask((64, 64), 0.5, torch.empty(0), torch.Generator().manual_seed(4))
    torch.testing.assert_close(a, b)
    assert not torch.equal(a, c)
    # no structure across the four int16 lanes of a random word: each lane drops about half
    lanes = (a.reshape(-1, 4) == 0).float().mean(0)
    assert bool(((lanes - 0.5).abs() < 0.05).all()), lanes


def test_eval_and_zero_probability_are_identity_and_gradients_flow():
    x = torch.randn(10, 3, requires_grad=True)
    assert dropout(x, 0.3, training=False) is x and dropout(x, 0.0) is x
    y = dropout(x, 0.3, True, torch.Generator().manual_seed(1))
    y.sum().backward()
    torch.testing.assert_close(x.grad, (y / x).detach().nan_to_num())
    with pytest.raises(ValueError, match="dropout probability"):
        dropout(x, 1.0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("grad", [True, False])
def test_compiled_pass_is_the_mask_product_bit_for_bit(dtype, grad):
    # dropout's one-pass CPU kernel against x * dropout_mask(...) from the same draws, forward and backward
    x = torch.randn(37, 11, dtype=dtype).t().requires_grad_(grad)  # non-contiguous input
    g = torch.randn(11, 37, dtype=dtype)
    torch.manual_seed(5)
    y = dropout(x, 0.2, True)
    torch.manual_seed(5)
    m = dropout_mask(x.shape, 0.2, x)
    assert torch.equal(y, x * m)
    assert 0 < int((y == 0).sum()) < y.numel() and y.shape == x.shape
    if grad:
        (gx,) = torch.autograd.grad(y, x, g)
        assert torch.equal(gx, g * m)


@pytest.mark.parametrize("p", [1e-5, 0.5, 0.99])
def test_fused_comparison_is_the_bool_mask_of_the_same_draws(p):
    """The CPU pass compares the int16 values itself: its drops are ``_drop_mask``'s from the same generator state
    (with and without autograd), and the backward pass multiplies by that same mask."""
    from geomask.nn.dropout import _drop_mask

    x = torch.randn(123, 45, dtype=torch.float64) + 5.0  # no zeros of its own
    drop = _drop_mask(x.shape, round(p * 65536), x.device, torch.Generator().manual_seed(7))
    y = dropout(x, p, True, torch.Generator().manual_seed(7))
    xg = x.clone().requires_grad_()
    yg = dropout(xg, p, True, torch.Generator().manual_seed(7))
    assert torch.equal(y == 0, drop) and torch.equal(yg.detach(), y)
    (gx,) = torch.autograd.grad(yg, xg, torch.ones_like(yg))
    assert torch.equal(gx == 0, drop)
