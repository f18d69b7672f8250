from __future__ import annotations

import pytest
import torch

from geomask.ops import blas

pytestmark = pytest.mark.skipif(not blas.AVAILABLE, reason="this torch build exports no sgemm_ / dgemm_")


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(("n", "k", "m"), [(1, 32, 64), (7, 3, 32), (513, 64, 48), (1500, 32, 32)])
def test_gemm_rows_has_the_bits_of_torch_mm(dtype, n, k, m):
    """The compiled call must give what ``torch.mm`` gives on the same rows, bit for bit (the sparse kernel's
    outputs must not depend on which path ran), for stored and transposed weights."""
    g = torch.Generator().manual_seed(n)
    x = torch.randn(n + 5, k, generator=g, dtype=dtype)  # rows past n must be left out
    w = torch.randn(k, m, generator=g, dtype=dtype)
    out = torch.full((n + 5, m), 7.0, dtype=dtype)
    blas.gemm_rows(blas.POINTERS, x.numpy(), n, w.numpy(), False, out.numpy(), 0.0)
    assert torch.equal(out[:n], torch.mm(x[:n], w))
    assert torch.equal(out[n:], torch.full((5, m), 7.0, dtype=dtype))  # untouched
    wt = w.t().contiguous()  # W = wtᵀ, as the backward passes the forward's weights
    blas.gemm_rows(blas.POINTERS, x.numpy(), n, wt.numpy(), True, out.numpy(), 0.0)
    assert torch.equal(out[:n], torch.mm(x[:n], wt.t()))
    before = out.clone()
    blas.gemm_rows(blas.POINTERS, x.numpy(), n, w.numpy(), False, out.numpy(), 1.0)  # accumulate
    torch.testing.assert_close(out[:n], before[:n] + x[:n] @ w)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("n", [0, 1, 300, 2048])
def test_gemm_t_rows_has_the_bits_of_addmm(dtype, n):
    g = torch.Generator().manual_seed(n)
    x = torch.randn(n + 3, 24, generator=g, dtype=dtype)
    grad = torch.randn(n + 3, 40, generator=g, dtype=dtype)
    acc = torch.randn(24, 40, generator=g, dtype=dtype)
    expected = acc.clone().addmm_(x[:n].t(), grad[:n])
    blas.gemm_t_rows(blas.POINTERS, x.numpy(), grad.numpy(), n, acc.numpy())
    assert torch.equal(acc, expected)


def test_nothing_is_added_to_the_global_symbols():
    """The BLAS is reached through its address: importing geomask must not make libtorch_cpu's symbols (MKL's
    ``sgemm_`` among them) global, where they would shadow another library's BLAS loaded later."""
    import subprocess
    import sys

    code = "import ctypes, geomask.ops.relational; ctypes.CDLL(None).sgemm_"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode != 0 and "undefined symbol: sgemm_" in run.stderr
