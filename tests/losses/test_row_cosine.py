"""The fused row cosine against ``F.cosine_similarity``: values and both gradients, degenerate rows included."""

import pytest
import torch
import torch.nn.functional as F

from geomask.losses.functional import row_cosine, scaled_cosine_error


def _rows(dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    a = torch.randn(7, 3, 33, generator=g, dtype=dtype)
    b = torch.rand(7, 3, 33, generator=g, dtype=dtype)
    a[0, 0] = 0.0  # a zero row: torch's norm gradient is zero there
    b[1, 1] = 0.0
    a[2, 2] *= 1e-12  # a row below eps: the clamped norm divides, the raw one is differentiated
    b[3, 0] = a[3, 0] * 2.5  # parallel rows: cos = 1
    return a, b


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_row_cosine_equals_torch_in_value_and_gradient(dtype):
    a, b = _rows(dtype)
    w = torch.randn(7, 3, dtype=dtype, generator=torch.Generator().manual_seed(1))
    grads = []
    for fn in (row_cosine, lambda x, y, eps: F.cosine_similarity(x, y, dim=-1, eps=eps)):
        x, y = a.clone().requires_grad_(), b.clone().requires_grad_()
        out = fn(x, y, 1e-8)
        (out * w).sum().backward()
        grads.append((out.detach(), x.grad, y.grad))
    tol = {"rtol": 1e-10, "atol": 1e-12} if dtype == torch.float64 else {"rtol": 1e-5, "atol": 1e-6}
    for mine, ref in zip(grads[0], grads[1]):
        torch.testing.assert_close(mine, ref, **tol)
    assert torch.isclose(grads[0][0][3, 0], torch.tensor(1.0, dtype=dtype))


def test_scaled_cosine_error_gradient_matches_the_unfused_formula():
    a, b = _rows(torch.float64)
    mask = torch.tensor([[1, 0, 1]] * 7, dtype=torch.bool)
    x = a.clone().requires_grad_()
    loss = scaled_cosine_error(x, b, mask, gamma=3.0)
    loss.backward()
    y = a.clone().requires_grad_()
    cos = F.cosine_similarity(y, b, dim=-1, eps=1e-8)
    ref = ((1 - cos).clamp(min=0).pow(3.0) * mask).sum() / mask.sum()
    ref.backward()
    torch.testing.assert_close(loss, ref, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(x.grad, y.grad, rtol=1e-10, atol=1e-12)


def test_row_cosine_falls_back_for_broadcast_shapes():
    a = torch.randn(4, 5)
    b = torch.randn(1, 5)
    torch.testing.assert_close(row_cosine(a, b), F.cosine_similarity(a, b, dim=-1))
