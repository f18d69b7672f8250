"""GraphMAE-style baseline: mask input node features, re-mask before decoding, scaled cosine error.

Following GraphMAE (Hou et al., KDD 2022) on AIGs, whose only input feature is the gate type:
replace the type embedding of a random ``ratio`` of the nodes with a learnable ``[MASK]`` token, encode,
map to the decoder width (``enc2dec``, no bias), set the masked rows to zero again (re-mask), decode with a
light GNN and a linear layer back to the one-hot type feature, and score masked nodes with the scaled
cosine error

.. math::
    \\mathcal{L} = \\frac{1}{|M|} \\sum_{i \\in M} \\big(1 - \\cos(\\hat{\\mathbf{x}}_i, \\mathbf{x}_i)\\big)^{\\gamma}

(:class:`~geomask.losses.ScaledCosineError`, the default ``loss``; the masker is called on a
:class:`~geomask.masking.layout.RowLayout` of the nodes).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.data import Batch, Data

from geomask.losses import ScaledCosineError, masked_accuracy
from geomask.masking.base import Masker
from geomask.masking.layout import RowLayout
from geomask.methods.base import GRAPH_DATA, Method
from geomask.methods.mgvga import graph_batch_vector
from geomask.nn.aggregation import build_neighbors
from geomask.nn.heads import init_normal, mean_max_pool

__all__ = ["GraphMAE"]


class GraphMAE(Method):
    """Masked feature reconstruction of gate types.

    Args:
        encoder: ``encoder(x [N, H], edge_index, neighbors) -> [N, H]``.
        decoder: the light decoder GNN (same interface).
        hidden: H.
        num_types: number of gate types (the one-hot feature width).
        masker: chooses the masked input nodes.
        gamma: exponent of the scaled cosine error (of the default loss).
        loss: ``loss(pred [N, T], one-hot target [N, T], mask [N]) -> scalar`` (default
            :class:`~geomask.losses.ScaledCosineError` with ``gamma``).
    """

    data_kinds = GRAPH_DATA

    def __init__(
        self,
        encoder: nn.Module,
        decoder: nn.Module,
        hidden: int,
        masker: Masker,
        num_types: int = 5,
        gamma: float = 2.0,
        loss: nn.Module | None = None,
    ):
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder
        self.hidden = hidden
        self.num_types = num_types
        self.masker = masker
        self.criterion = loss if loss is not None else ScaledCosineError(gamma)
        self.type_emb = nn.Embedding(num_types, hidden)
        self.mask_token = nn.Parameter(torch.zeros(hidden))
        self.enc2dec = nn.Linear(hidden, hidden, bias=False)
        self.out = nn.Linear(hidden, num_types)
        for m in (self.type_emb, self.enc2dec, self.out):
            init_normal(m)
        nn.init.normal_(self.mask_token, 0.0, 0.02)

    def embed(self, batch: Data | Batch) -> Tensor:
        """Encoder output without masking, ``[N, H]`` (typed edges read where the graphs carry ``edge_type``)."""
        nb = build_neighbors(batch.edge_index, batch.node_type.shape[0], edge_type=getattr(batch, "edge_type", None))
        return self.encoder(self.type_emb(batch.node_type), batch.edge_index, nb)

    def graph_embed(self, batch: Data | Batch) -> Tensor:
        """Mean and max of :meth:`embed` per graph, ``[B, 2H]``."""
        b, num_graphs = graph_batch_vector(batch)
        return mean_max_pool(self.embed(batch), b, num_graphs)

    def features(self, batch: Data | Batch) -> Tensor:
        """Node embeddings of the unmasked graph, ``[N, H]`` (:meth:`embed`)."""
        return self.embed(batch)

    def loss_terms(self, batch: Data | Batch, generator: torch.Generator) -> dict[str, Tensor]:
        """``{"sce": ..., "acc": ..., "loss": ...}`` (``acc``: detached masked-type accuracy)."""
        b, num_graphs = graph_batch_vector(batch)
        node_type, edge_index = batch.node_type, batch.edge_index
        nb = build_neighbors(edge_index, node_type.shape[0], edge_type=getattr(batch, "edge_type", None))
        mask = self.masker(RowLayout(b, num_graphs), generator).unsqueeze(1)
        x = torch.where(mask, self.mask_token, self.type_emb(node_type))
        h = self.enc2dec(self.encoder(x, edge_index, nb))
        h = h.masked_fill(mask, 0.0)
        pred = self.out(self.decoder(h, edge_index, nb))
        target = F.one_hot(node_type, self.num_types).to(pred.dtype)
        m = mask.squeeze(1)
        sce = self.criterion(pred, target, m)
        return {"sce": sce, "acc": masked_accuracy(pred, node_type, m), "loss": sce}
