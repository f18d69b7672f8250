"""DGCNN over patch tokens (the encoder and decoder trunk of Point-BERT's dVAE).

EdgeConv on the k-nearest-neighbour graph of the patch centres, as message passing: every edge
``j → i`` carries ``MLP([h_j - h_i, h_i])``, and node ``i`` takes the max over its in-edges

.. math::
    \\mathbf{h}'_i = \\max_{j \\in \\mathcal{N}_k(i)} \\mathrm{MLP}([\\mathbf{h}_j - \\mathbf{h}_i, \\mathbf{h}_i])

It runs on the shared kernel (:func:`geomask.ops.neighbor_aggregate.neighbor_aggregate`, the kNN graph a dense
``[B*G, k]`` table): the MLP's linear map ``W [h_j - h_i, h_i] + b`` splits into a source part ``W_a h_j`` and a
target part ``(W_b - W_a) h_i + b``, so both products run once per token instead of once per edge, and only
the norm and activation run per edge.

The outputs of all layers are concatenated and mapped to the output width by a linear layer.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from geomask.ops.knn import knn
from geomask.ops.neighbor_aggregate import NeighborTable, dense_table, neighbor_aggregate

__all__ = ["DGCNN", "EdgeConv", "knn_table"]


def knn_table(nbr: Tensor) -> NeighborTable:
    """The kNN graph of a batch as the kernel's dense table: row ``b * G + i`` reads rows ``b * G + nbr[b, i]``.

    Shapes:
        nbr ``[B, G, k]`` (indices within each sample) → a table of ``B * G`` targets over ``B * G`` sources.
    """
    b, g, k = nbr.shape
    offset = torch.arange(b, device=nbr.device).view(b, 1, 1) * g
    return dense_table((nbr + offset).reshape(b * g, k), b * g)


class EdgeConv(nn.Module):
    """One EdgeConv layer (``Linear → LayerNorm → LeakyReLU(0.2)`` on edges, max over neighbours).

    The parameters are ``mlp.0`` (the ``Linear(2 * in_dim, out_dim)`` on ``[h_j - h_i, h_i]``) and ``mlp.1``
    (the LayerNorm), as in the per-edge formulation, so checkpoints of either load in the other.

    Shapes:
        h ``[B, G, C_in]``, nbr ``[B, G, k]`` (neighbour indices) or a :func:`knn_table` → ``[B, G, C_out]``.
    """

    def __init__(self, in_dim: int, out_dim: int):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(2 * in_dim, out_dim), nn.LayerNorm(out_dim), nn.LeakyReLU(0.2))

    def forward(self, h: Tensor, nbr: Tensor | NeighborTable) -> Tensor:
        b, g, c = h.shape
        table = nbr if isinstance(nbr, NeighborTable) else knn_table(nbr)
        lin, norm, act = self.mlp
        w_src, w_dst = lin.weight[:, :c], lin.weight[:, c:]
        x = h.reshape(b * g, c)
        dst = torch.addmm(lin.bias, x, (w_dst - w_src).t())  # (W_b - W_a) h_i + b, once per target

        def message(m: Tensor) -> Tensor:
            return act(norm(m))

        out = neighbor_aggregate(x, table, "max", weight=w_src.t().unsqueeze(0), message=message, dst_term=dst)
        return out.view(b, g, -1)


class DGCNN(nn.Module):
    """A stack of :class:`EdgeConv` on the centres' kNN graph (self loop included), concatenated and projected.

    Args:
        in_dim: input token width.
        out_dim: output width.
        hidden: widths of the EdgeConv layers.
        k: neighbours per centre (capped at G).

    Shapes:
        tokens ``[B, G, in_dim]``, centers ``[B, G, 3]`` → ``[B, G, out_dim]``.
    """

    def __init__(self, in_dim: int, out_dim: int, hidden: tuple[int, ...] = (128, 256, 512, 512), k: int = 4):
        super().__init__()
        self.k = k
        self.input = nn.Sequential(nn.Linear(in_dim, hidden[0]), nn.LayerNorm(hidden[0]), nn.LeakyReLU(0.2))
        dims = (hidden[0], *hidden)
        self.layers = nn.ModuleList(EdgeConv(a, b) for a, b in zip(dims[:-1], dims[1:]))
        self.output = nn.Sequential(
            nn.Linear(sum(hidden), out_dim), nn.LayerNorm(out_dim), nn.LeakyReLU(0.2), nn.Linear(out_dim, out_dim)
        )

    def forward(self, tokens: Tensor, centers: Tensor) -> Tensor:
        k = min(self.k, centers.size(1))
        nbr, _ = knn(centers, centers, k, backend="torch")
        table = knn_table(nbr)  # built once, shared by every layer
        h = self.input(tokens)
        outs = []
        for layer in self.layers:
            h = layer(h, table)
            outs.append(h)
        return self.output(torch.cat(outs, dim=-1))
