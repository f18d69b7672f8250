"""Relational message passing: gather → per-relation linear transform → scatter-add.

The shared kernel under sparse convolution (one relation per kernel offset) and typed-edge graph layers
(one relation per edge type). Edges are kept grouped by relation (CSR over relations), so each non-empty
relation is gather → ``mm`` → scatter-add, and a relation whose edges are the identity (the centre offset of a
submanifold convolution) is one plain ``mm`` without gather or scatter.

The kernel (tiling, threads, the neighbour-table path, the backward) is :mod:`geomask.ops.relational_kernel`;
the index is :mod:`geomask.ops.relational_index`; aggregation by sum / mean / max / softmax over typed edges is
:mod:`geomask.ops.neighbor_aggregate`.

.. math::
    \\mathbf{y}_v = \\sum_{r} \\sum_{(u, v) \\in \\mathcal{E}_r} \\mathbf{x}_u \\mathbf{W}_r

Autograd goes through a custom :class:`torch.autograd.Function` that saves only the inputs and the index
(never the per-relation gathered buffers); backward re-gathers what it needs.
"""

from __future__ import annotations

import torch
from torch import Tensor

from geomask.ops.relational_index import RelationalIndex, relational_index
from geomask.ops.relational_kernel import _backward, _forward

__all__ = ["RelationalIndex", "relational_index", "relational_matmul", "relational_message_passing"]


class _RelationalMatmul(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, index: RelationalIndex) -> Tensor:  # type: ignore[override]
        ctx.index = index
        ctx.save_for_backward(x, weight)
        return _forward(x, weight, index)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out: Tensor):  # type: ignore[override]
        x, weight = ctx.saved_tensors
        grad_x, grad_w = _backward(
            x, weight, ctx.index, grad_out.contiguous(), ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        )
        return grad_x, grad_w, None


def relational_matmul(x: Tensor, weight: Tensor, index: RelationalIndex) -> Tensor:
    """``out[v] = Σ_r Σ_{(u→v) ∈ E_r} x[u] @ weight[r]`` over grouped edges.

    Args:
        x: source features.
        weight: one matrix per relation.
        index: the grouped edges (:class:`RelationalIndex`).

    Returns:
        Destination features; rows with no incoming edge are zero.

    Shapes:
        x: ``[N_src, C_in]``; weight: ``[R, C_in, C_out]``; returns ``[N_dst, C_out]``.
    """
    if x.dim() != 2 or x.size(0) != index.num_src:
        raise ValueError(f"x must be [{index.num_src}, C_in], got {tuple(x.shape)}")
    if weight.dim() != 3 or weight.size(0) != index.num_relations or weight.size(1) != x.size(1):
        raise ValueError(f"weight must be [{index.num_relations}, {x.size(1)}, C_out], got {tuple(weight.shape)}")
    x = x.contiguous()
    if torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad):
        return _RelationalMatmul.apply(x, weight, index)
    return _forward(x, weight, index)


def relational_message_passing(
    x: Tensor, weight: Tensor, edge_index: Tensor, edge_type: Tensor, num_dst: int | None = None
) -> Tensor:
    """Convenience form of :func:`relational_matmul` for PyG-style ``edge_index`` / ``edge_type``.

    Shapes:
        x: ``[N, C_in]``; weight: ``[R, C_in, C_out]``; edge_index: ``[2, E]``; edge_type: ``[E]``;
        returns ``[num_dst (default N), C_out]``.
    """
    index = relational_index(edge_index, edge_type, weight.size(0), x.size(0), num_dst)
    return relational_matmul(x, weight, index)
