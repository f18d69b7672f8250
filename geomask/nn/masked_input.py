"""A masked-feature input and the first linear layer over it, computed row by row instead of densely.

GraphMAE corrupts the node features ``x [N, F]`` before the encoder: the masked rows become one learnable ``[MASK]``
vector, a few of them another node's row instead. :class:`MaskedInput` holds that input without building it
(``x``, the token, which rows are the token, and which row of ``x`` every other row copies), and
:func:`masked_linear` computes ``F.linear(dropout(input, p), W)`` from it: the token rows as one dense product (the
only rows whose input gradient is needed: it flows to the token), the data rows from their non-zero entries only
(bag-of-words features are ~1 % non-zero: Cora's first layer, 2,708 × 1,433 → 512, spent 53 ms of a 202 ms epoch in
three dense products). The dropout mask is :func:`geomask.nn.dropout.dropout`'s, drawn the same way from the same
generator, so the result equals the dense path's to float rounding (the data rows sum their products in another
order).
"""

from __future__ import annotations

from typing import NamedTuple

import numba
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from geomask.nn.dropout import _values
from geomask.ops.threads import share

__all__ = ["MaskedInput", "masked_linear", "masked_linear_applies"]


class MaskedInput(NamedTuple):
    """Row ``i`` is ``token`` where ``token_rows[i]``, else ``x[src[i]]``.

    Shapes:
        x ``[N, F]``; token ``[F]``; token_rows ``[N]`` bool; src ``[N]`` int64.
    """

    x: Tensor
    token: Tensor
    token_rows: Tensor
    src: Tensor

    def dense(self) -> Tensor:
        """The input as one ``[N, F]`` tensor."""
        rows = self.x.index_select(0, self.src)
        return torch.where(self.token_rows.unsqueeze(1), self.token.to(rows.dtype), rows)


@numba.njit(cache=True, nogil=True)
def _rows_forward(x, src, values, lo, scale, wt, out, c0, c1):  # out[j, c0:c1] = Σ_k kept x[src[j], k] scale wt[k]
    use_values = values.shape[0] > 0
    for j in range(src.shape[0]):
        acc = out[j, c0:c1]
        acc[:] = 0.0
        xs = x[src[j]]
        for k in range(xs.shape[0]):
            v = xs[k]
            if v != 0 and not (use_values and values[j, k] < lo):
                v = v * scale
                w = wt[k, c0:c1]
                for c in range(acc.shape[0]):
                    acc[c] += v * w[c]


@numba.njit(cache=True, nogil=True)
def _rows_weight_grad(x, src, values, lo, scale, g, gwt, c0, c1):  # gwt[k, c0:c1] += Σ_j kept x[src[j], k] scale g[j]
    use_values = values.shape[0] > 0
    for j in range(src.shape[0]):
        xs, gj = x[src[j]], g[j, c0:c1]
        for k in range(xs.shape[0]):
            v = xs[k]
            if v != 0 and not (use_values and values[j, k] < lo):
                v = v * scale
                row = gwt[k, c0:c1]
                for c in range(row.shape[0]):
                    row[c] += v * gj[c]


def _by_columns(kernel, args: tuple, width: int) -> None:
    """``kernel(*args, c0, c1)`` over one block of output columns per intra-op thread (each block scans every row's
    entries once); each output element is written by one block, in the serial order, so the result is the same bits
    for any thread count."""
    workers = max(1, min(torch.get_num_threads(), width // 64))
    step = -(-width // workers)
    step += -step % 16  # whole 64-byte lines per block
    blocks = list(range(0, width, step))

    def run(items) -> None:
        for c0 in items:
            kernel(*args, c0, min(c0 + step, width))

    share(run, blocks, len(blocks))


@numba.njit(cache=True, nogil=True)
def _token_rows(token, values, lo, scale, keep, rows):  # keep = scale where values >= lo else 0; rows = token keep
    for j in range(keep.shape[0]):
        for k in range(keep.shape[1]):
            if values[j, k] < lo:
                keep[j, k] = 0.0
                rows[j, k] = 0.0
            else:
                keep[j, k] = scale
                rows[j, k] = token[k] * scale


class _TokenRowsLinear(torch.autograd.Function):
    """``F.linear(dropout(token expanded to m rows), weight)``, differentiable in ``token`` and ``weight``.

    With ``K [m, F]`` the scaled keep mask (``scale`` or 0) the rows are ``K diag(token)``, so both gradients come
    from one product ``A = Kᵀ G`` (``[F, O]``): ``∂W = (A diag(token))ᵀ`` and ``∂token = rowsum(A ⊙ Wᵀ)`` — one
    product where autograd's dense path takes two, both with the (slow, odd) input width as their output width.
    """

    @staticmethod
    def forward(ctx, token: Tensor, weight: Tensor, values: Tensor, lo: int, scale: float) -> Tensor:  # type: ignore[override]
        m, f = values.shape
        keep = token.new_empty(m, f)
        rows = token.new_empty(m, f)
        tn = token.detach().contiguous().numpy()
        _token_rows(tn, values.numpy(), lo, tn.dtype.type(scale), keep.numpy(), rows.numpy())
        ctx.save_for_backward(token, weight, keep)
        return F.linear(rows, weight.detach())

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        token, weight, keep = ctx.saved_tensors
        a = keep.t().mm(grad)  # [F, O]
        grad_token = (a * weight.detach().t()).sum(1) if ctx.needs_input_grad[0] else None
        grad_weight = (a * token.detach().unsqueeze(1)).t() if ctx.needs_input_grad[1] else None
        return grad_token, grad_weight, None, None, None


class _DataRowsLinear(torch.autograd.Function):
    """``F.linear(dropout(x[src]), weight)`` from the non-zero entries; differentiable in ``weight`` only."""

    @staticmethod
    def forward(ctx, weight: Tensor, x: Tensor, src: Tensor, values: Tensor, lo: int, scale: float) -> Tensor:  # type: ignore[override]
        wt = weight.detach().t().contiguous()
        out = x.new_empty(src.shape[0], weight.shape[0])
        xn = x.detach().contiguous().numpy()
        sc = xn.dtype.type(scale)
        _by_columns(_rows_forward, (xn, src.numpy(), values.numpy(), lo, sc, wt.numpy(), out.numpy()), out.shape[1])
        ctx.save_for_backward(x, src, values)
        ctx.lo, ctx.scale = lo, scale
        return out

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        x, src, values = ctx.saved_tensors
        xn = x.detach().contiguous().numpy()
        gwt = np.zeros((xn.shape[1], grad.shape[1]), dtype=xn.dtype)
        sc = xn.dtype.type(ctx.scale)
        args = (xn, src.numpy(), values.numpy(), ctx.lo, sc, grad.contiguous().numpy(), gwt)
        _by_columns(_rows_weight_grad, args, gwt.shape[1])
        return torch.from_numpy(gwt).t(), None, None, None, None, None


def masked_linear(inp: MaskedInput, weight: Tensor, p: float, training: bool) -> Tensor:
    """``F.linear(dropout(inp.dense(), p, training), weight)`` (no bias), the data rows from their non-zero entries.

    The dropout draws the same random values as :func:`geomask.nn.dropout.dropout` on the dense ``[N, F]`` input
    would (the default generator), so the two agree to float rounding. CPU float32 / float64 only.

    Shapes:
        weight ``[O, F]`` → ``[N, O]``.
    """
    x = inp.x
    n, f = x.shape
    values = None
    cut, scale = 0, 1.0
    if training and p > 0.0:
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout probability must be in [0, 1), got {p}")
        cut = round(p * 65536)
        scale = 65536.0 / (65536 - cut)
        values = _values((n, f), x.device).view(n, f)
    token_idx = inp.token_rows.nonzero().squeeze(1)
    data_idx = (~inp.token_rows).nonzero().squeeze(1)
    token = inp.token.to(x.dtype)
    if values is not None:
        out_tok = _TokenRowsLinear.apply(token, weight, values.index_select(0, token_idx), cut - 32768, scale)
    else:
        out_tok = F.linear(token.expand(len(token_idx), f), weight)
    empty = torch.zeros(0, 0, dtype=torch.int16)
    data_values = values.index_select(0, data_idx) if values is not None else empty
    out_data = _DataRowsLinear.apply(weight, x, inp.src.index_select(0, data_idx), data_values, cut - 32768, scale)
    out = out_tok.new_empty(n, weight.shape[0])
    return out.index_copy(0, token_idx, out_tok).index_copy(0, data_idx, out_data)


def masked_linear_applies(inp: MaskedInput, weight: Tensor) -> bool:
    """Whether :func:`masked_linear` runs for this input and weight (CPU, float32 / float64, one dtype)."""
    x = inp.x
    return (
        x.device.type == "cpu"
        and x.dim() == 2
        and x.dtype in (torch.float32, torch.float64)
        and weight.dtype == x.dtype
        and weight.device.type == "cpu"
    )
