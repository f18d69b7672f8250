"""Mini-PointNet patch embedding (Point-BERT / Point-MAE), written as message passing.

Every point of a patch sends a message through a shared MLP; the patch aggregates the messages with a
max (a segment max over the patch's points); the patch feature is combined with each of its points' messages,
sent through a second shared MLP and max-aggregated again:

.. math::
    \\mathbf{h}_p = \\mathrm{MLP}_1(\\mathbf{x}_p), \\quad
    \\mathbf{g}_P = \\max_{p \\in P} \\mathbf{h}_p, \\quad
    \\mathbf{t}_P = \\max_{p \\in P} \\mathrm{MLP}_2([\\mathbf{g}_P, \\mathbf{h}_p])

Both aggregations run on the shared kernel (:func:`geomask.ops.neighbor_aggregate.neighbor_aggregate`): patches all
have K points stored contiguously, the kernel's segment form (:func:`~geomask.ops.neighbor_aggregate.segment_table`),
which reduces a ``[G, K, C]`` view with no index.  The second MLP's first linear map on ``[g_P, h_p]`` splits
into a per-patch part ``W_a g_P + b`` (the kernel's target term, computed once per patch) and a per-point part
``W_b h_p``, instead of a product on the ``4H``-wide concatenation of every point.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from geomask.ops.neighbor_aggregate import neighbor_aggregate, segment_table

__all__ = ["PatchEmbed", "segment_max"]


def segment_max(x: Tensor, group_size: int) -> Tensor:
    """Max over consecutive segments of ``group_size`` rows.

    Shapes:
        x ``[G * K, C]`` → ``[G, C]``.
    """
    if x.size(0) % group_size:
        raise ValueError(f"{x.size(0)} rows do not split into segments of {group_size}")
    return neighbor_aggregate(x, segment_table(x.size(0) // group_size, group_size), "max")


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
        patches = segment_table(b * g, k)
        h = self.mlp1(neighborhood.reshape(b * g * k, d))  # message of every point
        patch = neighbor_aggregate(h, patches, "max")  # [B*G, 2H]
        lin, rest = self.mlp2[0], self.mlp2[1:]
        c = patch.shape[1]
        dst = torch.addmm(lin.bias, patch, lin.weight[:, :c].t())  # W_a g_P + b, once per patch
        w_point = lin.weight[:, c:].t().unsqueeze(0)  # W_b

        def message(m: Tensor) -> Tensor:  # [B*G, K, 4H] → the rest of MLP_2 on every point
            return rest(m.reshape(-1, m.shape[-1])).view(*m.shape[:2], -1)

        out = neighbor_aggregate(h, patches, "max", weight=w_point, message=message, dst_term=dst)
        return out.reshape(b, g, self.out_dim)
