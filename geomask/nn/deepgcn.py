"""MGVGA's DeepGCN backbone: GENConv layers (softmax aggregation, learnable temperature) in ``res+`` blocks.

One block (DeeperGCN's ``res+``, as PyG's ``DeepGCNLayer(block="res+")``):

.. math::
    \\mathbf{x}' = \\mathbf{x} + \\mathrm{GENConv}\\big(\\mathrm{Dropout}(\\sigma(\\mathrm{LayerNorm}(
    \\mathbf{x})))\\big)

where :math:`\\sigma` is the identity by default: the reference builds ``DeepGCNLayer`` without ``act``
(PyG's default is ``None``), so its blocks have no activation after the norm; ``act=True`` adds a ReLU as
in DeeperGCN's paper.

and GENConv (PyG's ``GENConv(aggr="softmax", learn_t=True, norm="layer", num_layers=2)``, no bias):

.. math::
    \\mathrm{GENConv}(\\mathbf{h})_i = \\mathbf{W}_2\\, \\mathrm{ReLU}\\big(\\mathrm{LN}\\big(\\mathbf{W}_1
    (\\mathbf{h}_i + \\mathrm{softmax\\_agg}_{t}\\{\\mathrm{ReLU}(\\mathbf{h}_j) + \\epsilon\\}_{j \\to i})
    \\big)\\big)

The encoder stacks ``layers`` blocks with a ReLU between consecutive blocks (none after the last), as the
reference encoder does; a one-block :class:`DeepGCN` is MGVGA's MGM decoder.  Messages flow along
``edge_index`` (fanin → gate).  Blocks can be recomputed in the backward pass (activation
checkpointing) on large graphs, which keeps a training step on a 500k-node AIG within a few GB.

Typed edges (``num_relations > 1``, e.g. AIGs with ``not_nodes="attr"``: ``edge_type`` 1 on inverted edges)
add a learned per-relation edge embedding to the message, as GENConv with edge features does:
:math:`\\mathrm{ReLU}(\\mathbf{h}_j + \\mathbf{e}_{r(j \\to i)}) + \\epsilon`, with
:math:`\\mathbf{e}_0 = 0` (a plain edge carries no offset, so a graph whose edges are all plain gives
exactly the untyped output).  The aggregation is the shared kernel's
:func:`~geomask.ops.neighbor_aggregate.neighbor_aggregate`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from geomask.errors import UsageError
from geomask.nn.aggregation import NeighborTable, build_neighbors
from geomask.nn.classes import ClassLevel
from geomask.nn.dropout import dropout
from geomask.ops.neighbor_aggregate import neighbor_aggregate

__all__ = ["DeepGCN", "GENConv", "ResPlusBlock"]


class GENConv(nn.Module):
    """GENConv with softmax aggregation over in-neighbours and a 2-layer MLP (LayerNorm, no bias).

    Args:
        channels: H, input and output width.
        t: initial inverse temperature of the softmax aggregation.
        learn_t: learn ``t``.
        expansion: hidden width of the MLP is ``expansion * H``.
        eps: added to every message.
        num_relations: edge types; above 1, relations ``1 .. R-1`` get a learned ``[H]`` embedding added to
            the message (``nn.Embedding``'s N(0, 1) init), relation 0 none.

    Shapes:
        x ``[N, H]`` → ``[N, H]``.
    """

    def __init__(
        self,
        channels: int,
        t: float = 1.0,
        learn_t: bool = True,
        expansion: int = 2,
        eps: float = 1e-7,
        num_relations: int = 1,
    ):
        super().__init__()
        if num_relations < 1:
            raise ValueError(f"num_relations must be >= 1, got {num_relations}")
        self.eps = eps
        self.num_relations = num_relations
        if num_relations > 1:
            self.edge_emb = nn.Parameter(torch.randn(num_relations - 1, channels))
        else:
            self.register_parameter("edge_emb", None)
        if learn_t:
            self.t = nn.Parameter(torch.tensor([float(t)]))
        else:
            self.register_buffer("t", torch.tensor([float(t)]))
        self.lin1 = nn.Linear(channels, expansion * channels, bias=False)
        self.norm = nn.LayerNorm(expansion * channels)
        self.lin2 = nn.Linear(expansion * channels, channels, bias=False)

    def forward(self, x: Tensor, neighbors: NeighborTable, self_index: Tensor | None = None) -> Tensor:
        """Apply the convolution.

        Args:
            x: ``[S, H]`` source rows.
            neighbors: in-neighbour table of the T target rows over the S source rows (typed or not).
            self_index: ``[T]`` source row of each target's own state (``None``: targets are the sources).
        """
        emb = None
        if neighbors.etype is not None:
            if self.edge_emb is None:
                raise UsageError(
                    "the graphs have edge types (e.g. AIGs with not_nodes: attr, inversions as edge_type 1) but the "
                    "encoder was built with one relation: set method.num_relations=2"
                )
            emb = F.pad(self.edge_emb, (0, 0, 1, 0))  # relation 0 (plain edge): no offset
        agg = neighbor_aggregate(x, neighbors, "softmax", edge_emb=emb, message=self._message, t=self.t)
        own = x if self_index is None else x.index_select(0, self_index)
        return self.lin2(F.relu(self.norm(self.lin1(agg + own))))

    def _message(self, m: Tensor) -> Tensor:
        return F.relu(m) + self.eps


class ResPlusBlock(nn.Module):
    """``x + conv(dropout(act(norm(x))))`` (DeeperGCN ``res+``).

    Args:
        channels: H.
        dropout: dropout probability before the convolution.
        t: initial softmax temperature of the GENConv.
        act: ReLU after the norm (``False``: none, as the reference).
        num_relations: edge types of the GENConv.
    """

    def __init__(self, channels: int, dropout: float = 0.0, t: float = 1.0, act: bool = False, num_relations: int = 1):
        super().__init__()
        self.norm = nn.LayerNorm(channels)
        self.conv = GENConv(channels, t=t, num_relations=num_relations)
        self.dropout = dropout
        self.act = act

    def forward(self, x: Tensor, neighbors: NeighborTable, self_index: Tensor | None = None) -> Tensor:
        """``[S, H]`` → ``[T, H]`` (see :meth:`GENConv.forward`)."""
        h = self.norm(x)
        if self.act:
            h = F.relu(h)
        h = dropout(h, self.dropout, self.training)
        own = x if self_index is None else x.index_select(0, self_index)
        return own + self.conv(h, neighbors, self_index)


class DeepGCN(nn.Module):
    """Stack of ``res+`` GENConv blocks with ReLU between blocks.

    Args:
        hidden: H.
        layers: number of blocks.
        dropout: dropout inside each block.
        checkpoint_nodes: recompute each block in the backward pass when training on at least this many
            nodes (``None``: never).
        num_relations: edge types (2 for AIGs with ``not_nodes="attr"``); 1: edge types are not learned
            (a graph with a non-zero ``edge_type`` is then refused).

    Shapes:
        x ``[N, H]``, edge_index ``[2, E]``, edge_type ``[E]`` (optional) → ``[N, H]``.
    """

    def __init__(
        self,
        hidden: int = 64,
        layers: int = 7,
        dropout: float = 0.0,
        checkpoint_nodes: int | None = None,
        num_relations: int = 1,
    ):
        super().__init__()
        if layers < 1:
            raise ValueError(f"layers must be >= 1, got {layers}")
        self.hidden = hidden
        self.num_relations = num_relations
        self.blocks = nn.ModuleList(ResPlusBlock(hidden, dropout, num_relations=num_relations) for _ in range(layers))
        self.checkpoint_nodes = checkpoint_nodes

    def forward(
        self,
        x: Tensor,
        edge_index: Tensor,
        neighbors: NeighborTable | None = None,
        edge_type: Tensor | None = None,
    ) -> Tensor:
        """Encode node features.

        Args:
            x: ``[N, H]`` node features.
            edge_index: ``[2, E]`` fanin → gate.
            neighbors: the precomputed :func:`build_neighbors` of ``edge_index`` (built here if ``None``); a
                prebuilt table carries its own edge types (``build_neighbors(..., edge_type=...)``).
            edge_type: ``[E]`` relation per edge, read when ``neighbors`` is ``None`` (all-zero types give
                exactly the untyped output).
        """
        if neighbors is None:
            neighbors = build_neighbors(edge_index, x.shape[0], edge_type=edge_type)
        ckpt = (
            self.training
            and torch.is_grad_enabled()
            and self.checkpoint_nodes is not None
            and x.shape[0] >= self.checkpoint_nodes
        )
        last = len(self.blocks) - 1
        for i, block in enumerate(self.blocks):
            if ckpt:
                x = checkpoint(block, x, neighbors, use_reentrant=False)
            else:
                x = block(x, neighbors)
            if i < last:
                x = F.relu(x)
        return x

    @property
    def dedup_exact(self) -> bool:
        """Whether running once per cone class equals running per node (no active dropout)."""
        return not (self.training and any(b.dropout > 0 for b in self.blocks))

    def forward_classes(self, x0: Tensor, levels: list[ClassLevel]) -> Tensor:
        """Run the blocks once per cone class (:mod:`geomask.nn.classes`).

        Args:
            x0: ``[U_0, H]`` input rows (level-0 classes).
            levels: ``len(blocks) + 1`` levels from :func:`~geomask.nn.classes.cone_classes`.

        Returns:
            ``[U_L, H]``: node ``v``'s output is row ``levels[-1].inverse[v]``.
        """
        if len(levels) != len(self.blocks) + 1:
            raise ValueError(f"need {len(self.blocks) + 1} class levels, got {len(levels)}")
        ckpt = self.training and torch.is_grad_enabled() and self.checkpoint_nodes is not None
        x = x0
        last = len(self.blocks) - 1
        for i, (block, lv) in enumerate(zip(self.blocks, levels[1:])):
            if ckpt and x.shape[0] >= self.checkpoint_nodes:
                x = checkpoint(block, x, lv.neighbors, lv.self_index, use_reentrant=False)
            else:
                x = block(x, lv.neighbors, lv.self_index)
            if i < last:
                x = F.relu(x)
        return x
