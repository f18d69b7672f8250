"""The compiled kernel of :func:`geomask.ops.relational.relational_matmul`: forward and backward.

On CPU (float32 / float64) the work is tiled over destination rows: when every relation's destinations are
sorted (kernel maps of sorted sites, and :func:`relational_index` sorts them), the edges of one block of
destination rows and one relation form a contiguous range, so the loop runs tile by tile, relation by relation,
and the rows it reads and writes (neighbours of a block of sites are near it in key order) stay in cache
instead of sweeping the whole feature matrix once per relation. Rows are gathered and scattered by compiled
loops (numba; serial, so repeated destinations are summed correctly) through preallocated buffers, the matrix
product is ``torch.mm(out=...)`` — or, where the torch build exports its BLAS (the CPU wheels: MKL's ``sgemm_``), a
whole tile is one GIL-free compiled call (gather → BLAS product → scatter-add per range, :mod:`geomask.ops.blas`),
with the same bits: two workers then no longer queue on the GIL for each of a tile's ~26 short products (2 cm ScanNet,
32 channels: the layer's forward + backward on two threads against one went from ~1.45× to ~1.8×).
Unsorted destinations fall back to chunks of each relation's range in order.
Tiles own disjoint destination rows, so worker threads share them (dynamic scheduling, largest first,
:func:`geomask.ops.threads.share`) and every row is summed in the same order for any number of threads. Tiles are
cut the same way for any thread count (small enough for ``_TILES_PER_WORKER`` per worker of ``_TILING_WORKERS``):
BLAS's bits for a row can depend on the row count of its call and on its operand's address (MKL on AMD EPYC), so
every product sees the same rows at the same alignment whatever the thread count. With several workers the
``torch.mm`` loop gathers and scatters consecutive short ranges of a tile by one compiled call per run
(``_GROUP_BYTES``, each range from a 64-byte boundary): the GIL is held between calls, so fewer calls mean fewer
hand-overs between the threads.

When nearly every (destination, relation) slot holds one edge (convolutions on dense grids: images, SparK), or the
input is narrow (a 7x7 stem on 3 colour channels), the *neighbour-table path* replaces the loop: per tile one
gather of every relation's source row into ``[rows, R * C_in]`` (zeros where there is none) and one GEMM with the
weights stacked to ``[R * C_in, C_out]``, no scatter at all (thresholds measured: ``_TABLE_FILL`` ...).

Backward: ``grad_x`` is the forward of the reversed edges (``index.transpose()``, cached; it tiles like the forward
and takes the table path by the same rule), ``grad_w`` is one item per relation (each relation summed over the same
chunks of its edges in the same order) or, on the table path, a fixed number of tile groups; the items of both go
to the threads on one queue, largest first, so neither waits for the other's stragglers. Outputs and gradients do
not depend on the thread count (tested bit for bit).
Elsewhere (GPU, half precision) it is ``index_select`` → ``mm`` → ``index_add_`` per relation.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import NamedTuple

import numba
import numpy as np
import torch
from torch import Tensor

from geomask.ops import blas
from geomask.ops.array_pool import edge_pool
from geomask.ops.blas import gemm_rows, gemm_t_rows
from geomask.ops.relational_index import RelationalIndex
from geomask.ops.threads import share, single_thread

__all__: list[str] = []  # private: used by geomask.ops.relational


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
def _gather_ranges(x, idx, ranges, g0, g1, out, step):  # the rows of ranges g0 .. g1, each from a multiple of step
    o = 0
    for g in range(g0, g1):
        a, b = ranges[g, 0], ranges[g, 1]
        _gather_rows(x, idx, a, b, out[o:])
        o += (b - a + step - 1) // step * step


@numba.njit(cache=True, nogil=True)
def _scatter_add_ranges(out, idx, ranges, g0, g1, rows, step):  # _scatter_add_rows of _gather_ranges' layout, in order
    o = 0
    for g in range(g0, g1):
        a, b = ranges[g, 0], ranges[g, 1]
        _scatter_add_rows(out, idx, a, b, rows[o:])
        o += (b - a + step - 1) // step * step


@numba.njit(cache=True, nogil=True)
def _tile_ranges(ptrs, x, src, dst, ranges, g0, g1, w, w_t, out, buf_in, buf_out):
    """Ranges ``g0 .. g1`` of a tile, each gather → product with ``W[relation]`` → scatter-add, in order: the
    ``torch.mm`` loop of :func:`_forward_plan` as one GIL-free call (:mod:`geomask.ops.blas`), same bits."""
    for g in range(g0, g1):
        a, b, r = ranges[g, 0], ranges[g, 1], ranges[g, 2]
        _gather_rows(x, src, a, b, buf_in)
        gemm_rows(ptrs, buf_in, b - a, w[r], w_t, buf_out, 0.0)
        _scatter_add_rows(out, dst, a, b, buf_out)


@numba.njit(cache=True, nogil=True)
def _relation_weight_grad(ptrs, x, g, src, dst, a0, b0, step, buf_x, buf_g, out):
    """``out += x[src[e]]ᵀ g[dst[e]]`` over edges ``a0 .. b0`` in chunks of ``step`` (one gather of each side and
    one product per chunk, in order): :func:`_weight_grad_plan`'s loop as one GIL-free call, same bits."""
    for a in range(a0, b0, step):
        b = min(a + step, b0)
        _gather_rows(x, src, a, b, buf_x)
        _gather_rows(g, dst, a, b, buf_g)
        gemm_t_rows(ptrs, buf_x, buf_g, b - a, out)


@numba.njit(cache=True, nogil=True, fastmath=True)
def _gather_table(x, table, u0, u1, out):  # out[v - u0, r*C:(r+1)*C] = x[table[v, r]], zeros where table is -1
    c = x.shape[1]
    for v in range(u0, u1):
        for r in range(table.shape[1]):
            s = table[v, r]
            o = r * c
            if s >= 0:
                for k in range(c):
                    out[v - u0, o + k] = x[s, k]
            else:
                for k in range(c):
                    out[v - u0, o + k] = 0.0


@numba.njit(cache=True, nogil=True)
def _fill_table(src, dst, ptr, table):  # table[dst[e], r] = src[e]; False when a slot would take two edges
    for r in range(ptr.shape[0] - 1):
        for e in range(ptr[r], ptr[r + 1]):
            v = dst[e]
            if table[v, r] >= 0:
                return False
            table[v, r] = src[e]
    return True


@numba.njit(cache=True, nogil=True)
def _tile_bounds(dst, ptr, rows, r0, r1, bounds):
    """``bounds [R, T + 1]`` of relations ``r0 .. r1``: relation ``r``'s edges into destination rows
    ``[t * rows, (t + 1) * rows)`` are ``[bounds[r, t], bounds[r, t + 1])`` (a binary search per tile); false when
    some relation's destinations are not ascending (a branch-free scan, so it vectorises)."""
    num_tiles = bounds.shape[1] - 1
    for r in range(r0, r1):
        a, b = ptr[r], ptr[r + 1]
        descents = 0
        for e in range(a + 1, b):
            descents += dst[e] < dst[e - 1]
        if descents:
            return False
        run = dst[a:b]
        for t in range(num_tiles):
            bounds[r, t] = a + np.searchsorted(run, t * rows)
        bounds[r, num_tiles] = b
    return True


@numba.njit(cache=True, nogil=True)
def _group_runs(lens, tile_ptr, budget):
    """Runs ``[Q, 2]`` of consecutive ranges ``(g0, g1)`` within each tile (tile ``t`` holds ranges
    ``tile_ptr[t] .. tile_ptr[t + 1]`` of lengths ``lens``), greedily up to ``budget`` rows (a longer range
    alone), and ``run_ptr [T + 1]`` (tile ``t``'s runs)."""
    num_tiles = tile_ptr.shape[0] - 1
    runs = np.empty((lens.shape[0], 2), dtype=np.int64)
    run_ptr = np.empty(num_tiles + 1, dtype=np.int64)
    q = 0
    for t in range(num_tiles):
        run_ptr[t] = q
        g0, size = tile_ptr[t], 0
        for g in range(tile_ptr[t], tile_ptr[t + 1]):
            if size + lens[g] > budget and g > g0:
                runs[q, 0], runs[q, 1] = g0, g
                q += 1
                g0, size = g, 0
            size += lens[g]
        if tile_ptr[t + 1] > g0:
            runs[q, 0], runs[q, 1] = g0, tile_ptr[t + 1]
            q += 1
    run_ptr[num_tiles] = q
    return runs[:q], run_ptr


# destination rows per tile: this many bytes of gathered messages (rows x edges per row x the wider width). Measured
# on ScanNet at one thread (forward and forward+backward, 32 and 64 channels): 5 cm voxels (9.5 edges per site) ran
# 20-30 % faster with tiles of ~4,000 rows at 32 channels than with the former 2 MB of feature rows (16,384), 2 cm
# voxels (2.5 edges per site: short ranges, where each `mm` call's overhead counts) best with the large ones; ~5 MB
# of messages was the optimum of both. With a tile in one compiled call (no Python per range) 2.5 MB is 1-5 % faster
# than 5 MB in all four (2 / 5 cm, 32 / 64 channels, forward and forward + backward, one thread).
_TILE_MESSAGE_BYTES = 5 * 2**19
_TILE_BYTES = 2**21  # the neighbour-table path's tiles: this many bytes of the wider feature matrix
_MIN_ROWS = 1024  # and never fewer rows (nor edges per chunk) than this
_CHUNK_BYTES = 2**20  # per buffer, when tiling is not possible
_GROUP_BYTES = 2**19  # consecutive ranges of a tile gathered (and scattered) together, up to this many bytes
# grad_w: a relation's edges in chunks of this many bytes of gathered rows per side (measured on ScanNet, 64 channels,
# one thread: 2**18 beat 2**20 by 15-20 % and the former per-tile ranges by 5-10 %)
_WGRAD_BYTES = 2**18
_PARALLEL_MACS = 1_500_000  # torch.mm loop: tiles go to worker threads when a range averages this many multiply-adds
# compiled tile loops (no GIL between products): worker threads from this many multiply-adds in all; measured on random
# 4-relation graphs at 32 channels, two threads: 6 M already gained (forward + backward 562 -> 435 us)
_PARALLEL_MACS_FUSED = 2**23
_TILES_PER_WORKER = 4  # tiles are small enough for at least this many per worker ...
# ... of this many workers, whatever the thread count: a BLAS product's bits for a row can depend on how many rows the
# call has (MKL on AMD EPYC: for 1-3 rows, or any count in float64), so tiles, and the ranges within them, are cut the
# same way for any number of threads; the 2 workers of the 2-core target machine
_TILING_WORKERS = 2
# BLAS operands start on 64-byte boundaries: MKL's bits for a row can depend on its operand's address modulo 16 bytes
# (measured on AMD EPYC), so ranges gathered together into one buffer each start on a boundary, as one alone does
_ALIGN_BYTES = 64
# the neighbour-table path (one gather of every relation's row into [rows, R * C_in], one GEMM, no scatter) when
# the table is nearly full and the layer not GEMM-bound, or the input is narrow (SparK's 7x7 stem on 3 colour
# channels: 49 GEMMs with 3-wide inner products otherwise); measured on 224 px image grids, one thread: 1.3-1.7x at
# fill >= 0.89 and 32-64 channels, no gain at 128 (fill 0.80), a loss at 256 (fill 0.63)
_TABLE_FILL = 0.85
_TABLE_MAX_WIDTH = 128
_TABLE_NARROW = 16
_TABLE_NARROW_FILL = 0.25
_TABLE_GROUPS = 4  # grad_w partial sums on the table path: a fixed number, so threads do not change the result


def _compiled_path(*tensors: Tensor) -> bool:
    """CPU, float32 or float64, one dtype (the compiled kernel hands them to one BLAS routine; anything else takes
    the torch path, which behaves as ``torch.mm`` does, under autocast too)."""
    dtype = tensors[0].dtype
    return dtype in (torch.float32, torch.float64) and all(t.device.type == "cpu" and t.dtype == dtype for t in tensors)


@dataclass
class _Plan:
    """Work of one compiled kernel call as independent items, each processed whole by one thread.

    Args:
        items: item ids passed to the processor.
        costs: estimated multiply-adds per item (the scheduling order, largest first; never the result).
        make: builds one thread's processor (its own buffers), ``processor(item)``.
        workers: threads the items may use (1 when they are too small to gain from more).
        result: the output, read after every item ran.
    """

    items: list[int]
    costs: list[float]
    make: Callable[[], Callable[[int], None]]
    workers: int
    result: Callable[[], Tensor]


def _run_plans(plans: list[_Plan]) -> None:
    """Run the items of ``plans`` on one shared queue (largest first, so the last to finish are small), with one
    intra-op thread each: cache-sized GEMMs lose more to intra-op synchronisation than they gain. Items write
    disjoint outputs (tiles own their destination rows, relations their ``grad_w`` slice), so the result does not
    depend on which thread ran what, nor on how many."""
    flat = [(k, item, cost) for k, p in enumerate(plans) for item, cost in zip(p.items, p.costs)]
    flat.sort(key=lambda f: -f[2])  # stable: equal costs keep their order
    workers = max(p.workers for p in plans)

    def run(ids: Iterator[int]) -> None:
        # a pool thread keeps its own OpenMP thread count (2 on two cores, whatever the caller set): pin it to one,
        # or its GEMMs split their reductions and the bits depend on which thread ran the item (seen in grad_w)
        if torch.get_num_threads() != 1:
            torch.set_num_threads(1)
        procs: list[Callable[[int], None] | None] = [None] * len(plans)
        for i in ids:
            k, item, _ = flat[i]
            proc = procs[k]
            if proc is None:
                proc = procs[k] = plans[k].make()
            proc(item)

    with single_thread():
        share(run, range(len(flat)), workers)


def _parallel(macs: int, grain: int, fused: bool) -> bool:
    """Whether ``macs`` multiply-adds in ``grain`` products are worth worker threads: the compiled tile loops
    (``fused``) need ``_PARALLEL_MACS_FUSED`` in all, the ``torch.mm`` loop ``_PARALLEL_MACS`` per product."""
    return macs >= (_PARALLEL_MACS_FUSED if fused else _PARALLEL_MACS * grain)


def _tile_rows(index: RelationalIndex, width: int, itemsize: int) -> int:
    """Destination rows of a one-worker tile: ``_TILE_MESSAGE_BYTES`` of gathered messages, at least ``_MIN_ROWS``."""
    per_row = max(1.0, index.num_edges / max(1, index.num_dst))
    return max(_MIN_ROWS, int(_TILE_MESSAGE_BYTES / (itemsize * width * per_row)))


class _Tiles(NamedTuple):
    """The edge ranges the CPU kernel walks, tile after tile (cached on the index per width and itemsize).

    ``ranges [G, 3]``: ``(a, b, relation)``, the edges ``a .. b`` of one relation into one tile's destination rows,
    tile-major and by ascending relation within a tile; tile ``t`` holds ranges ``tile_ptr[t] .. tile_ptr[t + 1]``
    and ``edges[t]`` edges. ``longest``: the longest range; ``rows``: destination rows per tile (0 when the
    destinations are unsorted and the ranges are chunks of each relation in order, one tile)."""

    ranges: np.ndarray
    tile_ptr: np.ndarray
    edges: list[int]
    longest: int
    rows: int


def _ranges(index: RelationalIndex, width: int, itemsize: int, workers: int = 1) -> _Tiles:
    """The :class:`_Tiles` of ``index`` for features ``width`` wide: tiles of ``_tile_rows`` rows, small enough for
    at least ``_TILES_PER_WORKER`` per worker of ``_TILING_WORKERS`` (``workers`` only shares the work of finding
    them). Cached on the index."""
    key = (width, itemsize)
    if key in index._tiles:
        return index._tiles[key]
    rows = _tile_rows(index, width, itemsize)
    rows = max(_MIN_ROWS, min(rows, -(-index.num_dst // (_TILES_PER_WORKER * _TILING_WORKERS))))
    ptr = index.ptr
    num_rel = index.num_relations
    ok = False
    if index.dst.numel() and index.num_dst > 0:
        bounds = np.empty((num_rel, max(1, -(-index.num_dst // rows)) + 1), dtype=np.int64)
        dst, ptr_np = index.dst.numpy(), np.asarray(ptr, dtype=np.int64)
        cuts = [num_rel * k // max(1, workers) for k in range(max(1, workers) + 1)]
        parts = [True] * (len(cuts) - 1)

        def run(ids: Iterator[int]) -> None:
            for k in ids:
                parts[k] = _tile_bounds(dst, ptr_np, rows, cuts[k], cuts[k + 1], bounds)

        share(run, range(len(parts)), workers)
        ok = all(parts)
    if ok:
        a, b = bounds[:, :-1].T, bounds[:, 1:].T  # [T, R]: tile-major, relations ascending
        used = b > a
        rel = np.broadcast_to(np.arange(num_rel, dtype=np.int64), a.shape)
        ranges = np.stack([a[used], b[used], rel[used]], axis=1)
        tile_ptr = np.concatenate([[0], np.cumsum(used.sum(1))])
    else:
        rows = 0
        step = max(_MIN_ROWS, _CHUNK_BYTES // (itemsize * width))
        chunks = [(e, min(e + step, ptr[r + 1]), r) for r in range(num_rel) for e in range(ptr[r], ptr[r + 1], step)]
        ranges = np.asarray(chunks, dtype=np.int64).reshape(-1, 3)
        tile_ptr = np.asarray([0, len(chunks)], dtype=np.int64)
    lens = ranges[:, 1] - ranges[:, 0]
    total = np.concatenate([[0], np.cumsum(lens)])
    edges = (total[tile_ptr[1:]] - total[tile_ptr[:-1]]).tolist()
    longest = max(1, int(lens.max())) if len(lens) else 1
    index._tiles[key] = _Tiles(ranges, tile_ptr, edges, longest, rows)
    return index._tiles[key]


def _align_rows(c_in: int, c_out: int, itemsize: int) -> int:
    """Rows whose multiples start on ``_ALIGN_BYTES`` boundaries in both a ``c_in``- and a ``c_out``-wide buffer."""
    a = _ALIGN_BYTES // math.gcd(_ALIGN_BYTES, c_in * itemsize)
    b = _ALIGN_BYTES // math.gcd(_ALIGN_BYTES, c_out * itemsize)
    return a * b // math.gcd(a, b)


def _range_groups(
    index: RelationalIndex, width: int, itemsize: int, workers: int = 1, step: int = 1
) -> tuple[list[tuple[int, int, int]], list[list[tuple[int, int]]], int]:
    """For the ``torch.mm`` loop: ``(relation, b - a, offset)`` of every range of :func:`_ranges` (its first row in a
    run's buffer, a multiple of ``step`` rows, :func:`_gather_ranges`' layout), the ranges of each tile cut into runs
    of consecutive ranges ``(g0, g1)`` of at most ``_GROUP_BYTES`` of gathered rows (a longer range alone; one worker
    takes the ranges one by one: no GIL contention to save, smaller buffers), and the buffer rows they need. Cached on
    the index."""
    key = ("groups", width, itemsize, workers, step)
    if key not in index._tiles:
        tiles = _ranges(index, width, itemsize, workers)
        lens = tiles.ranges[:, 1] - tiles.ranges[:, 0]
        budget = _GROUP_BYTES // (itemsize * width) if workers > 1 else 0  # 0: every range alone
        runs, run_ptr = _group_runs(lens, tiles.tile_ptr, budget)
        padded = -(-lens // step) * step
        ends = np.cumsum(padded)
        offsets = ends - padded  # from the first range of all; each run's buffer starts at its first range
        run_of = np.repeat(np.arange(len(runs)), runs[:, 1] - runs[:, 0]) if len(runs) else np.zeros(0, np.int64)
        offsets = offsets - offsets[runs[run_of, 0]] if len(runs) else offsets
        size = max(tiles.longest, int((ends[runs[:, 1] - 1] - ends[runs[:, 0]] + padded[runs[:, 0]]).max(initial=0)))
        run_list, run_ptr = runs.tolist(), run_ptr.tolist()
        groups = [run_list[run_ptr[t] : run_ptr[t + 1]] for t in range(len(tiles.edges))]
        rel_len = list(zip(tiles.ranges[:, 2].tolist(), lens.tolist(), offsets.tolist()))
        index._tiles[key] = (rel_len, groups, size)
    return index._tiles[key]


def _table(index: RelationalIndex, c_in: int, c_out: int) -> np.ndarray | None:
    """The neighbour table ``[N_dst, R]`` (int32 source row per destination and relation, -1 where none) when the
    table path pays for this layer (see ``_TABLE_FILL``) and every destination has at most one edge per
    relation (convolution maps); else ``None``. Cached on the index."""
    slots = index.num_dst * index.num_relations
    if slots == 0 or index.num_src >= 2**31:
        return None
    fill = index.num_edges / slots
    if not (
        (fill >= _TABLE_FILL and c_out <= _TABLE_MAX_WIDTH) or (c_in <= _TABLE_NARROW and fill >= _TABLE_NARROW_FILL)
    ):
        return None
    if "table" not in index._tiles:
        table = edge_pool.empty((index.num_dst, index.num_relations), np.int32)  # no fresh pages per map
        table.fill(-1)
        ok = _fill_table(index.src.numpy(), index.dst.numpy(), np.asarray(index.ptr, dtype=np.int64), table)
        if ok and index.identity is not None:
            table[:, index.identity] = np.arange(index.num_dst, dtype=np.int32)
        index._tiles["table"] = table if ok else None
    return index._tiles["table"]


def _table_rows(width: int, itemsize: int, num_dst: int) -> int:
    """Rows per neighbour-table tile: ``_TILE_BYTES`` of the table's rows, at least 4 tiles per ``_TILING_WORKERS``
    worker (the same for any thread count)."""
    rows = max(64, _TILE_BYTES // (itemsize * width))
    return max(64, min(rows, -(-num_dst // (4 * _TILING_WORKERS))))


def _table_forward_plan(x: Tensor, weight: Tensor, table: np.ndarray) -> _Plan:
    """``out = [x[table[:, 0]], ..., x[table[:, R-1]]] @ weight.reshape(R * C_in, C_out)`` tile by tile, tiles
    shared by the worker threads (disjoint output rows)."""
    num_rel, c_in, c_out = weight.shape
    n = table.shape[0]
    w = weight.detach().reshape(num_rel * c_in, c_out)
    workers = torch.get_num_threads()
    rows = _table_rows(num_rel * c_in, x.element_size(), n)
    out = x.new_empty(n, c_out)
    x_np = x.detach().numpy()

    def make() -> Callable[[int], None]:
        buf = x.new_empty(rows, num_rel * c_in)
        buf_np = buf.numpy()

        def tile(t: int) -> None:
            u0, u1 = t * rows, min((t + 1) * rows, n)
            _gather_table(x_np, table, u0, u1, buf_np)
            torch.mm(buf[: u1 - u0], w, out=out[u0:u1])

        return tile

    num_tiles = -(-n // rows)
    cost = float(rows * num_rel * c_in * c_out)
    return _Plan(list(range(num_tiles)), [cost] * num_tiles, make, workers, lambda: out)


def _table_weight_grad_plan(x: Tensor, grad_out: Tensor, table: np.ndarray, shape: torch.Size) -> _Plan:
    """``grad_w = colsᵀ grad_out`` over tiles of the neighbour table: ``_TABLE_GROUPS`` partial sums over fixed
    runs of tiles (shared by the worker threads), added in order (the same result for any thread count)."""
    num_rel, c_in, c_out = shape
    n = table.shape[0]
    rows = _table_rows(num_rel * c_in, x.element_size(), n)
    num_tiles = -(-n // rows)
    groups = min(_TABLE_GROUPS, num_tiles)
    cuts = [num_tiles * g // groups for g in range(groups + 1)]
    partial = x.new_zeros(groups, num_rel * c_in, c_out)
    x_np = x.detach().numpy()

    def make() -> Callable[[int], None]:
        buf = x.new_empty(rows, num_rel * c_in)
        buf_np = buf.numpy()

        def group(g: int) -> None:
            for t in range(cuts[g], cuts[g + 1]):
                u0, u1 = t * rows, min((t + 1) * rows, n)
                _gather_table(x_np, table, u0, u1, buf_np)
                partial[g].addmm_(buf[: u1 - u0].t(), grad_out[u0:u1])

        return group

    def result() -> Tensor:
        total = partial[0]
        for g in range(1, groups):
            total = total + partial[g]
        return total.view(num_rel, c_in, c_out)

    costs = [float((cuts[g + 1] - cuts[g]) * rows * num_rel * c_in * c_out) for g in range(groups)]
    return _Plan(list(range(groups)), costs, make, torch.get_num_threads(), result)


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
    plan = _forward_plan(x, weight, index)
    _run_plans([plan])
    return plan.result()


def _forward_plan(x: Tensor, weight: Tensor, index: RelationalIndex) -> _Plan:
    """The compiled forward as work items: neighbour-table tiles, or tiles of destination rows each walking its
    ``(relation, edge range)`` list (gather → ``mm`` → scatter-add), the identity relation as one ``mm`` per tile."""
    c_out = weight.size(-1)
    table = _table(index, x.size(1), c_out)
    if table is not None:
        return _table_forward_plan(x, weight, table)
    workers = torch.get_num_threads()
    width, itemsize = max(x.size(1), c_out), x.element_size()
    tiles = _ranges(index, width, itemsize, workers)
    ranges, tile_ptr, rows, num_tiles = tiles.ranges, tiles.tile_ptr, tiles.rows, len(tiles.edges)
    fused = blas.AVAILABLE and x.is_contiguous()
    if fused:  # one range at a time
        size = max(tiles.longest, _GROUP_BYTES // (itemsize * width) if workers > 1 else 0)
    else:
        step = _align_rows(x.size(1), c_out, itemsize)
        rel_len, groups, size = _range_groups(index, width, itemsize, workers, step)
    # small GEMMs lose to the GIL-bound torch.mm loop: one worker (judged on the ranges of one-worker tiles, the
    # layer's own grain: each non-empty relation once per tile); the compiled loop only needs enough work in all
    tiles_one = -(-index.num_dst // _tile_rows(index, width, itemsize))
    grain = tiles_one * sum(1 for a, b in zip(index.ptr[:-1], index.ptr[1:]) if b > a)
    if rows == 0 or num_tiles < 2 or not _parallel(index.num_edges * x.size(1) * c_out, grain, fused):
        workers = 1  # (rows == 0: chunks of unsorted destinations may collide)
    per_tile = rows > 0 and index.identity is not None
    if index.identity is None:
        out = x.new_zeros(index.num_dst, c_out)
    elif per_tile:
        out = x.new_empty(index.num_dst, c_out)
    else:
        out = torch.mm(x, weight[index.identity])
    x = x.detach()  # worker threads have their own grad mode: hand them plain tensors
    x_np, out_np, src, dst = x.numpy(), out.numpy(), index.src.numpy(), index.dst.numpy()
    c_in = x.size(1)
    if fused:  # the weights as stored: W[r] = w[r], or w[r]ᵀ for the backward's transposed view
        w_t = not weight.is_contiguous() and weight.transpose(1, 2).is_contiguous()
        w_np = (weight.detach().transpose(1, 2) if w_t else weight.detach().contiguous()).numpy()
    else:
        ws = weight.detach().unbind(0)

    def make() -> Callable[[int], None]:
        buf_in, buf_out = x.new_empty(size, c_in), x.new_empty(size, c_out)
        bin_np, bout_np = buf_in.numpy(), buf_out.numpy()

        def tile_fused(t: int) -> None:
            if per_tile:
                u0, u1 = t * rows, min((t + 1) * rows, index.num_dst)
                gemm_rows(blas.POINTERS, x_np[u0:u1], u1 - u0, w_np[index.identity], w_t, out_np[u0:u1], 0.0)
            g0, g1 = int(tile_ptr[t]), int(tile_ptr[t + 1])
            _tile_ranges(blas.POINTERS, x_np, src, dst, ranges, g0, g1, w_np, w_t, out_np, bin_np, bout_np)

        if fused:
            return tile_fused

        def tile(t: int) -> None:
            if per_tile:  # the identity relation of this block of rows, before its neighbours add in
                u0, u1 = t * rows, min((t + 1) * rows, index.num_dst)
                torch.mm(x[u0:u1], ws[index.identity], out=out[u0:u1])
            # groups of short ranges: one compiled gather and one scatter each (fewer GIL round trips), one mm
            # per range; every destination row still sums its relations in order
            # (each range from a 64-byte boundary of the buffer: the bits of the range alone)
            for g0, g1 in groups[t]:
                _gather_ranges(x_np, src, ranges, g0, g1, bin_np, step)
                for r, n, o in rel_len[g0:g1]:
                    torch.mm(buf_in[o : o + n], ws[r], out=buf_out[o : o + n])
                _scatter_add_ranges(out_np, dst, ranges, g0, g1, bout_np, step)

        return tile

    ident_rows = rows if per_tile else 0
    costs = [float((e + ident_rows) * c_in * c_out) for e in tiles.edges]
    return _Plan(list(range(num_tiles)), costs, make, workers, lambda: out)


def _transposed(index: RelationalIndex) -> RelationalIndex:
    """``index.transpose()``, cached on the index (so its tiles are computed once per index, not per step)."""
    if "transpose" not in index._tiles:
        index._tiles["transpose"] = index.transpose()
    return index._tiles["transpose"]


def _weight_grad_plan(x: Tensor, weight: Tensor, index: RelationalIndex, grad_out: Tensor) -> _Plan:
    """``grad_w[r] = Σ_{(u→v) ∈ E_r} x[u]ᵀ grad_out[v]``, one work item per relation.

    Each relation is summed over chunks of its edges (``_WGRAD_BYTES`` of gathered rows: one gather of each side
    and one ``addmm_`` per chunk) in order, the same chunks whatever the thread count, so the result does not
    depend on the number of threads.
    """
    grad_w = torch.zeros_like(weight)
    c_in, c_out = x.size(1), grad_out.size(1)
    step = max(_MIN_ROWS, _WGRAD_BYTES // (x.element_size() * max(c_in, c_out)))
    ptr = index.ptr
    per_rel = [[(a, min(a + step, ptr[r + 1])) for a in range(ptr[r], ptr[r + 1], step)] for r in range(len(ptr) - 1)]
    longest = max([1] + [b - a for chunks in per_rel for a, b in chunks])
    loads = [(r, index.ptr[r + 1] - index.ptr[r]) for r in range(index.num_relations) if per_rel[r]]
    if index.identity is not None:
        loads.append((index.identity, index.num_src))
    workers = torch.get_num_threads()
    fused = blas.AVAILABLE and x.is_contiguous() and grad_out.is_contiguous()
    if not _parallel(index.num_edges * c_in * c_out, max(1, sum(map(len, per_rel))), fused):
        workers = 1
    x_np, g_np, src, dst = x.numpy(), grad_out.numpy(), index.src.numpy(), index.dst.numpy()
    gw_np = grad_w.numpy()

    def make() -> Callable[[int], None]:
        buf_x, buf_g = x.new_empty(longest, c_in), x.new_empty(longest, c_out)
        bx_np, bg_np = buf_x.numpy(), buf_g.numpy()

        def relation(r: int) -> None:
            if r == index.identity:
                torch.mm(x.t(), grad_out, out=grad_w[r])
                return
            if fused:
                _relation_weight_grad(
                    blas.POINTERS, x_np, g_np, src, dst, ptr[r], ptr[r + 1], step, bx_np, bg_np, gw_np[r]
                )
                return
            for a, b in per_rel[r]:
                _gather_rows(x_np, src, a, b, bx_np)
                _gather_rows(g_np, dst, a, b, bg_np)
                grad_w[r].addmm_(buf_x[: b - a].t(), buf_g[: b - a])

        return relation

    return _Plan([r for r, _ in loads], [float(e * c_in * c_out) for _, e in loads], make, workers, lambda: grad_w)


def _backward(
    x: Tensor, weight: Tensor, index: RelationalIndex, grad_out: Tensor, need_x: bool, need_w: bool
) -> tuple[Tensor | None, Tensor | None]:
    if _compiled_path(x, weight, grad_out):
        # grad_x is the forward of the reversed edges (tiles of x's rows); grad_w is split by relation (or by
        # table tile group); the items of both go to the worker threads together, largest first
        x = x.detach()
        plans: list[_Plan | None] = [None, None]
        if need_x:
            plans[0] = _forward_plan(grad_out, weight.detach().transpose(1, 2), _transposed(index))
        if need_w:
            table = _table(index, x.size(1), grad_out.size(1))
            if table is not None:
                plans[1] = _table_weight_grad_plan(x, grad_out, table, weight.shape)
            else:
                plans[1] = _weight_grad_plan(x, weight, index, grad_out)
        _run_plans([p for p in plans if p is not None])
        return tuple(None if p is None else p.result() for p in plans)
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
    return grad_x, grad_w
