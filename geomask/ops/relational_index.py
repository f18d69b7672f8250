"""Typed edges grouped by relation (CSR over relations): the index every relational kernel reads.

:func:`relational_index` sorts PyG-style ``edge_index`` / ``edge_type`` by relation, then by destination (what the
CPU kernel tiles over); sparse convolution builds its kernel maps directly in this form
(:mod:`geomask.sparse.kernel_map`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

__all__ = ["RelationalIndex", "relational_index"]


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
    _tiles: dict = field(default_factory=dict, init=False, repr=False, compare=False)

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

    Edges are ordered by relation, then by destination.
        num_src: number of source nodes; ``num_dst`` defaults to it.
    """
    if edge_index.dim() != 2 or edge_index.size(0) != 2:
        raise ValueError(f"edge_index must be [2, E], got {tuple(edge_index.shape)}")
    if edge_type.shape != edge_index.shape[1:]:
        raise ValueError(f"edge_type must be [E={edge_index.size(1)}], got {tuple(edge_type.shape)}")
    if edge_type.numel() and (int(edge_type.min()) < 0 or int(edge_type.max()) >= num_relations):
        raise ValueError(f"edge_type values must lie in [0, {num_relations})")
    n_dst = num_src if num_dst is None else num_dst
    # grouped by relation, destinations ascending within each (what the CPU kernel tiles over)
    order = torch.argsort(edge_type.long() * max(n_dst, 1) + edge_index[1].long(), stable=True)
    counts = torch.bincount(edge_type, minlength=num_relations).tolist()
    ptr = [0]
    for c in counts:
        ptr.append(ptr[-1] + int(c))
    ei = edge_index[:, order].long()
    return RelationalIndex(ei[0], ei[1], tuple(ptr), num_src, n_dst)
