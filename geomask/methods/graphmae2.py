"""GraphMAE2: GraphMAE's masked feature reconstruction, regularised by multi-view re-mask decoding and latent
prediction against an EMA target encoder.

Following GraphMAE2 (Hou et al., WWW 2023).  The input corruption, encoder, decoder and scaled cosine error are
:class:`~geomask.methods.graphmae.GraphMAE`'s (this class subclasses it, in both of its modes: gate types of AIGs,
or the features ``x`` of generic graphs when built with ``in_dim``).  Two changes:

* **Multi-view random re-masking** (``remask="random"``): the encoder output ``h = W_{e2d} f_E(\\tilde{x})`` is
  decoded ``num_remask`` times, each view with its own random ``remask_rate`` share of every graph's nodes replaced
  by a learnable decoder ``[MASK]`` token; the reconstruction loss is the mean over views of the masked-node loss

  .. math::
      \\mathcal{L}_{rec} = \\frac{1}{V} \\sum_{v=1}^{V} \\frac{1}{|M|} \\sum_{i \\in M}
      \\big(1 - \\cos(f_D(\\tilde{h}^{(v)})_i, x_i)\\big)^{\\gamma}.

  All views are decoded in one call over ``V`` copies of the graph (block-diagonal ``edge_index``).
  ``remask="fixed"`` is GraphMAE's re-mask (the masked rows set to zero, one view).
* **Latent prediction**: a projector (``H → proj_dim → H``, PReLU) and a predictor (PReLU, ``H → H``) on the online
  encoder's output regress the projection of an EMA target encoder's output on the *unmasked* graph (no gradient),
  with a cosine error (γ = 1) on the ``latent_nodes`` rows (``masked``, ``visible`` or ``all``):

  .. math::
      \\mathcal{L} = \\mathcal{L}_{rec} + \\lambda \\, \\frac{1}{|R|} \\sum_{i \\in R}
      \\big(1 - \\cos(g(p(h_i)), \\bar{p}(\\bar{f}_E(x)_i))\\big).

  The target encoder and projector ``θ̄`` follow the online ones in :meth:`GraphMAE2.on_train_step_end`,
  ``θ̄ ← m θ̄ + (1 - m) θ`` (``momentum`` m); ``forward`` never changes them.  In AIG mode the target encoder reads
  the online type embedding (detached).

Notes on the authors' code (THUDM/GraphMAE2, read for facts): its latent term covers the *visible* nodes when no
``targets`` are given (``latent_nodes="visible"``) but *all* nodes in full-batch training (Cora, CiteSeer, PubMed:
``main_full_batch.py`` passes every node as ``targets``; ``latent_nodes="all"``); its re-mask views' losses are
summed (here averaged, so ``lam`` keeps its meaning for any ``num_remask``); its EMA update runs inside ``forward``
before the optimiser step (here after it); its ``replace_rate`` option is never read (set it 0 to match).  For
Cora, CiteSeer and PubMed it builds the model with ``zero_init``: the input ``[MASK]``, the decoder ``[MASK]`` and
``W_{e2d}`` keep PyTorch's defaults (zeros, zeros, ``nn.Linear``'s), as GraphMAE's (``token_init="zeros"``, the
default here); its Xavier-normal draw (``token_init="xavier"``) is for its standardised large sets.  On Cora's
row-normalised bag of words a Xavier-normal ``[MASK]`` (norm about 1.4 against about 0.25 for a real row) swamps the
encoder's input and the probe accuracy falls below the random encoder's (issue #14).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.data import Batch, Data

from geomask.losses import ScaledCosineError, masked_accuracy
from geomask.masking.base import Masker
from geomask.masking.layout import RowLayout
from geomask.masking.uniform import UniformMasker
from geomask.methods.compose import section_aliases
from geomask.methods.graphmae import GraphMAE, build_graphmae
from geomask.methods.mgvga import graph_batch_vector
from geomask.nn.aggregation import build_neighbors

__all__ = ["LATENT_NODES", "REMASKS", "TOKEN_INITS", "GraphMAE2", "build_graphmae2"]

REMASKS = ("random", "fixed")
LATENT_NODES = ("masked", "visible", "all")
TOKEN_INITS = ("zeros", "xavier")


class GraphMAE2(GraphMAE):
    """GraphMAE + multi-view random re-masking + latent prediction against an EMA target encoder.

    Args:
        encoder, decoder, hidden, masker, num_types, loss, in_dim, replace_rate, pooling: as
            :class:`~geomask.methods.graphmae.GraphMAE`.
        remask: ``"random"`` (``num_remask`` views, ``remask_rate`` of the nodes to the decoder ``[MASK]``) or
            ``"fixed"`` (GraphMAE's: masked rows to zero, one view).
        remask_rate: share of every graph's nodes re-masked in each view (``remask="random"``).
        num_remask: V, the number of re-mask views (``remask="random"``).
        lam: λ, the weight of the latent term (0: none, no target encoder is kept).
        momentum: m of the EMA target, in [0, 1].
        latent_nodes: the rows of the latent term: ``masked``, ``visible`` or ``all`` nodes.
        proj_dim: width of the projector's inner layer.
        token_init: feature mode: ``"zeros"`` (zero ``[MASK]`` tokens, ``enc2dec`` as ``nn.Linear`` draws it: the
            authors' ``zero_init`` for Cora / CiteSeer / PubMed, and GraphMAE's) or ``"xavier"`` (the authors'
            Xavier-normal tokens and ``enc2dec`` with gain 1.414, for standardised features); AIG mode ignores it.

    Shapes:
        batch: PyG ``Batch`` with ``node_type [N]`` (AIG mode) or ``x [N, F]`` (feature mode), ``edge_index [2, E]``.
    """

    def __init__(
        self,
        encoder: nn.Module,
        decoder: nn.Module,
        hidden: int,
        masker: Masker,
        num_types: int = 5,
        loss: nn.Module | None = None,
        in_dim: int | None = None,
        replace_rate: float = 0.0,
        pooling: str = "mean",
        remask: str = "random",
        remask_rate: float = 0.5,
        num_remask: int = 3,
        lam: float = 1.0,
        momentum: float = 0.996,
        latent_nodes: str = "masked",
        proj_dim: int = 256,
        token_init: str = "zeros",
    ):
        super().__init__(
            encoder, decoder, hidden, masker, num_types, loss=loss, in_dim=in_dim, replace_rate=replace_rate,
            pooling=pooling,
        )  # fmt: skip
        if remask not in REMASKS:
            raise ValueError(f"unknown remask {remask!r}; valid: {', '.join(REMASKS)}")
        if latent_nodes not in LATENT_NODES:
            raise ValueError(f"unknown latent_nodes {latent_nodes!r}; valid: {', '.join(LATENT_NODES)}")
        if token_init not in TOKEN_INITS:
            raise ValueError(f"unknown token_init {token_init!r}; valid: {', '.join(TOKEN_INITS)}")
        if not 0.0 < remask_rate < 1.0:
            raise ValueError(f"remask_rate must be in (0, 1), got {remask_rate}")
        if num_remask < 1:
            raise ValueError(f"num_remask must be >= 1, got {num_remask}")
        if not 0.0 <= momentum <= 1.0:
            raise ValueError(f"momentum must be in [0, 1], got {momentum}")
        if lam < 0.0:
            raise ValueError(f"lam must be >= 0, got {lam}")
        self.remask, self.num_remask, self.lam, self.momentum = remask, num_remask, lam, momentum
        self.latent_nodes = latent_nodes
        self.remasker = UniformMasker(remask_rate)
        self.latent_loss = ScaledCosineError(1.0)
        self.token_init = token_init
        xavier = in_dim is None or token_init == "xavier"  # AIG mode: its tokens as before
        if in_dim is not None and xavier:  # the authors' Xavier-normal tokens (their non-zero_init datasets)
            nn.init.normal_(self.mask_token, 0.0, math.sqrt(2.0 / (1 + in_dim)))
            nn.init.xavier_normal_(self.enc2dec.weight, gain=1.414)
        if remask == "random":
            self.dec_mask_token = nn.Parameter(torch.zeros(hidden))
            if xavier:
                nn.init.normal_(self.dec_mask_token, 0.0, math.sqrt(2.0 / (1 + hidden)))
        else:
            self.register_parameter("dec_mask_token", None)
        if lam > 0.0:
            self.projector = nn.Sequential(nn.Linear(hidden, proj_dim), nn.PReLU(), nn.Linear(proj_dim, hidden))
            self.predictor = nn.Sequential(nn.PReLU(), nn.Linear(hidden, hidden))
            self.target_encoder = copy.deepcopy(encoder).requires_grad_(False)
            self.target_projector = copy.deepcopy(self.projector).requires_grad_(False)
        else:
            for name in ("projector", "predictor", "target_encoder", "target_projector"):
                self.register_module(name, None)

    def unused_parameters(self) -> set[str]:
        """GraphMAE's (a GAT decoder's ``att_dst`` scoring only zero rows) with ``remask="fixed"``; none with
        ``"random"``, where the rows the loss reads carry the decoder token or the code."""
        return super().unused_parameters() if self.remask == "fixed" else set()

    def _encode(self, x: Tensor, edge_index: Tensor, nb, encoder: nn.Module) -> Tensor:
        return encoder(x, edge_index) if nb is None else encoder(x, edge_index, nb)

    def _decode(self, h: Tensor, edge_index: Tensor, edge_type: Tensor | None, rows: Tensor) -> Tensor:
        """The decoder's output at ``rows`` (the masked rows the loss reads: a GAT head wider than its input projects
        only them) in feature mode; at every row in AIG mode."""
        if self.in_dim is not None:
            return self.decoder(h, edge_index, out_rows=rows)
        nb = build_neighbors(edge_index, h.shape[0], edge_type=edge_type)
        return self.out(self.decoder(h, edge_index, nb))

    def loss_terms(self, batch: Data | Batch, generator: torch.Generator) -> dict[str, Tensor]:
        """``{"sce": reconstruction (mean over views), "latent": latent term, "loss": sce + lam * latent}`` (and
        ``acc``, the masked-type accuracy over the views, in AIG mode)."""
        edge_index, edge_type = batch.edge_index, getattr(batch, "edge_type", None)
        if self.in_dim is None:
            b, num_graphs = graph_batch_vector(batch)
            node_type = batch.node_type
            nb = build_neighbors(edge_index, node_type.shape[0], edge_type=edge_type)
            inp = self.type_emb(node_type)
            target = F.one_hot(node_type, self.num_types).to(inp.dtype)
        else:
            inp, nb = batch.x, None
            if inp.shape[1] != self.in_dim:
                raise ValueError(
                    f"the graphs have {inp.shape[1]} node features, the method was built for in_dim={self.in_dim}"
                )
            b, num_graphs = self._graphs_of(batch)
            target = inp
        n = inp.shape[0]
        mask = self.masker(RowLayout(b, num_graphs), generator)
        enc = self._encode(self._corrupt(inp, mask, generator), edge_index, nb, self.encoder)
        h = self.enc2dec(enc)

        if self.remask == "fixed":
            views, h_dec = 1, h.masked_fill(mask.unsqueeze(1), 0.0)
        else:  # V views at once: V copies of the batch, one re-mask draw over all of them
            views = self.num_remask
            offs = torch.arange(views, device=b.device).repeat_interleave(n)
            remask = self.remasker(RowLayout(b.repeat(views) + offs * num_graphs, views * num_graphs), generator)
            h_dec = torch.where(remask.unsqueeze(1), self.dec_mask_token.to(h.dtype), h.repeat(views, 1))
        if views > 1:
            e = edge_index.shape[1]
            edge_index = edge_index.repeat(1, views) + (torch.arange(views, device=b.device) * n).repeat_interleave(e)
            edge_type = edge_type.repeat(views) if edge_type is not None else None
        rows = mask.repeat(views)
        picked = rows.nonzero().squeeze(1)
        pred = self._decode(h_dec, edge_index, edge_type, picked)
        if self.in_dim is not None:  # the decoder returned the masked rows only
            sce = self.criterion(pred, target.repeat(views, 1).index_select(0, picked))
        else:
            sce = self.criterion(pred, target.repeat(views, 1), rows)
        terms = {"sce": sce}
        if self.in_dim is None:
            terms["acc"] = masked_accuracy(pred, batch.node_type.repeat(views), rows)
        if self.lam > 0.0:
            terms["latent"] = self._latent(enc, inp, batch.edge_index, nb, mask)
            terms["loss"] = sce + self.lam * terms["latent"]
        else:
            terms["loss"] = sce
        return terms

    def _latent(self, enc: Tensor, inp: Tensor, edge_index: Tensor, nb, mask: Tensor) -> Tensor:
        with torch.no_grad():
            target = self.target_projector(self._encode(inp.detach(), edge_index, nb, self.target_encoder))
        rows = {"masked": mask, "visible": ~mask, "all": torch.ones_like(mask)}[self.latent_nodes]
        return self.latent_loss(self.predictor(self.projector(enc)), target, rows)

    @torch.no_grad()
    def on_train_step_end(self, step: int) -> None:
        """EMA of the target encoder and projector: ``θ̄ ← m θ̄ + (1 - m) θ``."""
        if self.lam <= 0.0:
            return
        for online, target in ((self.encoder, self.target_encoder), (self.projector, self.target_projector)):
            t = list(target.parameters())
            torch._foreach_mul_(t, self.momentum)
            torch._foreach_add_(t, list(online.parameters()), alpha=1.0 - self.momentum)


@section_aliases(masker="mask_ratio", loss="gamma")
def build_graphmae2(
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
    remask: str = "random",
    remask_rate: float = 0.5,
    num_remask: int = 3,
    lam: float = 1.0,
    momentum: float = 0.996,
    latent_nodes: str = "masked",
    proj_dim: int = 256,
    gat_init: str = "glorot",
    token_init: str = "zeros",
) -> GraphMAE2:
    """GraphMAE2: the encoder, decoder, masker and loss of :func:`~geomask.methods.graphmae.build_graphmae` (same
    keywords, both modes), plus ``remask`` / ``remask_rate`` / ``num_remask`` (re-mask views), ``lam`` /
    ``momentum`` / ``latent_nodes`` / ``proj_dim`` (latent prediction against the EMA target encoder); ``gat_init``
    as GraphMAE's (GraphMAE2's authors initialise their GAT layers the same way: ``xavier_relu`` in the Cora and
    CiteSeer configs); ``token_init`` (feature mode) ``zeros`` or ``xavier``, see :class:`GraphMAE2`."""
    base = build_graphmae.__wrapped__(  # type: ignore[attr-defined]  # the aliases are checked here already
        encoder=encoder, hidden=hidden, layers=layers, num_types=num_types, dropout=dropout, gat_heads=gat_heads,
        checkpoint_nodes=checkpoint_nodes, decoder_layers=decoder_layers, mask_ratio=mask_ratio, gamma=gamma,
        masker=masker, loss=loss, num_relations=num_relations, in_dim=in_dim, replace_rate=replace_rate,
        attn_drop=attn_drop, residual=residual, norm=norm, pooling=pooling, gat_init=gat_init,
    )  # fmt: skip
    return GraphMAE2(
        base.encoder, base.decoder, hidden, base.masker, num_types, loss=base.criterion, in_dim=in_dim,
        replace_rate=replace_rate, pooling=pooling, remask=remask, remask_rate=remask_rate, num_remask=num_remask,
        lam=lam, momentum=momentum, latent_nodes=latent_nodes, proj_dim=proj_dim, token_init=token_init,
    )  # fmt: skip
