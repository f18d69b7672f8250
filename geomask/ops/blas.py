"""The BLAS that ``torch.mm`` uses, callable from compiled (numba) loops without the GIL.

A loop of many small products (sparse convolution: one per kernel offset and tile of a few hundred rows) pays
~2-3 µs of Python per ``torch.mm`` call, and the GIL is held for it, so two worker threads queue on each other. The
CPU torch wheels link MKL and export its Fortran ``sgemm_`` / ``dgemm_``: :func:`gemm_rows` calls them from numba
``nogil`` code, with the arguments ``torch.mm`` / ``addmm_`` pass for the same row-major operands (column-major
BLAS sees the transposed problem), so the results are the same bits as torch's own call (tested). Where the
symbols are missing (other builds), or ``GEOMASK_NO_BLAS_LOOPS`` is set to anything but the empty string,
:data:`AVAILABLE` is false and callers keep their ``torch.mm`` loop (the same bits, slower on two threads).
"""

from __future__ import annotations

import ctypes
import os

import numba
import numpy as np
import torch
from numba import types

__all__ = ["AVAILABLE", "gemm_rows", "gemm_t_rows"]


def _load() -> bool:
    path = os.path.join(os.path.dirname(torch.__file__), "lib", "libtorch_cpu.so")
    try:
        lib = ctypes.CDLL(path)
        if not (hasattr(lib, "sgemm_") and hasattr(lib, "dgemm_")):
            return False
        from llvmlite import binding

        binding.load_library_permanently(path)  # numba resolves the symbols by name (and its cache stays valid)
    except (OSError, RuntimeError):
        return False
    return True


AVAILABLE: bool = os.environ.get("GEOMASK_NO_BLAS_LOOPS", "") == "" and _load()

_GEMM_SIG = types.void(*([types.voidptr] * 13))  # transa, transb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc
_sgemm = types.ExternalFunction("sgemm_", _GEMM_SIG)
_dgemm = types.ExternalFunction("dgemm_", _GEMM_SIG)
_N, _T = 78, 84  # 'N', 'T'


@numba.njit(cache=True, nogil=True)
def _gemm(ta, tb, m, n, k, a, lda, b, ldb, beta, c, ldc):  # column-major C[m, n] = op(A) op(B) + beta C
    ip = np.empty(6, np.int32)
    ip[0], ip[1], ip[2], ip[3], ip[4], ip[5] = m, n, k, lda, ldb, ldc
    fp = np.empty(2, c.dtype)
    fp[0], fp[1] = 1.0, beta
    ch = np.empty(2, np.uint8)
    ch[0], ch[1] = ta, tb
    args = (ch.ctypes, ch[1:].ctypes, ip.ctypes, ip[1:].ctypes, ip[2:].ctypes, fp.ctypes)
    if c.itemsize == 4:
        _sgemm(*args, a.ctypes, ip[3:].ctypes, b.ctypes, ip[4:].ctypes, fp[1:].ctypes, c.ctypes, ip[5:].ctypes)
    else:
        _dgemm(*args, a.ctypes, ip[3:].ctypes, b.ctypes, ip[4:].ctypes, fp[1:].ctypes, c.ctypes, ip[5:].ctypes)


@numba.njit(cache=True, nogil=True)
def gemm_rows(x, n, w, w_t, out, beta):
    """``out[:n] = x[:n] @ W + beta * out[:n]``, ``W = w`` (``[K, M]``) or, with ``w_t``, ``W = wᵀ`` (``w`` is
    ``[M, K]``): the call ``torch.mm(x[:n], W, out=out[:n])`` makes. ``x`` ``[≥n, K]``, ``out`` ``[≥n, M]``, all
    C-contiguous, one dtype (float32 or float64)."""
    if n == 0:
        return
    k = x.shape[1]
    m = out.shape[1]
    if w_t:
        _gemm(_T, _N, m, n, k, w, k, x, k, beta, out, m)
    else:
        _gemm(_N, _N, m, n, k, w, m, x, k, beta, out, m)


@numba.njit(cache=True, nogil=True)
def gemm_t_rows(x, g, n, out):
    """``out += x[:n]ᵀ @ g[:n]``, the call ``out.addmm_(x[:n].t(), g[:n])`` makes. ``x`` ``[≥n, K]``, ``g``
    ``[≥n, M]``, ``out`` ``[K, M]``, C-contiguous, one dtype."""
    if n == 0:
        return
    k = x.shape[1]
    m = g.shape[1]
    _gemm(_N, _T, m, k, n, g, m, x, k, 1.0, out, m)
