"""Relational message passing: gather → per-relation linear transform → scatter-add.

The shared kernel under sparse convolution (one relation per kernel offset) and typed-edge graph layers
(one relation per edge type). Edges are kept grouped by relation (CSR over relations), so each non-empty
relation is gather → ``mm`` → scatter-add, and a relation whose edges are the identity (the centre offset of a
submanifold convolution) is one plain ``mm`` without gather or scatter.

On CPU (float32 / float64) the work is tiled over destination rows: when every relation's destinations are
sorted (kernel maps of sorted sites, and :func:`relational_index` sorts them), the edges of one block of
destination rows and one relation form a contiguous range, so the loop runs tile by tile, relation by relation,
and the rows it reads and writes (neighbours of a block of sites are near it in key order) stay in cache
instead of sweeping the whole feature matrix once per relation. Rows are gathered and scattered by compiled
loops (numba; serial, so repeated destinations are summed correctly) through preallocated buffers, the matrix
product is ``torch.mm(out=...)``. Unsorted destinations fall back to chunks of each relation's range in order.
Elsewhere (GPU, half precision) it is ``index_select`` → ``mm`` → ``index_add_`` per relation.

.. math::
    \\mathbf{y}_v = \\sum_{r} \\sum_{(u, v) \\in \\mathcal{E}_r} \\mathbf{x}_u \\mathbf{W}_r

Autograd goes through a custom :class:`torch.autograd.Function` that saves only the inputs and the index
(never the per-relation gathered buffers); backward re-gathers what it needs.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numba
import numpy as np
import torch
from torch import Tensor

from geomask.ops.threads import single_thread

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


@numba.njit(cache=True, nogil=True, fastmath=True)
def _gather_rows(x, idx, a, b, out):  # out[e - a] = x[idx[e]] for e in [a, b)
    c = x.shape[1]
    for e in range(a, b):
        s = idx[e]
        for k in range(c):
            out[e - a, k] = x[s, k]


@numba.njit(cache=True, nogil=True, fastmath=True)
def _scatter_add_rows(out, idx, a, b, rows):  # out[idx[e]] += rows[e - a] for e in [a, b), in order
    c = out.shape[1]
    for e in range(a, b):
        d = idx[e]
        for k in range(c):
            out[d, k] += rows[e - a, k]


@numba.njit(cache=True, nogil=True)
def _tile_bounds(dst, ptr, rows, num_dst):
    """``bounds [R, T + 1]``: relation ``r``'s edges into destination rows ``[t * rows, (t + 1) * rows)`` are
    ``[bounds[r, t], bounds[r, t + 1])``; ``ok`` false when some relation's destinations are not ascending."""
    num_rel = ptr.shape[0] - 1
    num_tiles = max(1, (num_dst + rows - 1) // rows)
    bounds = np.empty((num_rel, num_tiles + 1), dtype=np.int64)
    for r in range(num_rel):
        a, b = ptr[r], ptr[r + 1]
        for e in range(a + 1, b):
            if dst[e] < dst[e - 1]:
                return bounds, False
        e = a
        for t in range(num_tiles):
            limit = t * rows
            while e < b and dst[e] < limit:
                e += 1
            bounds[r, t] = e
        bounds[r, num_tiles] = b
    return bounds, True


_TILE_BYTES = 2**21  # destination rows per tile: this many bytes of the wider feature matrix
_MIN_ROWS = 1024  # and never fewer rows (nor edges per chunk) than this
_CHUNK_BYTES = 2**20  # per buffer, when tiling is not possible
_PARALLEL_MACS = 1_500_000  # tiles go to worker threads when a range averages this many multiply-adds


def _compiled_path(*tensors: Tensor) -> bool:
    return all(t.device.type == "cpu" and t.dtype in (torch.float32, torch.float64) for t in tensors)


def _ranges(
    index: RelationalIndex, width: int, itemsize: int, workers: int = 1
) -> tuple[list[list[tuple[int, int, int]]], int, int]:
    """The edge ranges ``(relation, a, b)`` the CPU kernel walks, as a list of tiles; the longest range; rows
    per tile (0 when the destinations are unsorted and the ranges are chunks of each relation in order).
    With several workers, tiles are small enough for at least two per worker.

    Cached on the index per ``(width, itemsize, workers)``.
    """
    key = (width, itemsize, workers)
    if key in index._tiles:
        return index._tiles[key]
    rows = max(_MIN_ROWS, _TILE_BYTES // (itemsize * width))
    if workers > 1:
        rows = max(_MIN_ROWS, min(rows, -(-index.num_dst // (2 * workers))))
    ptr = index.ptr
    ok = False
    if index.dst.numel() and index.num_dst > 0:
        bounds, ok = _tile_bounds(index.dst.numpy(), np.asarray(ptr, dtype=np.int64), rows, index.num_dst)
    if ok:
        tiles = []
        for t in range(bounds.shape[1] - 1):
            col_a, col_b = bounds[:, t].tolist(), bounds[:, t + 1].tolist()
            tiles.append([(r, a, b) for r, (a, b) in enumerate(zip(col_a, col_b)) if b > a])
    else:
        rows = 0
        step = max(_MIN_ROWS, _CHUNK_BYTES // (itemsize * width))
        tiles = [
            [
                (r, a, min(a + step, ptr[r + 1]))
                for r in range(index.num_relations)
                for a in range(ptr[r], ptr[r + 1], step)
            ]
        ]
    longest = max([1] + [b - a for tile in tiles for _, a, b in tile])
    index._tiles[key] = (tiles, longest, rows)
    return index._tiles[key]


def _forward(x: Tensor, weight: Tensor, index: RelationalIndex) -> Tensor:
    c_out = weight.size(-1)
    if not _compiled_path(x, weight):
        out = torch.mm(x, weight[index.identity]) if index.identity is not None else x.new_zeros(index.num_dst, c_out)
        for r in range(index.num_relations):
            a, b = index.ptr[r], index.ptr[r + 1]
            if a == b:
                continue
            msg = torch.mm(x.index_select(0, index.src[a:b]), weight[r])
            out.index_add_(0, index.dst[a:b], msg)
        return out
    workers = torch.get_num_threads()
    tiles, longest, rows = _ranges(index, max(x.size(1), c_out), x.element_size(), workers)
    if rows == 0 or len(tiles) < 2 or index.num_edges * x.size(1) * c_out < _PARALLEL_MACS * sum(map(len, tiles)):
        # chunks of unsorted destinations may collide; small GEMMs lose to the GIL-bound loop: one worker
        workers = 1
    per_tile = rows > 0 and index.identity is not None
    if index.identity is None:
        out = x.new_zeros(index.num_dst, c_out)
    elif per_tile:
        out = x.new_empty(index.num_dst, c_out)
    else:
        out = torch.mm(x, weight[index.identity])
    x = x.detach()  # worker threads have their own grad mode: hand them plain tensors
    x_np, out_np, src, dst = x.numpy(), out.numpy(), index.src.numpy(), index.dst.numpy()
    ws = weight.detach().unbind(0)

    def run(tile_ids: range) -> None:
        buf_in, buf_out = x.new_empty(longest, x.size(1)), x.new_empty(longest, c_out)
        bin_np, bout_np = buf_in.numpy(), buf_out.numpy()
        for t in tile_ids:
            if per_tile:  # the identity relation of this block of rows, before its neighbours add in
                u0, u1 = t * rows, min((t + 1) * rows, index.num_dst)
                torch.mm(x[u0:u1], ws[index.identity], out=out[u0:u1])
            for r, a, b in tiles[t]:
                _gather_rows(x_np, src, a, b, bin_np)
                torch.mm(buf_in[: b - a], ws[r], out=buf_out[: b - a])
                _scatter_add_rows(out_np, dst, a, b, bout_np)

    # cache-sized GEMMs lose more to intra-op thread synchronisation than they gain: the threads work on
    # tiles instead (tiles own disjoint destination rows, so their scatters never collide)
    with single_thread():
        if workers == 1:
            run(range(len(tiles)))
        else:
            list(_pool(workers).map(run, [range(w, len(tiles), workers) for w in range(workers)]))
    return out


_POOLS: dict[int, ThreadPoolExecutor] = {}


def _pool(workers: int) -> ThreadPoolExecutor:
    """A process-wide thread pool of ``workers`` threads (the compiled loops and ``mm`` release the GIL)."""
    if workers not in _POOLS:
        _POOLS[workers] = ThreadPoolExecutor(workers, thread_name_prefix="geomask-relational")
    return _POOLS[workers]


def _backward(
    x: Tensor, weight: Tensor, index: RelationalIndex, grad_out: Tensor, need_x: bool, need_w: bool
) -> tuple[Tensor | None, Tensor | None]:
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
    if not _compiled_path(x, weight, grad_out):
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
        return grad_x, grad_w
    c_in, c_out = x.size(1), grad_out.size(1)
    tiles, longest, _ = _ranges(index, max(c_in, c_out), x.element_size())
    buf_x, buf_g, buf_gx = x.new_empty(longest, c_in), x.new_empty(longest, c_out), x.new_empty(longest, c_in)
    x_np, g_np, src, dst = x.detach().numpy(), grad_out.numpy(), index.src.numpy(), index.dst.numpy()
    gx_np = grad_x.numpy() if need_x else None
    bx_np, bg_np, bgx_np = buf_x.numpy(), buf_g.numpy(), buf_gx.numpy()
    w_t = weight.transpose(1, 2)
    with single_thread():
        for tile in tiles:
            for r, a, b in tile:
                n = b - a
                _gather_rows(g_np, dst, a, b, bg_np)
                if need_w:
                    _gather_rows(x_np, src, a, b, bx_np)
                    grad_w[r].addmm_(buf_x[:n].t(), buf_g[:n])
                if need_x:
                    torch.mm(buf_g[:n], w_t[r], out=buf_gx[:n])
                    _scatter_add_rows(gx_np, src, a, b, bgx_np)
    return grad_x, grad_w


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
