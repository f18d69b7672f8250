"""Cross-attention from circuit nodes to their design's Verilog chunk embeddings, batched over graphs.

Node ``i`` of graph ``b`` attends over the chunks ``c`` of the same design only:

.. math::
    \\mathrm{ctx}_i = \\mathbf{W}_o \\big\\Vert_{h} \\sum_{c \\in \\mathcal{C}(b)}
    \\mathrm{softmax}_c\\Big(\\frac{\\mathbf{q}^h_i \\cdot \\mathbf{k}^h_c}{\\sqrt{d}}\\Big)\\, \\mathbf{v}^h_c,
    \\quad \\mathbf{q} = \\mathbf{W}_q \\mathbf{x}_i,\\ \\mathbf{k} = \\mathbf{W}_k \\mathbf{e}_c,\\
    \\mathbf{v} = \\mathbf{W}_v \\mathbf{e}_c

Keys are projected from the text-encoder width D to H first (cheap: C rows).  Nodes and chunks are padded
per graph (``to_dense_batch``) and attention runs as one ``scaled_dot_product_attention`` with a key
padding mask, so there is no loop over graphs and padded queries never produce NaN (every graph has at
least one key).  With one key per graph (the reference's single pooled vector) the weights are identically
1: every node of a graph receives the same context ``W_o W_v e``; that case is computed directly.

:class:`AlignBlock` is MGVGA's alignment decoder layer: pre-norm cross-attention and feed-forward, each
with a residual.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.utils import to_dense_batch

from geomask.nn.heads import FeedForward

__all__ = ["AlignBlock", "NodeChunkCrossAttention"]


class NodeChunkCrossAttention(nn.Module):
    """Multi-head attention from nodes (queries) to per-graph key/value rows of width D.

    Args:
        hidden: H, node width (and output width).
        key_dim: D, width of the chunk embeddings.
        heads: number of heads (H must be divisible by it).

    Shapes:
        x ``[N, H]``, batch ``[N]``, keys ``[C, D]``, key_batch ``[C]`` → ``[N, H]``.
    """

    def __init__(self, hidden: int, key_dim: int, heads: int = 8):
        super().__init__()
        if hidden % heads:
            raise ValueError(f"hidden ({hidden}) must be divisible by heads ({heads})")
        self.heads = heads
        self.q = nn.Linear(hidden, hidden)
        self.k = nn.Linear(key_dim, hidden)
        self.v = nn.Linear(key_dim, hidden)
        self.out = nn.Linear(hidden, hidden)

    def forward(self, x: Tensor, batch: Tensor, keys: Tensor, key_batch: Tensor, num_graphs: int) -> Tensor:
        """Attend from every node to the keys of its own graph.

        Args:
            x: ``[N, H]`` node states.
            batch: ``[N]`` graph of each node.
            keys: ``[C, D]`` chunk embeddings of all graphs.
            key_batch: ``[C]`` graph of each chunk; every graph needs at least one.
            num_graphs: B.
        """
        n, hid = x.shape
        counts = key_batch.bincount(minlength=num_graphs)
        if keys.shape[0] == num_graphs and bool((counts == 1).all()):
            # one key per graph: softmax over a single key is 1, the context is W_o W_v e of the graph
            ctx = self.out(self.v(keys.to(x.dtype)))
            order = key_batch.argsort()
            return ctx[order].index_select(0, batch)
        if bool((counts == 0).any()):
            raise ValueError("every graph needs at least one Verilog chunk for cross-attention")
        k = self.k(keys.to(x.dtype))
        v = self.v(keys.to(x.dtype))
        kd, kmask = to_dense_batch(k, key_batch, batch_size=num_graphs)
        vd, _ = to_dense_batch(v, key_batch, batch_size=num_graphs)
        qd, qmask = to_dense_batch(self.q(x), batch, batch_size=num_graphs)
        b, lq, lk, d = num_graphs, qd.shape[1], kd.shape[1], hid // self.heads
        qh = qd.view(b, lq, self.heads, d).transpose(1, 2)
        kh = kd.view(b, lk, self.heads, d).transpose(1, 2)
        vh = vd.view(b, lk, self.heads, d).transpose(1, 2)
        att = F.scaled_dot_product_attention(qh, kh, vh, attn_mask=kmask[:, None, None, :])
        out = att.transpose(1, 2).reshape(b, lq, hid)[qmask]
        return self.out(out)


class AlignBlock(nn.Module):
    """``x + attn(LN(x))`` then ``x + ffn(LN(x))``.

    Args:
        hidden: H.
        key_dim: D.
        heads: attention heads.
        dropout: dropout at the feed-forward input.

    Shapes:
        as :class:`NodeChunkCrossAttention`.
    """

    def __init__(self, hidden: int, key_dim: int, heads: int = 8, dropout: float = 0.1):
        super().__init__()
        self.attn_norm = nn.LayerNorm(hidden)
        self.attn = NodeChunkCrossAttention(hidden, key_dim, heads)
        self.ffn_norm = nn.LayerNorm(hidden)
        self.ffn = FeedForward(hidden, dropout)

    def forward(
        self,
        x: Tensor,
        batch: Tensor,
        keys: Tensor,
        key_batch: Tensor,
        num_graphs: int,
        inverse: Tensor | None = None,
        head: nn.Linear | None = None,
    ) -> Tensor:
        """Apply the block; with ``inverse``, ``x`` and ``batch`` are distinct rows (e.g. one per graph and cone
        class) and node ``v``'s input is row ``inverse[v]``: everything before the feed-forward's dropout runs
        once per row, the rest per node (exact, whatever the dropout).  With ``head`` (a ``Linear(H, K)``,
        e.g. the prediction layer after the last block) the result is ``head(block(x))``, computed with the
        head folded into the feed-forward's last layer and applied to the residual before ``inverse``.

        Shapes:
            x ``[R, H]``, batch ``[R]``, inverse ``[N]`` → ``[N, H]`` (``R = N`` without ``inverse``), or
            ``[N, K]`` with ``head``.
        """
        x = x + self.attn(self.attn_norm(x), batch, keys, key_batch, num_graphs)
        h = self.ffn_norm(x)
        if head is not None:
            x = head(x)  # head(x + ffn(h)) = head(x) + head.weight @ ffn(h)
        if inverse is not None:
            x, h = x.index_select(0, inverse), h.index_select(0, inverse)
        return x + self.ffn(h, None if head is None else head.weight)
