"""MGVGA: masked gate modeling (MGM) and Verilog-AIG alignment (VGA) on batched AIG graphs.

* **MGM**: embed gate types, encode the intact AIG, replace a random ``mgm_ratio`` of the *encoder outputs*
  with a learnable mask token, decode with a light GNN, and predict the gate type of masked nodes
  (cross-entropy) and the fan-in and fan-out degree of every node (Huber, delta 1, raw counts, weight
  ``degree_weight``).
* **VGA**: replace the type embedding of a random ``vga_ratio`` of the nodes with a second mask token,
  encode with the same encoder, and predict the masked types through :class:`~geomask.nn.cross_attention.
  AlignBlock` layers that attend to the design's Verilog: ``"chunks"`` over ``verilog_emb [C, D]`` (one key
  per chunk, ``verilog_emb_batch`` from ``follow_batch=["verilog_emb"]``), ``"single"`` over
  ``verilog_vec [1, D]`` per graph (the reference's pooled vector: the attention weight is 1, every node
  gets the same context).  Batches without these fields get MGM only.

``loss = mgm_weight * (mgm_type + mgm_degree) + vga_weight * vga_type``.  Masks come from the generator
passed to :meth:`MGVGA.forward` (MGM's first, then VGA's), batched over the ``batch`` vector: each masker is
called on a :class:`~geomask.masking.layout.RowLayout` of the nodes.  The parts are components: the type loss
(``loss``, default :class:`~geomask.losses.CrossEntropy` over the masked nodes, with
:func:`~geomask.losses.masked_accuracy`), the degree loss (:class:`~geomask.losses.Huber`) and its targets
(:class:`~geomask.targets.NodeDegree`, stored degrees or counted from ``edge_index``).  The method
keeps no state across steps; its dropout draws from the generator's stream (:class:`~geomask.methods.base.Method`).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch_geometric.data import Batch, Data

from geomask.losses import CrossEntropy, Huber, masked_accuracy
from geomask.masking.base import Masker
from geomask.masking.layout import RowLayout
from geomask.methods.base import GRAPH_DATA, Method
from geomask.nn.aggregation import NeighborTable, build_neighbors, dense_table
from geomask.nn.classes import cone_classes, prune_classes
from geomask.nn.deepgcn import DeepGCN
from geomask.nn.heads import FeedForward, ScalarHead, init_normal, mean_max_pool
from geomask.targets import NodeDegree

__all__ = ["MGVGA", "VERILOG_MODES", "graph_batch_vector"]

VERILOG_MODES = ("chunks", "single")


def graph_batch_vector(batch: Data | Batch) -> tuple[Tensor, int]:
    """``(batch vector [N], number of graphs)`` of a ``Batch`` or a single ``Data``."""
    n = batch.node_type.shape[0]
    b = getattr(batch, "batch", None)
    if b is None:
        return torch.zeros(n, dtype=torch.long, device=batch.node_type.device), 1
    return b, int(batch.num_graphs)


class MGVGA(Method):
    """MGM + VGA pretraining of a graph encoder (either part can be switched off).

    Args:
        encoder: ``encoder(x [N, H], edge_index, neighbors) -> [N, H]`` (e.g. :class:`~geomask.nn.deepgcn.
            DeepGCN`).
        hidden: H.
        num_types: number of gate types (``NodeType``: 5).
        mgm_decoder: the light MGM decoder (same interface as the encoder); ``None`` disables MGM.
        mgm_masker: chooses the latent rows MGM masks.
        align: the VGA decoder layers (:class:`~geomask.nn.cross_attention.AlignBlock`); ``None`` disables
            VGA.
        vga_masker: chooses the input nodes VGA masks.
        verilog_mode: ``"chunks"`` or ``"single"``.
        mgm_weight, vga_weight, degree_weight: loss weights.
        huber_delta: delta of the degree Huber loss.
        loss: the gate-type loss ``loss(logits [N, T], types [N], mask [N]) -> scalar`` of MGM and VGA (default
            :class:`~geomask.losses.CrossEntropy`, the mean over the masked nodes).
        head_dropout: dropout at the input of the degree heads' feed-forward (the reference's 0.1).
        dedup: run a DeepGCN encoder/decoder once per cone class (:mod:`geomask.nn.classes`; exact, used
            only where it is: no active dropout, dense neighbour table), and the heads and VGA layers once
            per class (per graph and class for VGA) when no dropout is active in them.
    """

    data_kinds = GRAPH_DATA

    def __init__(
        self,
        encoder: nn.Module,
        hidden: int,
        num_types: int = 5,
        mgm_decoder: nn.Module | None = None,
        mgm_masker: Masker | None = None,
        align: nn.ModuleList | None = None,
        vga_masker: Masker | None = None,
        verilog_mode: str = "chunks",
        mgm_weight: float = 1.0,
        vga_weight: float = 1.0,
        degree_weight: float = 0.1,
        huber_delta: float = 1.0,
        head_dropout: float = 0.1,
        dedup: bool = True,
        loss: nn.Module | None = None,
    ):
        super().__init__()
        if verilog_mode not in VERILOG_MODES:
            raise ValueError(f"unknown verilog_mode {verilog_mode!r}; valid: {', '.join(VERILOG_MODES)}")
        if mgm_decoder is None and align is None:
            raise ValueError("MGVGA needs an MGM decoder, VGA align layers, or both")
        if (mgm_decoder is None) != (mgm_masker is None) or (align is None) != (vga_masker is None):
            raise ValueError("each enabled part needs both its decoder and its masker")
        self.encoder = encoder
        self.hidden = hidden
        self.num_types = num_types
        self.type_emb = nn.Embedding(num_types, hidden)
        self.mgm_decoder = mgm_decoder
        self.mgm_masker = mgm_masker
        self.align = align
        self.vga_masker = vga_masker
        self.verilog_mode = verilog_mode
        self.mgm_weight, self.vga_weight, self.degree_weight = mgm_weight, vga_weight, degree_weight
        self.huber_delta = huber_delta
        self.dedup = dedup
        self.criterion = loss if loss is not None else CrossEntropy()
        self.degree_loss = Huber(huber_delta)
        self.fanin, self.fanout = NodeDegree("in"), NodeDegree("out")
        heads: list[nn.Module] = [self.type_emb]
        if mgm_decoder is not None:
            self.mask_token = nn.Parameter(torch.zeros(hidden))
            self.type_head = nn.Linear(hidden, num_types)
            self.fanin_head = ScalarHead(hidden, head_dropout)
            self.fanout_head = ScalarHead(hidden, head_dropout)
            heads += [self.type_head, self.fanin_head, self.fanout_head]
        else:
            self.register_parameter("mask_token", None)
            self.type_head = self.fanin_head = self.fanout_head = None
        if align is not None:
            self.vga_mask_token = nn.Parameter(torch.zeros(hidden))
            self.vga_head = nn.Linear(hidden, num_types)
            heads += [self.vga_head, align]
        else:
            self.register_parameter("vga_mask_token", None)
            self.vga_head = None
        for m in heads:
            init_normal(m)
        for p in (self.mask_token, self.vga_mask_token):
            if p is not None:
                nn.init.normal_(p, 0.0, 0.02)

    # -- evaluation interface -------------------------------------------------------------------------
    def embed(self, batch: Data | Batch) -> Tensor:
        """Encoder output without masking, ``[N, H]`` (computed per cone class where that is exact)."""
        node_type, edge_index = batch.node_type, batch.edge_index
        nb = build_neighbors(edge_index, node_type.shape[0], edge_type=getattr(batch, "edge_type", None))
        if (
            self.dedup
            and nb.dense
            and nb.etype is None
            and isinstance(self.encoder, DeepGCN)
            and self.encoder.dedup_exact
        ):
            levels = cone_classes(node_type, self.num_types, nb, len(self.encoder.blocks))
            return self.encoder.forward_classes(self.type_emb.weight, levels).index_select(0, levels[-1].inverse)
        return self.encoder(self.type_emb(node_type), edge_index, nb)

    def graph_embed(self, batch: Data | Batch) -> Tensor:
        """Mean and max of :meth:`embed` per graph, ``[B, 2H]``."""
        b, num_graphs = graph_batch_vector(batch)
        return mean_max_pool(self.embed(batch), b, num_graphs)

    def features(self, batch: Data | Batch) -> Tensor:
        """Node embeddings of the unmasked graph, ``[N, H]`` (:meth:`embed`)."""
        return self.embed(batch)

    def unused_parameters(self) -> set[str]:
        """In ``"single"`` mode each node attends to one key, so the attention weight is 1 and the align layers'
        query/key projections and the norm in front of them cannot influence anything (as in the reference)."""
        if self.align is None or self.verilog_mode != "single":
            return set()
        idle = (".attn.q.", ".attn.k.", ".attn_norm.")
        return {n for n, _ in self.align.named_parameters(prefix="align") if any(s in n for s in idle)}

    # -- training -------------------------------------------------------------------------------------
    def has_verilog(self, batch: Data | Batch) -> bool:
        """Whether the batch carries the Verilog field that :attr:`verilog_mode` attends to."""
        key = "verilog_emb" if self.verilog_mode == "chunks" else "verilog_vec"
        return getattr(batch, key, None) is not None

    def loss_terms(self, batch: Data | Batch, generator: torch.Generator) -> dict[str, Tensor]:
        """Losses on a batch of AIG graphs (:meth:`forward`).

        Args:
            batch: ``node_type [N]``, ``edge_index [2, E]``, optionally ``in_degree``/``out_degree [N]``
                and the Verilog fields.
            generator: source of the masks.

        Returns:
            ``loss`` (the total) and its named parts (``mgm_type``, ``mgm_degree``, ``vga_type``), plus the
            detached masked-type accuracies ``mgm_acc`` / ``vga_acc``.
        """
        b, num_graphs = graph_batch_vector(batch)
        node_type, edge_index = batch.node_type, batch.edge_index
        n = node_type.shape[0]
        nb = build_neighbors(edge_index, n, edge_type=getattr(batch, "edge_type", None))  # typed: attr inversions
        rows = RowLayout(b, num_graphs)
        mask = self.mgm_masker(rows, generator) if self.mgm_decoder is not None else None
        vga = self.align is not None and self.has_verilog(batch)
        vmask = self.vga_masker(rows, generator) if vga else None
        if self._dedup(nb):
            (dec, dec_inv), (enc_v, v_inv) = self._encode_classes(node_type, nb, mask, vmask)
        else:
            (dec, dec_inv), (enc_v, v_inv) = self._encode_nodes(node_type, edge_index, nb, mask, vmask)
        out: dict[str, Tensor] = {}
        total = (dec if dec is not None else enc_v).new_zeros(())
        if dec is not None:
            # heads run per row (class) where that is exact: up to an active dropout, per node after it
            preds = [self.type_head(dec)]
            if dec_inv is not None and self._dropout_active(self.fanin_head, self.fanout_head):
                dec_nodes = dec.index_select(0, dec_inv)
                preds = [preds[0].index_select(0, dec_inv), self.fanin_head(dec_nodes), self.fanout_head(dec_nodes)]
            else:
                preds += [self.fanin_head(dec), self.fanout_head(dec)]
                if dec_inv is not None:
                    preds = [p.index_select(0, dec_inv) for p in preds]
            out["mgm_type"] = self.criterion(preds[0], node_type, mask)
            out["mgm_acc"] = masked_accuracy(preds[0], node_type, mask)
            fanin, fanout = self._degrees(batch, n)
            degree = self.degree_loss(preds[1], fanin) + self.degree_loss(preds[2], fanout)
            out["mgm_degree"] = self.degree_weight * degree
            total = total + self.mgm_weight * (out["mgm_type"] + out["mgm_degree"])
        if enc_v is not None:
            keys, key_batch = self._verilog_keys(batch, num_graphs)
            # the loss reads the masked nodes only, and the align layers act on each node alone: run them there
            sel = vmask.nonzero().squeeze(1)
            b_sel = b.index_select(0, sel)
            if v_inv is not None:
                # the context depends on the graph: one row per (graph, class) pair, sorted by graph
                u = enc_v.shape[0]
                pairs, inv = torch.unique(b_sel * u + v_inv.index_select(0, sel), return_inverse=True)
                h, hb = enc_v.index_select(0, pairs % u), pairs // u
            else:
                h, hb, inv = enc_v.index_select(0, sel), b_sel, None
            last = len(self.align) - 1
            for i, blk in enumerate(self.align):
                # the last block folds the prediction head into its feed-forward (fewer per-node columns)
                head = self.vga_head if i == last else None
                if inv is not None and self._dropout_active(blk):
                    # per row up to the block's dropout, per node from there on
                    h, hb, inv = blk(h, hb, keys, key_batch, num_graphs, inverse=inv, head=head), b_sel, None
                else:
                    h = blk(h, hb, keys, key_batch, num_graphs, head=head)
            logits = h if len(self.align) else self.vga_head(h)
            if inv is not None:
                logits = logits.index_select(0, inv)
            every = torch.ones_like(sel, dtype=torch.bool)
            types = node_type.index_select(0, sel)
            out["vga_type"] = self.criterion(logits, types, every)
            out["vga_acc"] = masked_accuracy(logits, types, every)
            total = total + self.vga_weight * out["vga_type"]
        out["loss"] = total
        return out

    def _dropout_active(self, *modules: nn.Module) -> bool:
        """Whether a feed-forward dropout inside ``modules`` is active (rows then differ per node)."""
        return self.training and any(
            m.dropout > 0 for mod in modules for m in mod.modules() if isinstance(m, FeedForward)
        )

    def _dedup(self, nb: NeighborTable) -> bool:
        """Run the encoder per cone class (exact: DeepGCN without active dropout, small in-degree)."""
        mods = [self.encoder] + ([self.mgm_decoder] if self.mgm_decoder is not None else [])
        # cone classes refine on node types only: a typed table (inversions) runs per node
        return (
            self.dedup and nb.dense and nb.etype is None and all(isinstance(m, DeepGCN) and m.dedup_exact for m in mods)
        )

    def _encode_nodes(
        self, node_type: Tensor, edge_index: Tensor, nb: NeighborTable, mask: Tensor | None, vmask: Tensor | None
    ) -> tuple[tuple[Tensor | None, None], tuple[Tensor | None, None]]:
        """Per-node path: ``((MGM decoder output [N, H], None), (VGA encoder output [N, H], None))``, an
        output ``None`` where that part is off (the ``None`` second items: rows are nodes)."""
        x = self.type_emb(node_type)
        dec = enc_v = None
        if mask is not None:
            h = self.encoder(x, edge_index, nb)
            h = torch.where(mask.unsqueeze(1), self.mask_token.to(h.dtype), h)
            dec = self.mgm_decoder(h, edge_index, nb)
        if vmask is not None:
            xv = torch.where(vmask.unsqueeze(1), self.vga_mask_token.to(x.dtype), x)
            enc_v = self.encoder(xv, edge_index, nb)
        return (dec, None), (enc_v, None)

    def _encode_classes(
        self, node_type: Tensor, nb: NeighborTable, mask: Tensor | None, vmask: Tensor | None
    ) -> tuple[tuple[Tensor | None, Tensor | None], tuple[Tensor | None, Tensor | None]]:
        """As :meth:`_encode_nodes`, computed once per cone class: each part is ``(rows [U, H], class of
        every node [N])``.  The MGM (intact) and VGA (masked) copies of the graph go through the encoder
        together and share every class they have in common."""
        n, t = node_type.shape[0], self.num_types
        rows = [self.type_emb.weight]
        colors = []
        if mask is not None:
            colors.append(node_type)
        if vmask is not None:
            rows.append(self.vga_mask_token.unsqueeze(0))
            colors.append(torch.where(vmask, t, node_type))
        copies = len(colors)
        table = nb.table
        stacked = torch.cat([torch.where(table == n, copies * n, table + i * n) for i in range(copies)])
        x0 = torch.cat(rows)
        levels = cone_classes(
            torch.cat(colors), x0.shape[0], dense_table(stacked, copies * n), len(self.encoder.blocks)
        )
        # only these encoder outputs are read: MGM's decoder replaces the masked ones by its token, VGA's loss
        # reads the masked ones
        needed = ([~mask] if mask is not None else []) + ([vmask] if vmask is not None else [])
        levels = prune_classes(levels, torch.cat(needed))
        enc = self.encoder.forward_classes(x0, levels)
        inv = levels[-1].inverse
        dec = enc_v = (None, None)
        if mask is not None:
            u = enc.shape[0]
            dlev = cone_classes(torch.where(mask, u, inv[:n]), u + 1, nb, len(self.mgm_decoder.blocks))
            dec_u = self.mgm_decoder.forward_classes(torch.cat([enc, self.mask_token.unsqueeze(0)]), dlev)
            dec = (dec_u, dlev[-1].inverse)
        if vmask is not None:
            enc_v = (enc, inv[(copies - 1) * n :])
        return dec, enc_v

    def _degrees(self, batch: Data | Batch, n: int) -> tuple[Tensor, Tensor]:
        """Fan-in and fan-out targets ``[N]`` float (:class:`~geomask.targets.NodeDegree`)."""
        return self.fanin(batch, n), self.fanout(batch, n)

    def _verilog_keys(self, batch: Data | Batch, num_graphs: int) -> tuple[Tensor, Tensor]:
        if self.verilog_mode == "single":
            vec = batch.verilog_vec.reshape(num_graphs, -1)
            return vec, torch.arange(num_graphs, device=vec.device)
        emb = batch.verilog_emb
        kb = getattr(batch, "verilog_emb_batch", None)
        if kb is None:
            if num_graphs != 1:
                raise ValueError(
                    'batch lacks verilog_emb_batch: build the DataLoader with follow_batch=["verilog_emb"]'
                )
            kb = torch.zeros(emb.shape[0], dtype=torch.long, device=emb.device)
        return emb, kb
