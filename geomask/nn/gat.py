"""Graph attention (GAT, Veličković et al., ICLR 2018) on CSR-sorted edges with compiled aggregation loops.

PyG's ``GATConv`` semantics, parameters and parameter names (``lin.weight``, ``att_src``, ``att_dst``, ``bias``,
``res.weight``), so its state dicts load as they are:

.. math::
    \\alpha^h_{ij} = \\mathrm{softmax}_{j \\in \\mathcal{N}(i) \\cup \\{i\\}}\\Big(\\mathrm{LeakyReLU}_{0.2}\\big(
    \\mathbf{a}^h_{src} \\cdot \\mathbf{W}^h \\mathbf{x}_j
    + \\mathbf{a}^h_{dst} \\cdot \\mathbf{W}^h \\mathbf{x}_i\\big)\\Big),
    \\qquad
    \\mathbf{x}'_i = \\big\\Vert_h \\text{ or } \\mathrm{mean}_h \\sum_{j} \\mathrm{Dropout}(\\alpha^h_{ij})\\,
    \\mathbf{W}^h \\mathbf{x}_j \\;+\\; \\mathbf{W}_{r} \\mathbf{x}_i \\;+\\; \\mathbf{b}

(the residual ``W_r`` only with ``residual``).  Existing self-loops are dropped and one per node added, as PyG
does; multi-edges count once each.

Why not the relational kernel (:mod:`geomask.ops.relational`): its softmax weighs each channel of a message by that
channel's own value (GENConv), while GAT's weight is one scalar per edge and head computed from both ends, and a
citation graph's in-degree (168 on Cora) is far above its dense-table limit.  So the layer is batched index ops on
edges sorted by destination (:class:`GATGraph`, built once per batch and shared by every layer): the attention
logits are two ``[N, H]`` projections gathered per edge, the softmax is one segment max / exp / segment sum over
``[E, H]``, and the weighted sum ``out[i, h] = Σ_e α[e, h] x[src[e], h]`` (and its backward: the transposed sum
and a per-edge dot product for ``∂α``) runs as compiled loops over the CSR rows (numba, GIL released, row blocks
split over the intra-op threads) without materialising the ``[E, H, C]`` messages PyG gathers.  Elsewhere (GPU,
half precision) it is ``index_select`` → multiply → ``index_add``.  When a head is wider than the input
(GraphMAE's decoder: 512 → 1,433), the input is aggregated first and projected after
(``W Σ α x = Σ α W x``), with the logits from ``x (W^h)^T a^h``.

Shapes:
    x ``[N, F]``, edge_index ``[2, E]`` → ``[N, H·C]`` (concat) or ``[N, C]`` (mean).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numba
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from geomask.nn.dropout import dropout
from geomask.ops.padded_linear import linear_padded

GAT_INITS = ("glorot", "xavier_relu")
"""Initialisation schemes of :meth:`GATConv.reset_parameters`: PyG's, and DGL's / GraphMAE's."""

__all__ = ["GAT_INITS", "GATConv", "GATGraph", "attention_spmm", "gat_graph", "pyg_gat_state"]


@dataclass(frozen=True, eq=False)
class GATGraph:
    """Edges sorted by destination (CSR) with the transposed order (CSC) for the backward pass.

    Args:
        num_nodes: N.
        rowptr: ``[N + 1]`` edges into node ``i`` are ``rowptr[i]:rowptr[i + 1]``.
        src, dst: ``[E]`` endpoints, ascending ``dst``.
        colptr: ``[N + 1]`` the edges out of node ``j`` are ``perm[colptr[j]:colptr[j + 1]]``.
        perm: ``[E]`` edge ids ordered by source.
    """

    num_nodes: int
    rowptr: Tensor
    src: Tensor
    dst: Tensor
    colptr: Tensor
    perm: Tensor

    @property
    def num_edges(self) -> int:
        return int(self.src.numel())


def _ptr(index: Tensor, n: int) -> Tensor:
    ptr = index.new_zeros(n + 1)
    torch.cumsum(torch.bincount(index, minlength=n), 0, out=ptr[1:])
    return ptr


def gat_graph(edge_index: Tensor, num_nodes: int, add_self_loops: bool = True) -> GATGraph:
    """Sort ``edge_index`` (source → target) by target; with ``add_self_loops`` drop its self-loops and add one
    per node (PyG's ``remove_self_loops`` + ``add_self_loops``).

    Raises:
        ValueError: ``edge_index`` is not ``[2, E]`` or names a node outside ``[0, num_nodes)``.
    """
    if edge_index.dim() != 2 or edge_index.size(0) != 2:
        raise ValueError(f"edge_index must be [2, E], got {tuple(edge_index.shape)}")
    src, dst = edge_index[0].long(), edge_index[1].long()
    if src.numel() and (int(edge_index.min()) < 0 or int(edge_index.max()) >= num_nodes):
        raise ValueError(f"edge_index holds node ids outside [0, {num_nodes})")
    if add_self_loops:
        keep = src != dst
        loops = torch.arange(num_nodes, device=src.device)
        src, dst = torch.cat([src[keep], loops]), torch.cat([dst[keep], loops])
    order = torch.argsort(dst, stable=True)
    src, dst = src[order].contiguous(), dst[order].contiguous()
    perm = torch.argsort(src, stable=True)
    return GATGraph(num_nodes, _ptr(dst, num_nodes), src, dst, _ptr(src, num_nodes), perm)


# ---- compiled loops (rows r0..r1 of the output; serial inside a block, blocks are disjoint) ----


@numba.njit(cache=True, nogil=True, fastmath=True)
def _spmm(rowptr, col, alpha, x, out, r0, r1):  # out[i, h] = Σ_e alpha[e, h] x[col[e], h]
    heads, c = x.shape[1], x.shape[2]
    for i in range(r0, r1):
        for h in range(heads):
            for k in range(c):
                out[i, h, k] = 0.0
        for e in range(rowptr[i], rowptr[i + 1]):
            j = col[e]
            for h in range(heads):
                a = alpha[e, h]
                for k in range(c):
                    out[i, h, k] += a * x[j, h, k]


@numba.njit(cache=True, nogil=True, fastmath=True)
def _spmm_t(colptr, perm, dst, alpha, g, out, r0, r1):  # out[j, h] = Σ_{e: src[e] = j} alpha[e, h] g[dst[e], h]
    heads, c = g.shape[1], g.shape[2]
    for j in range(r0, r1):
        for h in range(heads):
            for k in range(c):
                out[j, h, k] = 0.0
        for p in range(colptr[j], colptr[j + 1]):
            e = perm[p]
            i = dst[e]
            for h in range(heads):
                a = alpha[e, h]
                for k in range(c):
                    out[j, h, k] += a * g[i, h, k]


@numba.njit(cache=True, nogil=True, fastmath=True)
def _sddmm(rowptr, col, g, x, out, r0, r1):  # out[e, h] = g[dst[e], h] · x[src[e], h]
    heads, c = x.shape[1], x.shape[2]
    for i in range(r0, r1):
        for e in range(rowptr[i], rowptr[i + 1]):
            j = col[e]
            for h in range(heads):
                s = 0.0
                for k in range(c):
                    s += g[i, h, k] * x[j, h, k]
                out[e, h] = s


_POOLS: dict[int, ThreadPoolExecutor] = {}
_PARALLEL_MACS = 2_000_000  # split the rows over the intra-op threads above this many multiply-adds


def _run(kernel, ptr: Tensor, macs: int, *args) -> None:
    """``kernel(ptr, *args, r0, r1)`` over all rows, in blocks of about equal edge counts on the intra-op threads."""
    n = ptr.numel() - 1
    workers = min(torch.get_num_threads(), 8)
    if workers <= 1 or macs < _PARALLEL_MACS or n < 2 * workers:
        kernel(ptr.numpy(), *args, 0, n)
        return
    if workers not in _POOLS:
        _POOLS[workers] = ThreadPoolExecutor(workers, thread_name_prefix="geomask-gat")
    targets = torch.linspace(0, int(ptr[-1]), workers + 1)[1:-1].round().to(ptr.dtype)
    cuts = [0, *torch.searchsorted(ptr, targets).tolist(), n]
    p = ptr.numpy()
    futures = [_POOLS[workers].submit(kernel, p, *args, a, b) for a, b in zip(cuts[:-1], cuts[1:]) if b > a]
    for f in futures:
        f.result()


class _AttentionSpmm(torch.autograd.Function):
    @staticmethod
    def forward(ctx, alpha: Tensor, x: Tensor, graph: GATGraph) -> Tensor:  # type: ignore[override]
        alpha, x = alpha.contiguous(), x.contiguous()
        out = x.new_empty(graph.num_nodes, x.shape[1], x.shape[2])
        macs = graph.num_edges * x.shape[1] * x.shape[2]
        _run(_spmm, graph.rowptr, macs, graph.src.numpy(), alpha.numpy(), x.numpy(), out.numpy())
        ctx.save_for_backward(alpha, x)
        ctx.graph = graph
        return out

    @staticmethod
    def backward(ctx, grad_out: Tensor):  # type: ignore[override]
        alpha, x = ctx.saved_tensors
        graph: GATGraph = ctx.graph
        g = grad_out.contiguous()
        macs = graph.num_edges * x.shape[1] * x.shape[2]
        grad_alpha = grad_x = None
        if ctx.needs_input_grad[0]:
            grad_alpha = alpha.new_empty(alpha.shape)
            _run(_sddmm, graph.rowptr, macs, graph.src.numpy(), g.numpy(), x.numpy(), grad_alpha.numpy())
        if ctx.needs_input_grad[1]:
            grad_x = torch.empty_like(x)
            args = (graph.perm.numpy(), graph.dst.numpy(), alpha.numpy(), g.numpy(), grad_x.numpy())
            _run(_spmm_t, graph.colptr, macs, *args)
        return grad_alpha, grad_x, None


def attention_spmm(alpha: Tensor, x: Tensor, graph: GATGraph) -> Tensor:
    """``out[i, h] = Σ_{e into i} alpha[e, h] · x[src[e], h]``, differentiable in ``alpha`` and ``x``.

    Shapes:
        alpha: ``[E, H]`` (edges in ``graph``'s order); x: ``[N, H, C]``; returns ``[N, H, C]``.
    """
    cpu = x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64) and alpha.dtype == x.dtype
    if cpu and graph.src.device.type == "cpu":
        return _AttentionSpmm.apply(alpha, x, graph)
    msg = x.index_select(0, graph.src) * alpha.unsqueeze(-1)
    return x.new_zeros(graph.num_nodes, x.shape[1], x.shape[2]).index_add(0, graph.dst, msg)


def _segment_softmax(logits: Tensor, graph: GATGraph) -> Tensor:
    """Softmax of ``[E, H]`` logits over the edges into each node (a node without edges has none to weigh)."""
    index = graph.dst.unsqueeze(1).expand_as(logits)
    top = logits.new_full((graph.num_nodes, logits.shape[1]), float("-inf"))
    top = top.scatter_reduce(0, index, logits.detach(), "amax", include_self=True)
    e = (logits - top.index_select(0, graph.dst)).exp()
    total = e.new_zeros(graph.num_nodes, logits.shape[1]).index_add(0, graph.dst, e)
    return e / total.index_select(0, graph.dst)


class GATConv(nn.Module):
    """A graph attention layer with PyG ``GATConv``'s semantics and parameter names.

    Args:
        in_channels: F.
        out_channels: C, per head.
        heads: H.
        concat: concatenate the heads (``[N, H·C]``), else average them (``[N, C]``).
        negative_slope: of the LeakyReLU on the logits.
        dropout: attention dropout (on the normalised weights, training only; :func:`geomask.nn.dropout.dropout`,
            the probability rounded to a multiple of 1/65536).
        add_self_loops: replace existing self-loops by one per node.
        bias: add a learnable bias.
        residual: add ``W_r x`` (a bias-free linear map, as PyG).

    Shapes:
        x ``[N, F]``, edge_index ``[2, E]`` (source → target), optional prebuilt :class:`GATGraph` →
        ``[N, H·C]`` or ``[N, C]``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        heads: int = 1,
        concat: bool = True,
        negative_slope: float = 0.2,
        dropout: float = 0.0,
        add_self_loops: bool = True,
        bias: bool = True,
        residual: bool = False,
    ):
        super().__init__()
        if in_channels < 1 or out_channels < 1 or heads < 1:
            raise ValueError(
                f"in_channels, out_channels and heads must be >= 1, got {in_channels, out_channels, heads}"
            )
        self.in_channels, self.out_channels, self.heads = in_channels, out_channels, heads
        self.concat, self.negative_slope, self.dropout = concat, negative_slope, dropout
        self.add_self_loops = add_self_loops
        total = out_channels * (heads if concat else 1)
        self.lin = nn.Linear(in_channels, heads * out_channels, bias=False)
        self.att_src = nn.Parameter(torch.empty(1, heads, out_channels))
        self.att_dst = nn.Parameter(torch.empty(1, heads, out_channels))
        if residual:
            self.res = nn.Linear(in_channels, total, bias=False)
        else:
            self.register_module("res", None)
        if bias:
            self.bias = nn.Parameter(torch.empty(total))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self, init: str = "glorot") -> None:
        """Initialise the parameters (zero bias in both schemes).

        Args:
            init: ``"glorot"``: PyG's Glorot-uniform weights and attention vectors (fans ``H + C`` for the
                ``[1, H, C]`` vectors); ``"xavier_relu"``: DGL's ``GATConv`` and GraphMAE's (both its DGL and PyG
                code), Xavier-normal with gain :math:`\\sqrt{2}` on the projection, the residual map and the
                attention vectors (torch's fans of ``[1, H, C]``: ``H·C`` in, ``C`` out).

        Raises:
            ValueError: an unknown ``init``.
        """
        if init not in GAT_INITS:
            raise ValueError(f"unknown GAT init {init!r}; valid: {', '.join(GAT_INITS)}")
        if init == "xavier_relu":
            gain = nn.init.calculate_gain("relu")
            res = [self.res.weight] if self.res is not None else []
            for w in (self.lin.weight, self.att_src, self.att_dst, *res):
                nn.init.xavier_normal_(w, gain=gain)
        else:
            nn.init.xavier_uniform_(self.lin.weight)
            if self.res is not None:
                nn.init.xavier_uniform_(self.res.weight)
            for att in (self.att_src, self.att_dst):
                bound = math.sqrt(6.0 / (att.shape[-2] + att.shape[-1]))
                nn.init.uniform_(att, -bound, bound)
        if self.bias is not None:
            nn.init.zeros_(self.bias)

    def forward(
        self,
        x: Tensor | None,
        edge_index: Tensor,
        graph: GATGraph | None = None,
        out_rows: Tensor | None = None,
        projected: Tensor | None = None,
    ) -> Tensor:
        """``[N, F]`` → ``[N, H·C]`` (``[N, C]`` averaged); with ``out_rows`` ``[M]`` only those output rows, ``[M, ·]``
        (every node still sends its messages; a wide head projects the ``M`` aggregated rows only); with
        ``projected`` ``[N, H·C]``, ``lin(x)`` computed by the caller (e.g.
        :func:`geomask.nn.masked_input.masked_linear`; ``x`` may then be ``None``; not for a residual layer, nor a
        head wider than its input)."""
        h, c = self.heads, self.out_channels
        if projected is not None:
            if self.res is not None or c > self.in_channels:
                raise ValueError("projected input needs a layer without residual whose heads are not wider than F")
            n, f = projected.shape[0], self.in_channels
        else:
            n, f = x.shape
        if graph is None:
            graph = gat_graph(edge_index, n, self.add_self_loops)
        elif graph.num_nodes != n:
            raise ValueError(f"graph has {graph.num_nodes} nodes, x has {n} rows")
        w = self.lin.weight.view(h, c, f)
        project_after = c > f and projected is None  # aggregate the narrower input, then project
        if project_after:
            att = torch.cat([self.att_src, self.att_dst], 0)  # [2, H, C]
            proj = torch.einsum("hcf,shc->fsh", w, att).reshape(f, 2 * h)
            a = (x @ proj).view(n, 2, h)
            a_src, a_dst = a[:, 0], a[:, 1]
            msg = x.unsqueeze(1).expand(n, h, f)
        else:
            msg = (self.lin(x) if projected is None else projected).view(n, h, c)
            a = torch.einsum("nhc,shc->nsh", msg, torch.cat([self.att_src, self.att_dst], 0))
            a_src, a_dst = a[:, 0], a[:, 1]
        logits = F.leaky_relu(a_src.index_select(0, graph.src) + a_dst.index_select(0, graph.dst), self.negative_slope)
        alpha = dropout(_segment_softmax(logits, graph), self.dropout, self.training)
        out = attention_spmm(alpha, msg, graph)
        if out_rows is not None:  # e.g. GraphMAE's decoder: its loss reads the masked rows only
            out = out.index_select(0, out_rows)
            x = x.index_select(0, out_rows) if x is not None else None
            n = len(out_rows)
        if project_after:
            if h > 1:
                out = torch.bmm(out.transpose(0, 1), w.transpose(1, 2)).transpose(0, 1)
            else:  # output width padded to a multiple of 16 for the product (e.g. 1,433 features)
                out = linear_padded(out, w[0])
        out = out.reshape(n, h * c) if self.concat else out.mean(1)
        if self.res is not None:
            out = out + self.res(x)
        if self.bias is not None:
            out = out + self.bias
        return out

    def load_pyg(self, state: Mapping[str, Tensor], strict: bool = True):
        """Load a PyG ``GATConv`` state dict (:func:`pyg_gat_state` maps older PyG names)."""
        return self.load_state_dict(pyg_gat_state(state), strict=strict)

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}, heads={self.heads}, concat={self.concat}"


def pyg_gat_state(state: Mapping[str, Tensor], prefix: str = "") -> dict[str, Tensor]:
    """A PyG ``GATConv`` state dict in :class:`GATConv`'s names.

    PyG >= 2.4 uses the same names (``lin.weight``, ``att_src``, ``att_dst``, ``bias``, ``res.weight``); older
    releases named the shared projection ``lin_src`` / ``lin_dst`` (the same tensor): it becomes ``lin.weight``.
    Keys outside ``prefix`` are kept as they are.

    Raises:
        ValueError: ``lin_src`` and ``lin_dst`` differ (a bipartite layer, which :class:`GATConv` does not model).
    """
    out = dict(state)
    s, d = f"{prefix}lin_src.weight", f"{prefix}lin_dst.weight"
    if s in out:
        src = out.pop(s)
        dst = out.pop(d, src)
        if not torch.equal(src, dst):
            raise ValueError(f"{s} and {d} differ: a bipartite GATConv, not loadable into geomask's GATConv")
        out[f"{prefix}lin.weight"] = src
    return out
