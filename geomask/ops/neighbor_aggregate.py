"""Aggregation over typed edges: per-relation messages reduced at the destination by sum, mean, max or softmax.

Three forms of the same edges: the edge-wise form (``src``/``dst``/``etype`` per edge, reduced with
``index_add_`` / ``scatter_reduce``); a dense fan-in table ``[T, K]`` for graphs of small in-degree (an AIG
has in-degree <= 2; a kNN graph has exactly k): one gather, the reduction over a short dense axis (for K = 2 the
softmax is a sigmoid of the difference), and the backward one ``index_add_``; and contiguous segments (target
``t`` reads source rows ``t*K .. t*K+K-1``: the points of a point patch), a view with no gather at all.  The
kernel picks the path from the table it is given.

A message may read both ends of its edge: ``message(x[u] @ W_r + e_r + d[v])`` with a per-target term ``d``
(``dst_term``).  A layer whose edge function is ``f(Linear([x_u - x_v, x_v]))`` (EdgeConv) or
``f(Linear([g_v, x_u]))`` (the patch embedding's second stage) splits its linear map into a source part
(``weight``) and a target part (``dst_term``), so the matrix products run once per row, not once per edge.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from geomask.ops.relational import relational_message_passing

__all__ = [
    "REDUCTIONS",
    "NeighborTable",
    "build_neighbors",
    "dense_table",
    "neighbor_aggregate",
    "relational_aggregate",
    "relational_messages",
    "scatter_aggregate",
    "segment_table",
]


REDUCTIONS = ("sum", "mean", "max", "softmax")


@dataclass(frozen=True, eq=False)
class NeighborTable:
    """In-neighbours of every target row, dense (``table``) or edge-wise (``src``/``dst``), optionally typed.

    Args:
        num_nodes: T, the number of targets.
        table: ``[T, K]`` int64 source row per slot, ``S`` (the number of source rows: a zero row) in unused
            slots; ``None`` in the edge-wise form.
        valid: ``[T, K]`` bool, True on used slots (slot 0 of a target without in-neighbours is marked used:
            it reads the zero row, so the target aggregates to zero without a NaN).
        full: ``[T, 1]`` float, 0 where a target has exactly two in-neighbours and ``+inf`` elsewhere (the
            K = 2 softmax adds it to the logit difference so that the weight of slot 0 becomes 1).
        src, dst: ``[E]`` edge endpoints (edge-wise form only).
        etype: relation per slot (``[T, K]``, 0 in unused slots) or per edge (``[E]``); ``None`` when every edge
            is relation 0 (untyped: messages are then computed once per source row, not per edge).
        segment: K of the segment form (target ``t`` reads source rows ``t*K`` to ``t*K + K - 1``, all used;
            untyped), ``0`` otherwise; build it with :func:`segment_table`.
        complete: every slot of the dense table is used (a kNN graph): no slot needs masking.
    """

    num_nodes: int
    table: Tensor | None = None
    valid: Tensor | None = None
    full: Tensor | None = None
    src: Tensor | None = None
    dst: Tensor | None = None
    etype: Tensor | None = None
    segment: int = 0
    complete: bool = False

    @property
    def dense(self) -> bool:
        return self.table is not None or self.segment > 0


def segment_table(num_segments: int, size: int) -> NeighborTable:
    """Contiguous segments: target ``t`` aggregates source rows ``[t * size, (t + 1) * size)`` (patches of equal
    size stored one after another); the kernel reduces a ``[T, size, C]`` view, no index is built or gathered."""
    if size < 1:
        raise ValueError(f"segment size must be at least 1, got {size}")
    return NeighborTable(num_segments, segment=size)


def build_neighbors(
    edge_index: Tensor,
    num_nodes: int,
    max_dense: int = 8,
    edge_type: Tensor | None = None,
    num_src: int | None = None,
) -> NeighborTable:
    """Group the edges ``edge_index[0] → edge_index[1]`` by target row.

    Args:
        edge_index: ``[2, E]`` int64, source (driver) first.
        num_nodes: T, the number of targets.
        max_dense: largest in-degree stored as a dense table; above it the edge-wise form is used.
        edge_type: ``[E]`` relation per edge; dropped when all zero (one host sync), so a graph whose edges
            are all plain gets exactly the untyped table.
        num_src: S, the number of source rows (default T).

    Returns:
        The :class:`NeighborTable`.
    """
    src, dst = edge_index[0], edge_index[1]
    device = edge_index.device
    n_src = num_nodes if num_src is None else num_src
    if edge_type is not None:
        if edge_type.shape != src.shape:
            raise ValueError(f"edge_type must be [E={src.numel()}], got {tuple(edge_type.shape)}")
        if not bool(edge_type.any()):
            edge_type = None
        else:
            edge_type = edge_type.long()
    if src.numel() == 0:
        table = torch.full((num_nodes, 1), n_src, dtype=torch.long, device=device)
        valid = torch.ones(num_nodes, 1, dtype=torch.bool, device=device)
        return NeighborTable(num_nodes, table, valid, None)
    deg = torch.bincount(dst, minlength=num_nodes)
    k = int(deg.max())
    if k > max_dense:
        return NeighborTable(num_nodes, src=src, dst=dst, etype=edge_type)
    order = torch.argsort(dst, stable=True)
    dst_sorted = dst[order]
    start = torch.cumsum(deg, 0) - deg
    pos = torch.arange(dst.numel(), device=device) - start[dst_sorted]
    table = torch.full((num_nodes, k), n_src, dtype=torch.long, device=device)
    table[dst_sorted, pos] = src[order]
    etype = None
    if edge_type is not None:
        etype = torch.zeros((num_nodes, k), dtype=torch.long, device=device)
        etype[dst_sorted, pos] = edge_type[order]
    return dense_table(table, n_src, etype)


def dense_table(table: Tensor, num_src: int, etype: Tensor | None = None) -> NeighborTable:
    """Wrap a ``[T, K]`` table of source rows (``num_src`` in unused slots) as a :class:`NeighborTable`.

    ``etype``: ``[T, K]`` relation per slot, or ``None`` (all relation 0).
    """
    used = table < num_src
    valid = used.clone()
    valid[:, 0] = True
    full = None
    if table.shape[1] == 2:
        full = torch.where(used.all(1), 0.0, float("inf")).unsqueeze(1)
    complete = bool(used.all())
    return NeighborTable(table.shape[0], table, valid, full, etype=etype, complete=complete)


def relational_messages(
    x: Tensor,
    src: Tensor,
    edge_type: Tensor | None = None,
    weight: Tensor | None = None,
    edge_emb: Tensor | None = None,
) -> Tensor:
    """Per-edge messages ``x[src] @ weight[type] + edge_emb[type]`` (each term optional).

    With a weight, the rows are transformed once per (source row, relation) and gathered (no per-edge matrix
    product); ``edge_type=None`` means relation 0 for every edge.

    Shapes:
        x: ``[S, C]``; src, edge_type: ``[E]``; weight: ``[R, C, C']``; edge_emb: ``[R, C']``; returns ``[E, C']``.
    """
    if edge_type is None:
        return _node_messages(x, weight, edge_emb).index_select(0, src)
    if weight is not None:
        r, c, c_out = weight.shape
        xw = torch.mm(x, weight.permute(1, 0, 2).reshape(c, r * c_out)).view(-1, c_out)
        msg = xw.index_select(0, src * r + edge_type)
    else:
        msg = x.index_select(0, src)
    if edge_emb is not None:
        msg = msg + edge_emb.index_select(0, edge_type)
    return msg


def _node_messages(x: Tensor, weight: Tensor | None, edge_emb: Tensor | None) -> Tensor:
    """Relation-0 messages of every source row."""
    if weight is not None:
        x = torch.mm(x, weight[0])
    if edge_emb is not None:
        x = x + edge_emb[0]
    return x


def _check_reduce(reduce: str) -> None:
    if reduce not in REDUCTIONS:
        raise ValueError(f"reduce must be one of {REDUCTIONS}, got {reduce!r}")


def scatter_aggregate(
    msg: Tensor, dst: Tensor, num_dst: int, reduce: str = "sum", t: Tensor | float | None = None
) -> Tensor:
    """Reduce per-edge messages at their destinations, per channel; a row with no incoming edge gets zero.

    ``softmax`` is GENConv's softmax aggregation: ``w = softmax over the incoming edges of (t * msg)``,
    ``out = Σ w · msg`` (``t`` a scalar or ``[1]`` tensor, differentiable; default 1).

    Shapes:
        msg: ``[E, C]``; dst: ``[E]``; returns ``[num_dst, C]``.
    """
    _check_reduce(reduce)
    c = msg.shape[1]
    zeros = msg.new_zeros(num_dst, c)
    if reduce in ("sum", "mean"):
        out = zeros.index_add(0, dst, msg)
        if reduce == "mean":
            deg = torch.bincount(dst, minlength=num_dst).clamp_(min=1).to(msg.dtype)
            out = out / deg.unsqueeze(1)
        return out
    index = dst.unsqueeze(1).expand(-1, c)
    if reduce == "max":
        return zeros.scatter_reduce(0, index, msg, "amax", include_self=False)
    logits = msg * (1.0 if t is None else t)
    top = zeros.scatter_reduce(0, index, logits.detach(), "amax", include_self=False)
    e = (logits - top.index_select(0, dst)).exp()
    alpha = e / zeros.index_add(0, dst, e).index_select(0, dst)
    return zeros.index_add(0, dst, alpha * msg)


def _table_reduce(g: Tensor, neighbors: NeighborTable, num_src: int, reduce: str, t: Tensor | float) -> Tensor:
    """Reduce gathered slot messages ``g [T, K, C]`` (zero in unused slots) over the slot axis."""
    k = g.shape[1]
    if k == 1:
        return g[:, 0]
    if reduce == "sum":
        return g.sum(1)
    if neighbors.complete and reduce != "softmax":
        return g.mean(1) if reduce == "mean" else g.amax(1)
    if reduce in ("mean", "max"):
        used = neighbors.table < num_src
    if reduce == "mean":
        return g.sum(1) / used.sum(1, keepdim=True).clamp(min=1).to(g.dtype)
    if reduce == "max":
        top = g.masked_fill(~used.unsqueeze(-1), float("-inf")).amax(1)
        return torch.where(used.any(1, keepdim=True), top, 0.0)
    if k == 2 and neighbors.full is not None:
        g0, g1 = g.unbind(1)
        d = g0 - g1
        a = torch.sigmoid(d * t + neighbors.full)
        return g1 + a * d
    logits = (g * t).masked_fill(~neighbors.valid.unsqueeze(-1), float("-inf"))
    return (torch.softmax(logits, dim=1) * g).sum(1)


def neighbor_aggregate(
    x: Tensor,
    neighbors: NeighborTable,
    reduce: str = "sum",
    *,
    weight: Tensor | None = None,
    edge_emb: Tensor | None = None,
    message=None,
    t: Tensor | float | None = None,
    dst_term: Tensor | None = None,
) -> Tensor:
    """Aggregate typed messages over a :class:`NeighborTable` (segments, dense table or edge-wise: the table's form
    picks the path).

    The message of edge ``u → v`` of relation ``r`` is ``message(x[u] @ weight[r] + edge_emb[r] + dst_term[v])``
    (each part optional).  Without ``dst_term``, an untyped table (``etype`` ``None``: every edge relation 0)
    computes messages once per source row and gathers them; otherwise they are computed per edge (per slot).

    Args:
        x: ``[S, C]`` source rows.
        neighbors: from :func:`build_neighbors` / :func:`dense_table`.
        reduce: ``"sum"``, ``"mean"``, ``"max"`` or ``"softmax"`` (per channel, inverse temperature ``t``).
        weight: ``[R, C, C']`` per-relation transform.
        edge_emb: ``[R, C']`` per-relation embedding added to the message (GENConv with edge features).
        message: a function applied to every message, elementwise along the last axis (it is given ``[E, C']``
            or ``[T, K, C']``; GENConv: ``relu(m) + eps``).
        t: softmax inverse temperature (scalar or ``[1]``, differentiable; default 1).
        dst_term: ``[T, C']`` added to the message of every edge into target ``v`` (row ``v``).

    Returns:
        ``[T, C']``; a target with no in-neighbour gets zero.
    """
    _check_reduce(reduce)
    t = 1.0 if t is None else t
    if dst_term is not None and dst_term.shape[0] != neighbors.num_nodes:
        raise ValueError(f"dst_term must have one row per target ({neighbors.num_nodes}), got {dst_term.shape[0]}")
    if neighbors.segment:
        return _segment_aggregate(x, neighbors, reduce, weight, edge_emb, message, t, dst_term)
    if not neighbors.dense:
        m = relational_messages(x, neighbors.src, neighbors.etype, weight, edge_emb)
        if dst_term is not None:
            m = m + dst_term.index_select(0, neighbors.dst)
        if message is not None:
            m = message(m)
        return scatter_aggregate(m, neighbors.dst, neighbors.num_nodes, reduce, t)
    table = neighbors.table
    n, k = table.shape
    s = x.shape[0]
    if neighbors.etype is None and dst_term is None:
        m = _node_messages(x, weight, edge_emb)
        if message is not None:
            m = message(m)
        m_pad = torch.cat([m, m.new_zeros(1, m.shape[1])], 0)
        g = m_pad.index_select(0, table.reshape(-1)).view(n, k, -1)
    elif neighbors.etype is None:  # untyped with a target term: transform per row, combine per slot
        m = _node_messages(x, weight, edge_emb)
        g = torch.cat([m, m.new_zeros(1, m.shape[1])], 0).index_select(0, table.reshape(-1)).view(n, k, -1)
        g = g + dst_term.unsqueeze(1)
        if message is not None:
            g = message(g)
        if not neighbors.complete:
            g = torch.where((table < s).unsqueeze(-1), g, 0.0)  # unused slots carry no message
    else:
        etype = neighbors.etype
        used = table < s
        if weight is not None:
            r, c, c_out = weight.shape
            xw = torch.mm(x, weight.permute(1, 0, 2).reshape(c, r * c_out)).view(-1, c_out)
            rows = torch.where(used, table * r + etype, s * r)
            g = torch.cat([xw, xw.new_zeros(1, c_out)], 0).index_select(0, rows.reshape(-1)).view(n, k, c_out)
        else:
            g = torch.cat([x, x.new_zeros(1, x.shape[1])], 0).index_select(0, table.reshape(-1)).view(n, k, -1)
        if edge_emb is not None:
            g = g + edge_emb.index_select(0, etype.reshape(-1)).view(n, k, -1)
        if dst_term is not None:
            g = g + dst_term.unsqueeze(1)
        if message is not None:
            g = message(g)
        g = torch.where(used.unsqueeze(-1), g, 0.0)  # unused slots carry no message
    return _table_reduce(g, neighbors, s, reduce, t)


def _segment_aggregate(
    x: Tensor,
    neighbors: NeighborTable,
    reduce: str,
    weight: Tensor | None,
    edge_emb: Tensor | None,
    message,
    t: Tensor | float,
    dst_term: Tensor | None,
) -> Tensor:
    """The segment form: every slot used, so the reduction runs on a ``[T, K, C']`` view of the messages."""
    n, k = neighbors.num_nodes, neighbors.segment
    if x.shape[0] != n * k:
        raise ValueError(f"{x.shape[0]} rows do not split into {n} segments of {k}")
    g = _node_messages(x, weight, edge_emb).view(n, k, -1)
    if dst_term is not None:
        g = g + dst_term.unsqueeze(1)
    if message is not None:
        g = message(g)
    if reduce == "sum":
        return g.sum(1)
    if reduce == "mean":
        return g.mean(1)
    if reduce == "max":
        return g.amax(1)
    return (torch.softmax(g * t, dim=1) * g).sum(1)


def relational_aggregate(
    x: Tensor,
    edge_index: Tensor,
    edge_type: Tensor | None = None,
    reduce: str = "sum",
    *,
    weight: Tensor | None = None,
    edge_emb: Tensor | None = None,
    message=None,
    t: Tensor | float | None = None,
    dst_term: Tensor | None = None,
    num_dst: int | None = None,
    max_dense: int = 8,
) -> Tensor:
    """Aggregate typed-edge messages at the destinations:
    ``out[v] = reduce_{(u → v, r)} message(x[u] @ W_r + e_r + d[v])``.

    Sum (and mean) of a plain per-relation transform is :func:`relational_matmul` (the sparse-convolution fast
    path); everything else goes through :func:`build_neighbors` and :func:`neighbor_aggregate` (a dense fan-in
    table up to in-degree ``max_dense``, edge-wise scatters above it).  Build the table once and call
    :func:`neighbor_aggregate` directly when several layers share the edges.

    Shapes:
        x: ``[N, C]``; edge_index: ``[2, E]``; edge_type: ``[E]`` (``None``: relation 0); weight:
        ``[R, C, C']``; edge_emb: ``[R, C']``; dst_term (d): ``[num_dst, C']``; returns ``[num_dst (default N), C']``.
    """
    _check_reduce(reduce)
    n_dst = x.shape[0] if num_dst is None else num_dst
    plain = edge_emb is None and message is None and dst_term is None
    if reduce in ("sum", "mean") and weight is not None and plain:
        et = edge_type if edge_type is not None else torch.zeros_like(edge_index[0])
        out = relational_message_passing(x, weight, edge_index, et, n_dst)
        if reduce == "mean":
            deg = torch.bincount(edge_index[1], minlength=n_dst).clamp_(min=1).to(out.dtype)
            out = out / deg.unsqueeze(1)
        return out
    nb = build_neighbors(edge_index, n_dst, max_dense, edge_type, num_src=x.shape[0])
    return neighbor_aggregate(x, nb, reduce, weight=weight, edge_emb=edge_emb, message=message, t=t, dst_term=dst_term)
