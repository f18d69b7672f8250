"""DGCNN over patch tokens (the encoder and decoder trunk of Point-BERT's dVAE).

EdgeConv on the k-nearest-neighbour graph of the patch centres, as message passing: every edge
``j → i`` carries ``MLP([h_j - h_i, h_i])``, and node ``i`` takes the max over its in-edges

.. math::
    \\mathbf{h}'_i = \\max_{j \\in \\mathcal{N}_k(i)} \\mathrm{MLP}([\\mathbf{h}_j - \\mathbf{h}_i, \\mathbf{h}_i])

The outputs of all layers are concatenated and mapped to the output width by a linear layer.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from geomask.ops.knn import knn

__all__ = ["DGCNN", "EdgeConv"]


class EdgeConv(nn.Module):
    """One EdgeConv layer (``Linear → LayerNorm → LeakyReLU(0.2)`` on edges, max over neighbours).

    Shapes:
        h ``[B, G, C_in]``, nbr ``[B, G, k]`` (neighbour indices) → ``[B, G, C_out]``.
    """

    def __init__(self, in_dim: int, out_dim: int):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(2 * in_dim, out_dim), nn.LayerNorm(out_dim), nn.LeakyReLU(0.2))

    def forward(self, h: Tensor, nbr: Tensor) -> Tensor:
        b, g, k = nbr.shape
        c = h.size(-1)
        hj = torch.gather(h, 1, nbr.reshape(b, g * k, 1).expand(-1, -1, c)).reshape(b, g, k, c)  # gather
        hi = h.unsqueeze(2).expand(-1, -1, k, -1)
        return self.mlp(torch.cat([hj - hi, hi], dim=-1)).amax(dim=2)  # transform, max over in-edges


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
        h = self.input(tokens)
        outs = []
        for layer in self.layers:
            h = layer(h, nbr)
            outs.append(h)
        return self.output(torch.cat(outs, dim=-1))
