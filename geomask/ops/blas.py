"""The BLAS that ``torch.mm`` uses, callable from compiled (numba) loops without the GIL.

A loop of many small products (sparse convolution: one per kernel offset and tile of a few hundred rows) pays
~2-3 µs of Python per ``torch.mm`` call, and the GIL is held for it, so two worker threads queue on each other. The
CPU torch wheels link MKL and export its Fortran ``sgemm_`` / ``dgemm_`` from ``libtorch_cpu``: :func:`gemm_rows`
calls them from numba ``nogil`` code, with the arguments ``torch.mm`` / ``addmm_`` pass for the same row-major
operands (column-major BLAS sees the transposed problem), so the results are the same bits as torch's own call
(tested). The functions' addresses travel as an argument (:data:`POINTERS`), so compiled code stays cacheable across
processes and nothing is added to the process's global symbol table. Where the symbols are missing (other builds), or
``GEOMASK_NO_BLAS_LOOPS`` is set to anything but the empty string, :data:`AVAILABLE` is false and callers keep their
``torch.mm`` loop (the same bits, slower on two threads).
"""

from __future__ import annotations

import ctypes
import os

import numba
import numpy as np
import torch
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

__all__ = ["AVAILABLE", "POINTERS", "gemm_rows", "gemm_t_rows"]


def _pointers() -> np.ndarray | None:
    """``[2]`` int64: the addresses of ``sgemm_`` and ``dgemm_`` in torch's own library, or None."""
    try:
        lib = ctypes.CDLL(os.path.join(os.path.dirname(torch.__file__), "lib", "libtorch_cpu.so"))
        found = [ctypes.cast(getattr(lib, name), ctypes.c_void_p).value for name in ("sgemm_", "dgemm_")]
    except (OSError, AttributeError):
        return None
    return np.asarray(found, dtype=np.int64)


_FOUND = None if os.environ.get("GEOMASK_NO_BLAS_LOOPS", "") else _pointers()
AVAILABLE: bool = _FOUND is not None
POINTERS: np.ndarray = _FOUND if _FOUND is not None else np.zeros(2, dtype=np.int64)
"""``[sgemm_, dgemm_]`` addresses (zeros when not :data:`AVAILABLE`): the first argument of the functions below."""

_N, _T = 78, 84  # 'N', 'T'


@intrinsic
def _call_gemm(typingctx, fn, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc):
    """Call the Fortran GEMM at address ``fn`` with 13 pointer arguments."""
    sig = types.void(types.int64, *([types.voidptr] * 13))

    def codegen(context, builder, signature, args):
        fnty = ir.FunctionType(ir.VoidType(), [ir.IntType(8).as_pointer()] * 13)
        builder.call(builder.inttoptr(args[0], fnty.as_pointer()), args[1:])
        return context.get_dummy_value()

    return sig, codegen


@numba.njit(cache=True, nogil=True)
def _gemm(ptrs, ta, tb, m, n, k, a, lda, b, ldb, beta, c, ldc):  # column-major C[m, n] = op(A) op(B) + beta C
    ip = np.empty(6, np.int32)
    ip[0], ip[1], ip[2], ip[3], ip[4], ip[5] = m, n, k, lda, ldb, ldc
    fp = np.empty(2, c.dtype)
    fp[0], fp[1] = 1.0, beta
    ch = np.empty(2, np.uint8)
    ch[0], ch[1] = ta, tb
    fn = ptrs[0] if c.itemsize == 4 else ptrs[1]
    _call_gemm(
        fn,
        ch.ctypes,
        ch[1:].ctypes,
        ip.ctypes,
        ip[1:].ctypes,
        ip[2:].ctypes,
        fp.ctypes,
        a.ctypes,
        ip[3:].ctypes,
        b.ctypes,
        ip[4:].ctypes,
        fp[1:].ctypes,
        c.ctypes,
        ip[5:].ctypes,
    )


@numba.njit(cache=True, nogil=True)
def gemm_rows(ptrs, x, n, w, w_t, out, beta):
    """``out[:n] = x[:n] @ W + beta * out[:n]``, ``W = w`` (``[K, M]``) or, with ``w_t``, ``W = wᵀ`` (``w`` is
    ``[M, K]``): the call ``torch.mm(x[:n], W, out=out[:n])`` makes. ``ptrs``: :data:`POINTERS`; ``x`` ``[≥n, K]``,
    ``out`` ``[≥n, M]``, all C-contiguous, one dtype (float32 or float64)."""
    if n == 0:
        return
    k = x.shape[1]
    m = out.shape[1]
    if w_t:
        _gemm(ptrs, _T, _N, m, n, k, w, k, x, k, beta, out, m)
    else:
        _gemm(ptrs, _N, _N, m, n, k, w, m, x, k, beta, out, m)


@numba.njit(cache=True, nogil=True)
def gemm_t_rows(ptrs, x, g, n, out):
    """``out += x[:n]ᵀ @ g[:n]``, the call ``out.addmm_(x[:n].t(), g[:n])`` makes. ``ptrs``: :data:`POINTERS`;
    ``x`` ``[≥n, K]``, ``g`` ``[≥n, M]``, ``out`` ``[K, M]``, C-contiguous, one dtype."""
    if n == 0:
        return
    k = x.shape[1]
    m = g.shape[1]
    _gemm(ptrs, _N, _T, m, k, n, g, m, x, k, 1.0, out, m)
