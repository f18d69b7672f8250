"""GCN / GIN / GAT encoders with the DeepGCN interface, for the "holds across GNNs" comparison.

Each layer is a pre-norm residual block, like :class:`~geomask.nn.deepgcn.ResPlusBlock`:

.. math::
    \\mathbf{x}' = \\mathbf{x} + \\mathrm{Conv}\\big(\\mathrm{Dropout}(\\mathrm{ReLU}(\\mathrm{LayerNorm}(
    \\mathbf{x}))), \\mathcal{E}\\big)

with ``Conv`` one of PyG's ``GCNConv``, ``GINConv`` (2-layer MLP) or a GAT layer (``heads`` heads of ``H / heads``
channels, concatenated; :class:`geomask.nn.gat.GATConv`, PyG ``GATConv``'s semantics and parameter names on sorted
edges, the graph sorted once per forward for every layer).  Messages flow along ``edge_index`` (fanin → gate).
"""

from __future__ import annotations

import warnings
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.nn import GCNConv, GINConv

from geomask.errors import UsageError
from geomask.nn.aggregation import NeighborTable
from geomask.nn.dropout import dropout
from geomask.nn.gat import GATConv as FastGATConv
from geomask.nn.gat import gat_graph
from geomask.nn.norm_act import norm_prelu

__all__ = ["FEATURE_GNN_KINDS", "GNN_KINDS", "FeatureGNN", "GINGraph", "GNNEncoder", "gin_graph", "gin_sum"]

GNN_KINDS = ("gcn", "gin", "gat")


def _conv(kind: str, hidden: int, heads: int) -> nn.Module:
    if kind == "gcn":
        return GCNConv(hidden, hidden)
    if kind == "gin":
        return GINConv(nn.Sequential(nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, hidden)))
    if kind == "gat":
        if hidden % heads:
            raise ValueError(f"hidden ({hidden}) must be divisible by heads ({heads}) for GAT")
        return FastGATConv(hidden, hidden // heads, heads=heads)
    raise ValueError(f"unknown GNN kind {kind!r}; valid: {', '.join(GNN_KINDS)}")


class GNNEncoder(nn.Module):
    """A stack of residual pre-norm GCN, GIN or GAT layers.

    Args:
        kind: ``"gcn"``, ``"gin"`` or ``"gat"``.
        hidden: H.
        layers: number of layers.
        dropout: dropout before each convolution.
        heads: attention heads (GAT only).

    Shapes:
        x ``[N, H]``, edge_index ``[2, E]`` → ``[N, H]``.
    """

    def __init__(self, kind: str = "gcn", hidden: int = 64, layers: int = 7, dropout: float = 0.0, heads: int = 4):
        super().__init__()
        if layers < 1:
            raise ValueError(f"layers must be >= 1, got {layers}")
        self.kind = kind
        self.hidden = hidden
        self.dropout = dropout
        self.convs = nn.ModuleList(_conv(kind, hidden, heads) for _ in range(layers))
        self.norms = nn.ModuleList(nn.LayerNorm(hidden) for _ in range(layers))

    def forward(self, x: Tensor, edge_index: Tensor, neighbors: NeighborTable | None = None) -> Tensor:
        """Encode node features (``neighbors`` is accepted for interface parity and unused).

        Raises:
            UsageError: ``neighbors`` carries edge types (inversions under ``not_nodes: attr``), which these layers
                cannot read: refused rather than dropped.
        """
        if neighbors is not None and neighbors.etype is not None:
            raise UsageError(
                f"encoder {self.kind!r} reads no edge types (the graphs carry inversions as edge_type): use "
                "encoder deepgcn with num_relations=2, or not_nodes per_edge / shared"
            )
        graph = gat_graph(edge_index, x.shape[0]) if self.kind == "gat" else None  # sorted once for every layer
        for conv, norm in zip(self.convs, self.norms):
            h = F.dropout(F.relu(norm(x)), self.dropout, self.training)
            x = x + (conv(h, edge_index) if graph is None else conv(h, edge_index, graph))
        return x


class GINGraph(NamedTuple):
    """The sum aggregation of a GIN layer as two CSR matrices over ``N`` nodes, built once per forward.

    ``adj[i, j]`` counts the edges ``j → i`` (repeated edges summed) plus one on the diagonal, so ``adj @ h`` is
    ``h_i + Σ_{j → i} h_j`` (GIN's ``(1 + ε) h + Σ`` with ``ε = 0``); ``adj_t`` is its transpose, for the
    backward pass.
    """

    adj: Tensor
    adj_t: Tensor


def _csr(row: Tensor, col: Tensor, n: int, dtype: torch.dtype) -> Tensor:
    key, count = torch.unique(row * n + col, return_counts=True)  # sorted by (row, col); repeats counted
    r = torch.div(key, n, rounding_mode="floor")
    crow = torch.zeros(n + 1, dtype=torch.long, device=row.device)
    crow[1:] = torch.bincount(r, minlength=n).cumsum(0)
    with warnings.catch_warnings():  # "sparse CSR support is in beta" (torch 2.x): the product used here is stable
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse_csr_tensor(crow, key - r * n, count.to(dtype), (n, n), check_invariants=False)


def gin_graph(edge_index: Tensor, num_nodes: int, dtype: torch.dtype = torch.float32) -> GINGraph:
    """:class:`GINGraph` of ``edge_index`` (messages ``edge_index[0] → edge_index[1]``) with self-loops added.

    Shapes:
        edge_index ``[2, E]`` → two ``[N, N]`` sparse CSR matrices with ``nnz ≤ E + N``.
    """
    loops = torch.arange(num_nodes, device=edge_index.device)
    src, dst = torch.cat([edge_index[0], loops]), torch.cat([edge_index[1], loops])
    return GINGraph(_csr(dst, src, num_nodes, dtype), _csr(src, dst, num_nodes, dtype))


class _GINSum(torch.autograd.Function):
    @staticmethod
    def forward(ctx, h: Tensor, adj: Tensor, adj_t: Tensor) -> Tensor:  # type: ignore[override]
        ctx.adj_t = adj_t
        return torch.sparse.mm(adj, h)

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        return torch.sparse.mm(ctx.adj_t, grad.contiguous()), None, None


def gin_sum(h: Tensor, graph: GINGraph) -> Tensor:
    """``h_i + Σ_{j → i} h_j`` as one sparse-dense product (its gradient: the transposed product).

    Shapes:
        h ``[N, C]`` → ``[N, C]``.
    """
    return _GINSum.apply(h.contiguous(), graph.adj, graph.adj_t)


FEATURE_GNN_KINDS = ("gat", "gin")


def _norm(norm: str | None, dim: int) -> nn.Module:
    if norm in (None, "none"):
        return nn.Identity()
    if norm == "batchnorm":
        return nn.BatchNorm1d(dim)
    if norm == "layernorm":
        return nn.LayerNorm(dim)
    raise ValueError(f"unknown norm {norm!r}; valid: none, batchnorm, layernorm")


class FeatureGNN(nn.Module):
    """GraphMAE's GAT / GIN stack over raw node features: ``in_dim`` → ``hidden`` … → ``out_dim``.

    Layer ``l`` computes

    .. math::
        \\mathbf{h}^{(l+1)} = \\sigma\\big(\\mathrm{Norm}(\\mathrm{Conv}(\\mathrm{Dropout}(\\mathbf{h}^{(l)}),
        \\mathcal{E}) + \\mathbf{W}_r \\mathbf{h}^{(l)})\\big)

    with ``Conv`` a GAT layer (:class:`geomask.nn.gat.GATConv`: PyG ``GATConv``'s semantics and parameter names, so
    older checkpoints load; ``heads`` heads of ``hidden / heads`` channels, concatenated; self-loops added;
    attention dropout ``attn_drop``; the sorted edges are built once per call and shared by the layers) or PyG's
    ``GINConv`` (a 2-layer MLP with the norm inside, sum aggregation; parameter names kept, so older checkpoints
    load).  On CPU the GIN layers run a faster path with the same results to float rounding: the sum as one
    sparse CSR product built once per call (:func:`gin_graph`, :func:`gin_sum`), summed on the narrower side of
    the MLP's first linear layer (the decoder's ``H → F`` sums ``F``-wide rows: ``W Σ h = Σ W h``), and batch norm +
    PReLU fused in training (:func:`geomask.nn.norm_act.norm_prelu`); other devices, or a nonzero ``ε``, run PyG's
    ``GINConv``.  The residual term only with ``residual`` (``W_r`` the identity where the widths agree), ``σ``
    PReLU.  The last layer maps to ``out_dim`` with ``out_heads`` heads (averaged for GAT) and keeps its norm and
    activation only when ``encoding`` (GraphMAE's encoder; its decoder is one plain layer).

    Args:
        kind: ``"gat"`` or ``"gin"``.
        in_dim: F, the input width.
        hidden: H, the width of the inner layers (all heads together).
        out_dim: the output width.
        layers: number of layers (>= 1).
        heads: attention heads of the inner layers (GAT).
        out_heads: attention heads of the last layer (GAT; concatenated when ``encoding``, averaged otherwise).
        in_drop: dropout on each layer's input.
        attn_drop: attention dropout (GAT).
        residual: add the (projected) input of every layer.
        norm: ``None``, ``"batchnorm"`` or ``"layernorm"``.
        encoding: the last layer keeps its norm and activation.

    Shapes:
        x ``[N, F]``, edge_index ``[2, E]`` → ``[N, out_dim]``.
    """

    def __init__(
        self,
        kind: str,
        in_dim: int,
        hidden: int,
        out_dim: int,
        layers: int = 2,
        heads: int = 4,
        out_heads: int = 1,
        in_drop: float = 0.2,
        attn_drop: float = 0.1,
        residual: bool = False,
        norm: str | None = None,
        encoding: bool = True,
    ):
        super().__init__()
        if kind not in FEATURE_GNN_KINDS:
            raise ValueError(f"unknown feature GNN kind {kind!r}; valid: {', '.join(FEATURE_GNN_KINDS)}")
        if layers < 1:
            raise ValueError(f"layers must be >= 1, got {layers}")
        self.kind, self.in_drop, self.encoding = kind, in_drop, encoding
        dims = [in_dim] + [hidden] * (layers - 1) + [out_dim]
        self.convs, self.res, self.norms, self.acts = nn.ModuleList(), nn.ModuleList(), nn.ModuleList(), nn.ModuleList()
        for i, (a, b) in enumerate(zip(dims[:-1], dims[1:])):
            last = i == layers - 1
            if kind == "gat":
                h = out_heads if last else heads
                concat = not last or encoding
                if concat and b % h:
                    raise ValueError(f"width {b} must be divisible by heads ({h}) for GAT")
                conv = FastGATConv(a, b // h if concat else b, heads=h, concat=concat, dropout=attn_drop)
            else:
                mlp = nn.Sequential(nn.Linear(a, b), _norm(norm, b), nn.PReLU(), nn.Linear(b, b))
                conv = GINConv(mlp, train_eps=False)
            self.convs.append(conv)
            if residual:
                self.res.append(nn.Identity() if a == b else nn.Linear(a, b, bias=False))
            else:
                self.res.append(None)
            keep = not last or encoding
            self.norms.append(_norm(norm, b) if keep else nn.Identity())
            self.acts.append(nn.PReLU() if keep else nn.Identity())

    def forward(self, x: Tensor, edge_index: Tensor) -> Tensor:
        if self.kind == "gat":
            graph = gat_graph(edge_index, x.shape[0])
        elif x.device.type == "cpu" and not any(bool(conv.eps) for conv in self.convs):
            graph = gin_graph(edge_index, x.shape[0], x.dtype)  # built once for every layer
        else:  # PyG's GINConv (other devices, or ε ≠ 0 loaded from a checkpoint)
            graph = None
        fast = isinstance(graph, GINGraph)
        for conv, res, norm, act in zip(self.convs, self.res, self.norms, self.acts):
            h = dropout(x, self.in_drop, self.training)  # geomask's cheap-mask dropout (p to 1/65536)
            if fast:
                out = self._gin(conv.nn, h, graph)
            else:
                out = conv(h, edge_index, graph) if graph is not None else conv(h, edge_index)
            if res is not None:
                out = out + res(h)
            x = norm_prelu(out, norm, act) if fast else act(norm(out))  # fast: BatchNorm + PReLU fused in training
        return x

    @staticmethod
    def _gin(mlp: nn.Sequential, h: Tensor, graph: GINGraph) -> Tensor:
        """``mlp(h_i + Σ_j h_j)``, summing on the narrower side of the first linear layer (``W (Σ h) = Σ W h``)."""
        lin0, norm, act, lin1 = mlp
        if lin0.out_features < lin0.in_features:  # the decoder's H → F: aggregate F-wide rows
            z = gin_sum(F.linear(h, lin0.weight), graph)
            z = z + lin0.bias if lin0.bias is not None else z
        else:
            z = lin0(gin_sum(h, graph))
        return lin1(norm_prelu(z, norm, act))
