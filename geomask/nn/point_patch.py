"""Mini-PointNet patch embedding (Point-BERT / Point-MAE), written as message passing.

Every point of a patch sends a message through a shared MLP; the patch aggregates the messages with a
max (a segment max over the patch's points); the patch feature is gathered back to its points,
concatenated with their messages, sent through a second shared MLP and max-aggregated again:

.. math::
    \\mathbf{h}_p = \\mathrm{MLP}_1(\\mathbf{x}_p), \\quad
    \\mathbf{g}_P = \\max_{p \\in P} \\mathbf{h}_p, \\quad
    \\mathbf{t}_P = \\max_{p \\in P} \\mathrm{MLP}_2([\\mathbf{g}_P, \\mathbf{h}_p])

Patches all have K points and are stored contiguously, so the segment max is a max over a ``[G, K]``
view (the scatter-max of a general ``index`` would give the same values, more slowly).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["PatchEmbed", "segment_max"]


def segment_max(x: Tensor, group_size: int) -> Tensor:
    """Max over consecutive segments of ``group_size`` rows.

    Shapes:
        x ``[G * K, C]`` → ``[G, C]``.
    """
    if x.size(0) % group_size:
        raise ValueError(f"{x.size(0)} rows do not split into segments of {group_size}")
    return x.reshape(-1, group_size, x.size(-1)).amax(dim=1)


class PatchEmbed(nn.Module):
    """Embed re-centred point patches into tokens.

    Args:
        out_dim: C, the token width.
        hidden: width of the first MLP's output (the second MLP works at ``2 * hidden``).
        in_dim: coordinates per point (3).

    Shapes:
        neighborhood ``[B, G, K, in_dim]`` → ``[B, G, C]``.
    """

    def __init__(self, out_dim: int, hidden: int = 128, in_dim: int = 3):
        super().__init__()
        self.out_dim = out_dim
        self.mlp1 = nn.Sequential(
            nn.Linear(in_dim, hidden), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True), nn.Linear(hidden, 2 * hidden)
        )
        self.mlp2 = nn.Sequential(
            nn.Linear(4 * hidden, 4 * hidden),
            nn.BatchNorm1d(4 * hidden),
            nn.ReLU(inplace=True),
            nn.Linear(4 * hidden, out_dim),
        )

    def forward(self, neighborhood: Tensor) -> Tensor:
        b, g, k, d = neighborhood.shape
        h = self.mlp1(neighborhood.reshape(b * g * k, d))  # message of every point
        patch = segment_max(h, k)  # [B*G, 2H]
        h = torch.cat([patch.repeat_interleave(k, dim=0), h], dim=-1)  # gather the patch feature back
        return segment_max(self.mlp2(h), k).reshape(b, g, self.out_dim)
