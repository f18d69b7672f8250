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

import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.nn import GCNConv, GINConv

from geomask.errors import UsageError
from geomask.nn.aggregation import NeighborTable
from geomask.nn.dropout import dropout
from geomask.nn.gat import GATConv as FastGATConv
from geomask.nn.gat import gat_graph

__all__ = ["FEATURE_GNN_KINDS", "GNN_KINDS", "FeatureGNN", "GNNEncoder"]

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
    ``GINConv`` (a 2-layer MLP with the norm inside, sum aggregation), the
    residual term only with ``residual`` (``W_r`` the identity where the widths agree), ``σ`` PReLU.  The last
    layer maps to ``out_dim`` with ``out_heads`` heads (averaged for GAT) and keeps its norm and activation only
    when ``encoding`` (GraphMAE's encoder; its decoder is one plain layer).

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
        graph = gat_graph(edge_index, x.shape[0]) if self.kind == "gat" else None
        for conv, res, norm, act in zip(self.convs, self.res, self.norms, self.acts):
            h = dropout(x, self.in_drop, self.training)  # geomask's cheap-mask dropout (p to 1/65536)
            out = conv(h, edge_index, graph) if graph is not None else conv(h, edge_index)
            if res is not None:
                out = out + res(h)
            x = act(norm(out))
        return x
