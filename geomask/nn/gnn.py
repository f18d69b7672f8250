"""GCN / GIN / GAT encoders with the DeepGCN interface, for the "holds across GNNs" comparison.

Each layer is a pre-norm residual block, like :class:`~geomask.nn.deepgcn.ResPlusBlock`:

.. math::
    \\mathbf{x}' = \\mathbf{x} + \\mathrm{Conv}\\big(\\mathrm{Dropout}(\\mathrm{ReLU}(\\mathrm{LayerNorm}(
    \\mathbf{x}))), \\mathcal{E}\\big)

with ``Conv`` one of PyG's ``GCNConv``, ``GINConv`` (2-layer MLP) or ``GATConv`` (``heads`` heads of
``H / heads`` channels, concatenated).  Messages flow along ``edge_index`` (fanin → gate).
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.nn import GATConv, GCNConv, GINConv

from geomask.errors import UsageError
from geomask.nn.aggregation import NeighborTable

__all__ = ["GNN_KINDS", "GNNEncoder"]

GNN_KINDS = ("gcn", "gin", "gat")


def _conv(kind: str, hidden: int, heads: int) -> nn.Module:
    if kind == "gcn":
        return GCNConv(hidden, hidden)
    if kind == "gin":
        return GINConv(nn.Sequential(nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, hidden)))
    if kind == "gat":
        if hidden % heads:
            raise ValueError(f"hidden ({hidden}) must be divisible by heads ({heads}) for GAT")
        return GATConv(hidden, hidden // heads, heads=heads)
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
        for conv, norm in zip(self.convs, self.norms):
            h = F.dropout(F.relu(norm(x)), self.dropout, self.training)
            x = x + conv(h, edge_index)
        return x
