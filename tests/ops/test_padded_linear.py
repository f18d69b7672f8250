"""``linear_padded`` equals ``F.linear`` in value and gradients, padded or not."""

import pytest
import torch
import torch.nn.functional as F

from geomask.ops.padded_linear import linear_padded


@pytest.mark.parametrize("out_features", [1433, 300, 512, 100])
def test_linear_padded_equals_linear(out_features):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(37, 2, 64, dtype=torch.float64, generator=g)
    w = torch.randn(out_features, 64, dtype=torch.float64, generator=g)
    up = torch.randn(37, 2, out_features, dtype=torch.float64, generator=g)
    results = []
    for fn in (linear_padded, F.linear):
        xi, wi = x.clone().requires_grad_(), w.clone().requires_grad_()
        out = fn(xi, wi)
        (out * up).sum().backward()
        results.append((out.detach(), xi.grad, wi.grad))
    for mine, ref in zip(*results):
        torch.testing.assert_close(mine, ref, rtol=1e-12, atol=1e-12)
    padded = out_features >= 256 and out_features % 16 != 0
    assert results[0][0].stride(-2) == (out_features + (-out_features % 16) if padded else out_features)
