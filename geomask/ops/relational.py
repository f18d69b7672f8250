"""Relational message passing: gather → per-relation linear transform → scatter-add.

The shared kernel under sparse convolution (one relation per kernel offset) and typed-edge graph layers
(one relation per edge type). Edges are kept grouped by relation (CSR over relations), so the CPU fast path
is one ``index_select`` → ``mm`` → ``index_add_`` per non-empty relation, and a relation whose edges are the
identity (the centre offset of a submanifold convolution) is one plain ``mm`` without gather or scatter.

.. math::
    \\mathbf{y}_v = \\sum_{r} \\sum_{(u, v) \\in \\mathcal{E}_r} \\mathbf{x}_u \\mathbf{W}_r

Autograd goes through a custom :class:`torch.autograd.Function` that saves only the inputs and the index
(never the per-relation gathered buffers); backward re-gathers what it needs.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["RelationalIndex", "relational_index", "relational_matmul", "relational_message_passing"]


@dataclass(frozen=True, eq=False)
class RelationalIndex:
    """Typed edges grouped by relation: the edges of relation ``r`` are ``src[ptr[r]:ptr[r+1]]`` → ``dst[...]``.

    Args:
        src: source (gathered) row per edge, int64.
        dst: destination (accumulated) row per edge, int64.
        ptr: relation boundaries as Python ints, length ``R + 1`` (no device sync in the hot loop).
        num_src: number of source rows.
        num_dst: number of destination rows.
        identity: a relation whose edges are exactly ``u → u`` for every row (``num_src == num_dst``), stored
            with no edges and applied as one plain matmul; ``None`` when there is none.

    Shapes:
        src, dst: ``[E]``.
    """

    src: Tensor
    dst: Tensor
    ptr: tuple[int, ...]
    num_src: int
    num_dst: int
    identity: int | None = None

    @property
    def num_relations(self) -> int:
        return len(self.ptr) - 1

    @property
    def num_edges(self) -> int:
        """Edges including the implicit identity relation's ``num_src`` edges."""
        return int(self.ptr[-1]) + (self.num_src if self.identity is not None else 0)

    def transpose(self) -> RelationalIndex:
        """The same relations with every edge reversed (transposed convolution reuses a down-sampling map)."""
        return RelationalIndex(self.dst, self.src, self.ptr, self.num_dst, self.num_src, self.identity)

    def edges(self) -> tuple[Tensor, Tensor]:
        """Explicit ``(edge_index [2, E], edge_type [E])`` in PyG's source → target convention, identity included."""
        counts = torch.tensor([b - a for a, b in zip(self.ptr[:-1], self.ptr[1:])], dtype=torch.long)
        etype = torch.repeat_interleave(
            torch.arange(self.num_relations, device=self.src.device), counts.to(self.src.device)
        )
        src, dst = self.src, self.dst
        if self.identity is not None:
            ar = torch.arange(self.num_src, device=src.device)
            src, dst = torch.cat([src, ar]), torch.cat([dst, ar])
            etype = torch.cat([etype, torch.full_like(ar, self.identity)])
        return torch.stack([src, dst]), etype


def relational_index(
    edge_index: Tensor, edge_type: Tensor, num_relations: int, num_src: int, num_dst: int | None = None
) -> RelationalIndex:
    """Group typed edges by relation (a stable sort on ``edge_type``).

    Args:
        edge_index: ``[2, E]`` source → target.
        edge_type: ``[E]`` relation ids in ``[0, num_relations)``.
        num_relations: ``R``.
        num_src: number of source nodes; ``num_dst`` defaults to it.
    """
    if edge_index.dim() != 2 or edge_index.size(0) != 2:
        raise ValueError(f"edge_index must be [2, E], got {tuple(edge_index.shape)}")
    if edge_type.shape != edge_index.shape[1:]:
        raise ValueError(f"edge_type must be [E={edge_index.size(1)}], got {tuple(edge_type.shape)}")
    if edge_type.numel() and (int(edge_type.min()) < 0 or int(edge_type.max()) >= num_relations):
        raise ValueError(f"edge_type values must lie in [0, {num_relations})")
    order = torch.argsort(edge_type, stable=True)
    counts = torch.bincount(edge_type, minlength=num_relations).tolist()
    ptr = [0]
    for c in counts:
        ptr.append(ptr[-1] + int(c))
    ei = edge_index[:, order].long()
    return RelationalIndex(ei[0], ei[1], tuple(ptr), num_src, num_src if num_dst is None else num_dst)


def _forward(x: Tensor, weight: Tensor, index: RelationalIndex) -> Tensor:
    c_out = weight.size(-1)
    if index.identity is not None:
        out = torch.mm(x, weight[index.identity])
    else:
        out = x.new_zeros(index.num_dst, c_out)
    ptr = index.ptr
    for r in range(index.num_relations):
        a, b = ptr[r], ptr[r + 1]
        if a == b:
            continue
        msg = torch.mm(x.index_select(0, index.src[a:b]), weight[r])
        out.index_add_(0, index.dst[a:b], msg)
    return out


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
        index: RelationalIndex = ctx.index
        need_x, need_w = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        grad_out = grad_out.contiguous()
        grad_x = grad_w = None
        if need_w:
            grad_w = torch.zeros_like(weight)
            if index.identity is not None:
                grad_w[index.identity] = torch.mm(x.t(), grad_out)
        if need_x:
            if index.identity is not None:
                grad_x = torch.mm(grad_out, weight[index.identity].t())
            else:
                grad_x = x.new_zeros(x.shape)
        ptr = index.ptr
        for r in range(index.num_relations):
            a, b = ptr[r], ptr[r + 1]
            if a == b:
                continue
            g = grad_out.index_select(0, index.dst[a:b])
            src = index.src[a:b]
            if need_x:
                grad_x.index_add_(0, src, torch.mm(g, weight[r].t()))
            if need_w:
                grad_w[r] = torch.mm(x.index_select(0, src).t(), g)
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
