"""Point-BERT's discrete VAE tokenizer: patches → token ids over a codebook → reconstructed patches.

Encoder: :class:`~geomask.nn.point_patch.PatchEmbed` then :class:`~geomask.nn.dgcnn.DGCNN` to logits over
``V`` codebook entries per patch.  A Gumbel-softmax sample (temperature :math:`\\tau`) mixes the codebook;
a second DGCNN and a folding decoder rebuild each patch: ``Nc = K / 4`` coarse points from an MLP, each
folded with a 2 x 2 grid of seeds into 4 fine points.  The loss is

.. math::
    \\mathcal{L} = \\mathrm{CD}_{L1}(\\text{coarse}, P) + \\mathrm{CD}_{L1}(\\text{fine}, P)
        + \\beta \\, \\mathrm{KL}\\big(\\mathcal{U}_V \\,\\|\\, \\bar{q}\\big)

with :math:`\\bar{q}` the softmax of the logits averaged over a cloud's patches (Point-BERT's codebook-usage
prior).  :func:`gumbel_temperature` and :func:`kl_weight` are the step schedules of :math:`\\tau` and
:math:`\\beta`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from geomask.nn.dgcnn import DGCNN
from geomask.nn.point_patch import PatchEmbed
from geomask.ops.chamfer import chamfer_distance

__all__ = ["DiscreteVAE", "FoldingDecoder", "gumbel_softmax", "gumbel_temperature", "kl_weight"]


def gumbel_temperature(step: int, start: float = 1.0, end: float = 0.0625, steps: int = 100_000) -> float:
    """Exponential decay from ``start`` to ``end`` over ``steps`` steps, then constant."""
    if steps <= 0 or step >= steps:
        return float(end)
    return float(start * math.exp(math.log(end / start) * step / steps))


def kl_weight(step: int, start: float = 0.0, end: float = 0.1, steps: int = 100_000) -> float:
    """Linear ramp of the KL weight from ``start`` to ``end`` over ``steps`` steps, then constant."""
    if steps <= 0 or step >= steps:
        return float(end)
    return float(start + (end - start) * step / steps)


def gumbel_softmax(logits: Tensor, tau: float, generator: torch.Generator | None = None) -> Tensor:
    """Soft Gumbel-softmax sample ``softmax((logits + g) / tau)``, ``g`` Gumbel noise from ``generator``."""
    u = torch.rand(logits.shape, generator=generator, device=logits.device, dtype=logits.dtype)
    g = -torch.log(-torch.log(u.clamp(min=1e-10, max=1.0 - 1e-7)))
    return F.softmax((logits + g) / tau, dim=-1)


class FoldingDecoder(nn.Module):
    """Rebuild a K-point patch from a feature: coarse points, each folded into a 2 x 2 grid of fine points.

    Shapes:
        feature ``[M, D]`` → ``(coarse [M, K / 4, 3], fine [M, K, 3])``.
    """

    def __init__(self, in_dim: int, group_size: int, hidden: int = 256):
        super().__init__()
        if group_size % 4:
            raise ValueError(f"the folding decoder needs a group size divisible by 4, got {group_size}")
        self.num_coarse = group_size // 4
        self.coarse = nn.Sequential(
            nn.Linear(in_dim, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, 3 * self.num_coarse)
        )
        grid = torch.tensor([[-1.0, -1.0], [-1.0, 1.0], [1.0, -1.0], [1.0, 1.0]]) * 0.05
        self.register_buffer("grid", grid, persistent=False)
        self.fold = nn.Sequential(
            nn.Linear(in_dim + 2 + 3, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, hidden),
            nn.ReLU(inplace=True), nn.Linear(hidden, 3),
        )  # fmt: skip

    def forward(self, feature: Tensor) -> tuple[Tensor, Tensor]:
        m = feature.size(0)
        coarse = self.coarse(feature).reshape(m, self.num_coarse, 3)
        c4 = coarse.unsqueeze(2).expand(-1, -1, 4, -1)  # [M, Nc, 4, 3]
        seeds = self.grid.expand(m, self.num_coarse, 4, 2)
        f4 = feature[:, None, None, :].expand(-1, self.num_coarse, 4, -1)
        fine = c4 + self.fold(torch.cat([f4, seeds, c4], dim=-1))
        return coarse, fine.reshape(m, 4 * self.num_coarse, 3)


class DiscreteVAE(nn.Module):
    """The dVAE tokenizer.

    Args:
        group_size: K points per patch (divisible by 4).
        num_tokens: V codebook entries.
        token_dim: width of a codebook entry.
        enc_dim: width of the patch embedding.
        dgcnn_hidden: EdgeConv widths of both DGCNNs.
        dgcnn_k: neighbours in the centres' graph.
        embed_hidden: first width of the patch embedding's MLPs.

    Shapes:
        neighborhood ``[B, G, K, 3]``, centers ``[B, G, 3]``; logits ``[B, G, V]``.
    """

    def __init__(
        self,
        group_size: int,
        num_tokens: int = 8192,
        token_dim: int = 256,
        enc_dim: int = 256,
        dgcnn_hidden: tuple[int, ...] = (128, 256, 512, 512),
        dgcnn_k: int = 4,
        embed_hidden: int = 128,
    ):
        super().__init__()
        self.num_tokens = num_tokens
        self.patch_embed = PatchEmbed(enc_dim, embed_hidden)
        self.encoder = DGCNN(enc_dim, num_tokens, tuple(dgcnn_hidden), dgcnn_k)
        self.codebook = nn.Parameter(torch.randn(num_tokens, token_dim))
        self.decoder_trunk = DGCNN(token_dim, token_dim, tuple(dgcnn_hidden), dgcnn_k)
        self.decoder = FoldingDecoder(token_dim, group_size, 2 * embed_hidden)

    def logits(self, neighborhood: Tensor, centers: Tensor) -> Tensor:
        """Codebook logits of every patch, ``[B, G, V]``."""
        return self.encoder(self.patch_embed(neighborhood), centers)

    @torch.no_grad()
    def tokenize(self, neighborhood: Tensor, centers: Tensor) -> Tensor:
        """Token id of every patch (argmax of the logits), ``[B, G]`` int64."""
        return self.logits(neighborhood, centers).argmax(-1)

    def forward(
        self, neighborhood: Tensor, centers: Tensor, tau: float, beta: float, generator: torch.Generator | None = None
    ) -> dict[str, Tensor]:
        """The dVAE losses: ``loss``, ``recon_coarse``, ``recon_fine``, ``kl``."""
        b, g, k, _ = neighborhood.shape
        logits = self.logits(neighborhood, centers)
        soft = gumbel_softmax(logits, tau, generator)
        tokens = soft @ self.codebook  # [B, G, D]
        feature = self.decoder_trunk(tokens, centers).reshape(b * g, -1)
        coarse, fine = self.decoder(feature)
        target = neighborhood.reshape(b * g, k, 3)
        rc = chamfer_distance(coarse, target, "l1")
        rf = chamfer_distance(fine, target, "l1")
        mean_q = F.softmax(logits, dim=-1).mean(dim=1)  # [B, V]
        kl = (math.log(1.0 / self.num_tokens) - torch.log(mean_q.clamp(min=1e-12))).mean(-1).sum() / b
        return {"loss": rc + rf + beta * kl, "recon_coarse": rc, "recon_fine": rf, "kl": kl}
