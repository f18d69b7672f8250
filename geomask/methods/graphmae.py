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

The same method trains on generic graphs (data kind ``graphs``: Cora, CiteSeer, TU sets), as GraphMAE itself does,
when built with ``in_dim`` (the width of ``x``): the masked rows of ``x`` become a learnable ``[MASK]`` vector in
the input space, except a ``replace_rate`` share of them that take the features of random nodes; the encoder is a
:class:`~geomask.nn.gnn.FeatureGNN` (GAT for node tasks, GIN for graph tasks, ``in_dim`` → ``hidden``), the decoder
one plain GAT / GIN layer ``hidden`` → ``in_dim``, and the target ``x`` itself.  ``replace_rate`` applies to the
AIG mode's type embeddings too (default 0: the AIG numbers are unchanged).  The corrupted features reach the
:class:`~geomask.nn.gnn.FeatureGNN` encoder unbuilt (:class:`~geomask.nn.masked_input.MaskedInput`, the same random
draws), so a GAT's first layer multiplies sparse bag-of-words rows by their non-zero entries only.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.data import Batch, Data
from torch_geometric.nn import global_add_pool, global_max_pool, global_mean_pool

from geomask.losses import ScaledCosineError, masked_accuracy
from geomask.masking.base import Masker
from geomask.masking.layout import RowLayout
from geomask.methods.base import GRAPH_DATA, Method
from geomask.methods.compose import loss_section, masker_section, section_aliases
from geomask.methods.mgvga import graph_batch_vector
from geomask.nn.aggregation import build_neighbors
from geomask.nn.encoders import build_encoder
from geomask.nn.gat import GAT_INITS, GATConv
from geomask.nn.gnn import FeatureGNN
from geomask.nn.heads import init_normal, mean_max_pool
from geomask.nn.masked_input import MaskedInput

__all__ = ["GIN_MLPS", "POOLINGS", "GraphMAE", "build_graphmae"]

POOLINGS = ("mean", "sum", "max")
GIN_MLPS = ("out", "hidden")
_POOL = {"mean": global_mean_pool, "sum": global_add_pool, "max": global_max_pool}


class GraphMAE(Method):
    """Masked feature reconstruction: of gate types on AIGs, of ``x`` on generic graphs (``in_dim`` set).

    Args:
        encoder: AIG mode ``encoder(x [N, H], edge_index, neighbors) -> [N, H]``; feature mode
            ``encoder(x [N, F], edge_index) -> [N, H]``.
        decoder: the light decoder GNN (AIG mode: same interface, then a linear layer to the types; feature mode
            ``decoder(h [N, H], edge_index) -> [N, F]``).
        hidden: H.
        num_types: number of gate types (the one-hot feature width; AIG mode).
        masker: chooses the masked input nodes.
        gamma: exponent of the scaled cosine error (of the default loss).
        loss: ``loss(pred [N, T], one-hot target [N, T], mask [N]) -> scalar`` (default
            :class:`~geomask.losses.ScaledCosineError` with ``gamma``).
        in_dim: F, the width of ``x`` of generic graphs; ``None``: AIG mode (gate types).
        replace_rate: share of the masked nodes whose input is another (random) node's instead of ``[MASK]``.
        pooling: how :meth:`graph_embed` pools nodes in feature mode (``mean``, ``sum``, ``max``).

    Shapes:
        batch: PyG ``Batch`` with ``node_type [N]`` (AIG mode) or ``x [N, F]`` (feature mode), ``edge_index``.
    """

    data_kinds = (*GRAPH_DATA, "graphs")

    def __init__(
        self,
        encoder: nn.Module,
        decoder: nn.Module,
        hidden: int,
        masker: Masker,
        num_types: int = 5,
        gamma: float = 2.0,
        loss: nn.Module | None = None,
        in_dim: int | None = None,
        replace_rate: float = 0.0,
        pooling: str = "mean",
    ):
        super().__init__()
        if not 0.0 <= replace_rate < 1.0:
            raise ValueError(f"replace_rate must be in [0, 1), got {replace_rate}")
        if pooling not in POOLINGS:
            raise ValueError(f"unknown pooling {pooling!r}; valid: {', '.join(POOLINGS)}")
        self.encoder = encoder
        self.decoder = decoder
        self.hidden = hidden
        self.num_types = num_types
        self.masker = masker
        self.criterion = loss if loss is not None else ScaledCosineError(gamma)
        self.in_dim = in_dim
        self.replace_rate = replace_rate
        self.pooling = pooling
        self.enc2dec = nn.Linear(hidden, hidden, bias=False)
        if in_dim is None:
            self.type_emb = nn.Embedding(num_types, hidden)
            self.mask_token = nn.Parameter(torch.zeros(hidden))
            self.out = nn.Linear(hidden, num_types)
            for m in (self.type_emb, self.enc2dec, self.out):
                init_normal(m)
            nn.init.normal_(self.mask_token, 0.0, 0.02)
        else:  # GraphMAE's own choices: a zero-initialised [MASK] in the input space, default layer inits
            self.register_module("type_emb", None)
            self.register_module("out", None)
            self.mask_token = nn.Parameter(torch.zeros(in_dim))

    def unused_parameters(self) -> set[str]:
        """Feature mode with a GAT decoder: its first layer's ``att_dst`` only ever scores the re-masked (zero) rows
        the loss reads, so it gets a zero gradient by construction (as in GraphMAE's own code)."""
        convs = getattr(self.decoder, "convs", None) if self.in_dim is not None else None
        if convs is not None and len(convs) and hasattr(convs[0], "att_dst"):
            return {"decoder.convs.0.att_dst"}
        return set()

    def _masked_input(self, inp: Tensor, mask: Tensor, generator: torch.Generator) -> MaskedInput:
        """``inp`` with its masked rows set to ``[MASK]``, or (a ``replace_rate`` share of them) to random rows, unbuilt
        (:meth:`_corrupt` builds it; a :class:`~geomask.nn.gnn.FeatureGNN` GAT reads it row by row)."""
        src = torch.arange(inp.shape[0], device=inp.device)
        token_rows = mask.clone()
        idx = mask.nonzero().squeeze(1)
        k = int(self.replace_rate * idx.numel()) if self.replace_rate > 0.0 else 0
        if k > 0:
            dev = mask.device
            pick = idx[torch.randperm(idx.numel(), generator=generator).to(dev)[:k]]
            src[pick] = torch.randint(inp.shape[0], (k,), generator=generator).to(dev)
            token_rows[pick] = False
        return MaskedInput(inp, self.mask_token, token_rows, src)

    def _corrupt(self, inp: Tensor, mask: Tensor, generator: torch.Generator) -> Tensor:
        """:meth:`_masked_input` as one ``[N, F]`` tensor."""
        return self._masked_input(inp, mask, generator).dense()

    def _graphs_of(self, batch: Data | Batch) -> tuple[Tensor, int]:
        if self.in_dim is None:
            return graph_batch_vector(batch)
        n = batch.x.shape[0]
        b = getattr(batch, "batch", None)
        if b is None:
            return torch.zeros(n, dtype=torch.long, device=batch.x.device), 1
        return b, int(getattr(batch, "num_graphs", int(b.max()) + 1 if n else 1))

    def embed(self, batch: Data | Batch) -> Tensor:
        """Encoder output without masking, ``[N, H]`` (typed edges read where the graphs carry ``edge_type``)."""
        if self.in_dim is not None:
            return self.encoder(batch.x, batch.edge_index)
        nb = build_neighbors(batch.edge_index, batch.node_type.shape[0], edge_type=getattr(batch, "edge_type", None))
        return self.encoder(self.type_emb(batch.node_type), batch.edge_index, nb)

    def graph_embed(self, batch: Data | Batch) -> Tensor:
        """AIG mode: mean and max of :meth:`embed` per graph, ``[B, 2H]``; feature mode: ``pooling``, ``[B, H]``."""
        b, num_graphs = self._graphs_of(batch)
        if self.in_dim is not None:
            return _POOL[self.pooling](self.embed(batch), b, num_graphs)
        return mean_max_pool(self.embed(batch), b, num_graphs)

    def features(self, batch: Data | Batch) -> Tensor:
        """Node embeddings of the unmasked graph, ``[N, H]`` (:meth:`embed`)."""
        return self.embed(batch)

    def loss_terms(self, batch: Data | Batch, generator: torch.Generator) -> dict[str, Tensor]:
        """``{"sce": ..., "acc": ..., "loss": ...}`` (``acc``: detached masked-type accuracy; AIG mode only)."""
        if self.in_dim is not None:
            return self._feature_terms(batch, generator)
        b, num_graphs = graph_batch_vector(batch)
        node_type, edge_index = batch.node_type, batch.edge_index
        nb = build_neighbors(edge_index, node_type.shape[0], edge_type=getattr(batch, "edge_type", None))
        mask = self.masker(RowLayout(b, num_graphs), generator).unsqueeze(1)
        x = self._corrupt(self.type_emb(node_type), mask.squeeze(1), generator)
        h = self.enc2dec(self.encoder(x, edge_index, nb))
        h = h.masked_fill(mask, 0.0)
        pred = self.out(self.decoder(h, edge_index, nb))
        target = F.one_hot(node_type, self.num_types).to(pred.dtype)
        m = mask.squeeze(1)
        sce = self.criterion(pred, target, m)
        return {"sce": sce, "acc": masked_accuracy(pred, node_type, m), "loss": sce}

    def _feature_terms(self, batch: Data | Batch, generator: torch.Generator) -> dict[str, Tensor]:
        x, edge_index = batch.x, batch.edge_index
        if x.shape[1] != self.in_dim:
            raise ValueError(
                f"the graphs have {x.shape[1]} node features, the method was built for in_dim={self.in_dim}"
            )
        b, num_graphs = self._graphs_of(batch)
        mask = self.masker(RowLayout(b, num_graphs), generator)
        if isinstance(self.encoder, FeatureGNN):  # the GAT's first layer reads the masked input row by row
            enc = self.encoder(self._masked_input(x, mask, generator), edge_index)
        else:
            enc = self.encoder(self._corrupt(x, mask, generator), edge_index)
        keep = (~mask).nonzero().squeeze(1)  # re-mask: enc2dec only on the rows that stay (the others are zero)
        masked = mask.nonzero().squeeze(1)  # the loss reads these rows: the decoder returns only them
        h = self.enc2dec(enc.index_select(0, keep))
        pred = self.decoder(h, edge_index, rows=keep, num_nodes=enc.shape[0], out_rows=masked)
        sce = self.criterion(pred, x.index_select(0, masked))
        return {"sce": sce, "loss": sce}


@section_aliases(masker="mask_ratio", loss="gamma")
def build_graphmae(
    *,
    encoder: str = "deepgcn",
    hidden: int = 64,
    layers: int = 7,
    num_types: int = 5,
    dropout: float = 0.0,
    gat_heads: int = 4,
    checkpoint_nodes: int | None = 100_000,
    decoder_layers: int = 1,
    mask_ratio: float = 0.5,
    gamma: float = 2.0,
    masker: Mapping | str | None = None,
    loss: Mapping | str | None = None,
    num_relations: int = 1,
    in_dim: int | None = None,
    replace_rate: float = 0.0,
    attn_drop: float = 0.1,
    residual: bool = False,
    norm: str | None = None,
    pooling: str = "mean",
    gat_init: str = "glorot",
    gin_mlp: str = "out",
) -> GraphMAE:
    """GraphMAE: AIG gate types (``in_dim`` unset; ``num_relations=2`` reads inversions under ``not_nodes: attr``)
    or the features ``x`` of generic graphs (``in_dim`` = their width; ``encoder`` ``gat`` or ``gin``, ``dropout``
    the input dropout of every layer, ``attn_drop``, ``residual``, ``norm``, ``gat_heads`` for the encoder's
    inner layers; the decoder is ``decoder_layers`` plain layers with one head; ``gat_init`` initialises their GAT
    layers: ``glorot``, PyG's, or ``xavier_relu``, GraphMAE's own (Xavier-normal, gain √2: the Cora / CiteSeer
    configs use it, worth 7.6 points of Cora probe accuracy after 200 epochs; AIG mode ignores it); ``gin_mlp``
    sets the inner width of the GIN layers' MLPs: ``out``, each layer's output width (the decoder ``H → F → F``), or
    ``hidden`` (GraphMAE's own ``MLP(2, in, hidden, out)``: the decoder ``H → H → F``; the PROTEINS config)."""
    if gat_init not in GAT_INITS:
        raise ValueError(f"unknown gat_init {gat_init!r}; valid: {', '.join(GAT_INITS)}")
    if gin_mlp not in GIN_MLPS:
        raise ValueError(f"unknown gin_mlp {gin_mlp!r}; valid: {', '.join(GIN_MLPS)}")
    msk = masker_section(masker, {"name": "uniform", "ratio": mask_ratio}, layout=RowLayout)
    crit = loss_section(loss, {"name": "sce", "gamma": gamma})
    if in_dim is None:
        enc = build_encoder(encoder, hidden, layers, dropout, gat_heads, checkpoint_nodes, num_relations)
        dec = build_encoder(encoder, hidden, decoder_layers, dropout, gat_heads, checkpoint_nodes, num_relations)
        return GraphMAE(enc, dec, hidden, msk, num_types, loss=crit, replace_rate=replace_rate, pooling=pooling)
    if encoder not in ("gat", "gin"):
        raise ValueError(f"encoder {encoder!r} does not read node features: with in_dim use gat or gin")
    common = {"in_drop": dropout, "attn_drop": attn_drop, "residual": residual, "norm": norm}
    common["mlp_hidden"] = hidden if gin_mlp == "hidden" else None
    enc = FeatureGNN(encoder, in_dim, hidden, hidden, layers, heads=gat_heads, out_heads=gat_heads, **common)
    dec = FeatureGNN(encoder, hidden, hidden, in_dim, decoder_layers, heads=1, out_heads=1, encoding=False, **common)
    if gat_init != "glorot":  # the layers were built with PyG's init: re-draw only for another scheme
        for conv in (m for part in (enc, dec) for m in part.modules() if isinstance(m, GATConv)):
            conv.reset_parameters(gat_init)
    return GraphMAE(enc, dec, hidden, msk, in_dim=in_dim, loss=crit, replace_rate=replace_rate, pooling=pooling)
