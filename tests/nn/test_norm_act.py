"""Fused BatchNorm + PReLU and the PReLU with a fast backward: equal to the plain modules (values, gradients,
running statistics), gradcheck in float64, and the fallbacks."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from geomask.nn.norm_act import batch_norm_prelu, norm_prelu, prelu


def _modules(c, seed=0):
    torch.manual_seed(seed)
    bn, act = nn.BatchNorm1d(c).double(), nn.PReLU().double()
    with torch.no_grad():
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.uniform_(-0.5, 0.5)
        bn.running_mean.uniform_(-1, 1)
        act.weight.fill_(0.3)
    return bn, act


@pytest.mark.parametrize("c", [3, 37])
def test_fused_equals_modules(c):
    bn, act = _modules(c)
    bn2, act2 = copy.deepcopy(bn), copy.deepcopy(act)
    x = (torch.randn(50, c, dtype=torch.float64) * 2 + 0.5).requires_grad_()
    g = torch.randn(50, c, dtype=torch.float64)
    y = batch_norm_prelu(x, bn, act)
    (gx, gw, gb, ga) = torch.autograd.grad(y, (x, bn.weight, bn.bias, act.weight), g)
    y2 = act2(bn2(x))
    (gx2, gw2, gb2, ga2) = torch.autograd.grad(y2, (x, bn2.weight, bn2.bias, act2.weight), g)
    for a, b in ((y, y2), (gx, gx2), (gw, gw2), (gb, gb2), (ga, ga2)):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(bn.running_mean, bn2.running_mean, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(bn.running_var, bn2.running_var, rtol=1e-12, atol=1e-12)
    assert int(bn.num_batches_tracked) == int(bn2.num_batches_tracked) == 1


def test_fused_float32_close_to_float64():
    bn, act = _modules(64)
    x = torch.randn(300, 64, dtype=torch.float64) * 3 + 1
    ref = act(bn(x))
    bn32, act32 = copy.deepcopy(bn).float(), copy.deepcopy(act).float()
    bn32.train()
    out = batch_norm_prelu(x.float(), bn32, act32)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out.double(), ref, rtol=1e-5, atol=1e-5)


def test_fused_gradcheck():
    bn, act = _modules(4)
    x = torch.randn(9, 4, dtype=torch.float64, requires_grad=True)
    w, b, a = (p.detach().clone().requires_grad_() for p in (bn.weight, bn.bias, act.weight))
    from geomask.nn.norm_act import _BatchNormPReLU

    assert torch.autograd.gradcheck(lambda x, w, b, a: _BatchNormPReLU.apply(x, w, b, a, 1e-5, None)[0], (x, w, b, a))
    pre = torch.randn(4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda x, w, b, a, pre: _BatchNormPReLU.apply(x, w, b, a, 1e-5, pre)[0], (x, w, b, a, pre)
    )


@pytest.mark.parametrize("train", [True, False])
def test_bias_before_the_norm_equals_adding_it(train):
    """``norm_prelu(x, bn, act, bias)`` is ``act(bn(x + bias))``: values, every gradient (the bias's: Σ ∂x, zero
    but for rounding in training) and the running statistics (the mean moves by the bias)."""
    bn, act = _modules(6)
    bn.train(train)
    bn2, act2 = copy.deepcopy(bn), copy.deepcopy(act)
    x = (torch.randn(40, 6, dtype=torch.float64) * 2).requires_grad_()
    bias = (torch.randn(6, dtype=torch.float64) * 3).requires_grad_()
    g = torch.randn(40, 6, dtype=torch.float64)
    y = norm_prelu(x, bn, act, bias)
    y2 = act2(bn2(x + bias))
    torch.testing.assert_close(y, y2, rtol=1e-10, atol=1e-10)
    grads = torch.autograd.grad(y, (x, bias, bn.weight, act.weight), g)
    grads2 = torch.autograd.grad(y2, (x, bias, bn2.weight, act2.weight), g)
    for a, b in zip(grads, grads2):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-10)
    assert (grads[1].abs().max() < 1e-10) == train  # in training the norm removes any shift
    torch.testing.assert_close(bn.running_mean, bn2.running_mean, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(bn.running_var, bn2.running_var, rtol=1e-12, atol=1e-12)


def test_norm_prelu_falls_back_to_the_modules():
    bn, act = _modules(5)
    x = torch.randn(20, 5, dtype=torch.float64)
    bn.eval()  # running statistics: the plain modules
    torch.testing.assert_close(norm_prelu(x, bn, act), act(bn(x)))
    ln = nn.LayerNorm(5).double()
    torch.testing.assert_close(norm_prelu(x, ln, act), act(ln(x)))
    relu = nn.ReLU()
    torch.testing.assert_close(norm_prelu(x, nn.Identity(), relu), relu(x))
    bn.train()
    with pytest.raises(ValueError):  # one row: BatchNorm's own error, not a silent NaN
        norm_prelu(x[:1], bn, act)


def test_prelu_matches_torch():
    x = torch.randn(40, 7, dtype=torch.float64, requires_grad=True)
    a = torch.tensor([0.2], dtype=torch.float64, requires_grad=True)
    g = torch.randn(40, 7, dtype=torch.float64)
    y = prelu(x, a)
    ref = F.prelu(x, a)
    torch.testing.assert_close(y, ref)
    for p, q in zip(torch.autograd.grad(y, (x, a), g), torch.autograd.grad(ref, (x, a), g)):
        torch.testing.assert_close(p, q)
    assert torch.autograd.gradcheck(prelu, (x, a))
