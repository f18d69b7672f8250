"""HPM (Wang et al., CVPR 2023, *Hard Patches Mining for Masked Image Modeling*): MAE that also learns which patches
are hard, and masks them more and more.

Parts: :class:`~geomask.methods.mae.MAE` (visible-only ViT, light decoder, ``norm_pix`` L2 on masked patches), plus
a **loss predictor**, a second light :class:`~geomask.nn.vit.MAEDecoder` with one output per patch over the same
latents, trained to rank the masked patches by their reconstruction loss.  Its objective is HPM's relative one
(``forward_learning_loss(relative=True)``): for every pair ``(i, j)`` of masked patches of one image whose true
per-patch losses differ, a binary cross-entropy that ``ŝ_j - ŝ_i`` has the sign of ``ℓ_j - ℓ_i``:

.. math::
    \\mathcal{L}_{rank} = \\frac{1}{|P|} \\sum_{(b, i, j) \\in P}
        -\\left[ y_{bij} \\log \\sigma(\\hat{s}_{bj} - \\hat{s}_{bi}) + (1 - y_{bij}) \\log \\sigma(\\hat{s}_{bi} -
        \\hat{s}_{bj}) \\right],
    \\quad y_{bij} = [\\ell_{bj} > \\ell_{bi}]

over ``P`` = the ordered pairs of masked patches of the same image with ``ℓ_{bi} ≠ ℓ_{bj}``
(:func:`pairwise_ranking_loss`; HPM writes ``log(σ + 1e-6)``, here the exact ``logsigmoid``).  ``ℓ`` is the
per-patch mean squared error in target units (MAE's / HPM's per-patch loss), without gradient: only the order of
the losses is learned, never their values.  The total is ``reconstruction + rank_weight · ranking``.

**Masking, easy → hard.**  Before the training pass the method scores every patch with the loss predictor on
the encoder's view of the *whole* image, without gradient; the masker is ``scored`` (default ``{name: scored,
ratio: 0.75, fraction: 0.5}``) over those scores: of the ``M`` masked patches, ``round(f_t M)`` are those of
highest predicted loss, the others random, with ``f_t = easy_to_hard(t, total_steps, final=fraction)``
(:func:`~geomask.masking.scored.easy_to_hard`: HPM's ``(epoch + 1) / epochs · 0.5`` with steps for epochs).
``t`` is the ``step`` buffer, the number of optimiser steps taken, advanced by :meth:`HPM.on_train_step_end` only
(``forward`` changes nothing) and saved in checkpoints.  Any other masker on the token grid works too (plain MAE
masking; the predictor still learns).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from geomask.errors import UsageError
from geomask.masking.base import Masker
from geomask.masking.layout import TokenGridLayout
from geomask.masking.scored import ScoredLayout, ScoredMasker, easy_to_hard
from geomask.methods.compose import loss_section, masker_section
from geomask.methods.mae import MAE, build_mae, image_values
from geomask.nn.vit import MAEDecoder

__all__ = ["HPM", "build_hpm", "pairwise_ranking_loss"]


def pairwise_ranking_loss(scores: Tensor, losses: Tensor, mask: Tensor | None = None) -> Tensor:
    """HPM's relative loss-prediction objective (module docstring): BCE over ordered pairs of counted patches.

    Args:
        scores: ``[B, L]`` predicted (any scale: only differences matter).
        losses: ``[B, L]`` true per-patch losses (read without gradient).
        mask: ``[B, L]`` bool, True = the patch takes part (the masked patches); ``None`` = all.

    Returns:
        The mean BCE over the pairs of the same sample whose true losses differ; 0 (with a zero gradient) when
        there is none.

    Shapes:
        ``[B, L]`` → scalar; memory ``B · L²``.
    """
    if scores.shape != losses.shape or scores.dim() != 2:
        raise UsageError(f"scores and losses must both be [B, L], got {tuple(scores.shape)} and {tuple(losses.shape)}")
    t = losses.detach()
    harder = t[:, None, :] > t[:, :, None]  # [b, i, j]: patch j's loss is above patch i's
    easier = t[:, None, :] < t[:, :, None]
    valid = harder | easier
    if mask is not None:
        if mask.shape != scores.shape or mask.dtype != torch.bool:
            raise UsageError(f"mask must be a {tuple(scores.shape)} bool tensor, got {mask.dtype} {tuple(mask.shape)}")
        valid = valid & mask[:, :, None] & mask[:, None, :]
    diff = scores[:, None, :] - scores[:, :, None]  # s_j - s_i
    bce = -torch.where(harder, F.logsigmoid(diff), F.logsigmoid(-diff))
    return torch.where(valid, bce, bce.new_zeros(())).sum() / valid.sum().clamp(min=1)


class HPM(MAE):
    """HPM pretraining (module docstring).

    Args:
        encoder, decoder, loss, target, pool: as :class:`~geomask.methods.mae.MAE`.
        masker: ``scored`` (easy → hard over the predictor's scores; its ``fraction`` is the final hard share)
            or any token-grid masker (no schedule).
        predictor: the loss predictor, a :class:`~geomask.nn.vit.MAEDecoder` from the encoder's width to 1.
        total_steps: the schedule's length (HPM's epochs): the hard share reaches ``fraction`` there.
        rank_weight: weight of the ranking loss in the total.
    """

    def __init__(
        self,
        encoder: nn.Module,
        decoder: MAEDecoder,
        masker: Masker,
        loss: nn.Module,
        target: nn.Module | None,
        predictor: MAEDecoder,
        total_steps: int,
        rank_weight: float = 1.0,
        pool: str = "mean",
    ):
        super().__init__(encoder, decoder, masker, loss, target, pool)
        if isinstance(total_steps, bool) or not isinstance(total_steps, int) or total_steps < 1:
            raise UsageError(f"hpm: total_steps must be an integer >= 1, got {total_steps!r}")
        if not rank_weight >= 0:
            raise UsageError(f"hpm: rank_weight must be >= 0, got {rank_weight!r}")
        self.predictor = predictor
        self.total_steps, self.rank_weight = total_steps, float(rank_weight)
        self.register_buffer("step", torch.zeros((), dtype=torch.long))  # optimiser steps taken (checkpointed)

    def hard_fraction(self) -> float:
        """The share of masked patches chosen by predicted loss at the current step (0 without a schedule)."""
        if not isinstance(self.masker, ScoredMasker):
            return 0.0
        return easy_to_hard(int(self.step), self.total_steps, self.masker.fraction)

    @torch.no_grad()
    def predicted_losses(self, values: Tensor) -> Tensor:
        """The loss predictor's scores of every patch from the encoder's view of the whole image, ``[B, L]``
        (no gradient)."""
        grid = self.encoder.grid(values)
        ids = torch.arange(math.prod(grid), device=values.device).expand(values.size(0), -1)
        latent = self.encoder(values)
        return self.predictor(latent, ids, grid)[..., 0].float()

    def draw_mask(self, values: Tensor, generator: torch.Generator) -> Tensor:
        """This step's mask ``[B, L]`` (True = masked): ``scored`` over :meth:`predicted_losses` with the hard share
        of :meth:`hard_fraction`, or the plain masker on the token grid."""
        layout = TokenGridLayout(values.size(0), self.encoder.grid(values), values.device)
        if isinstance(self.masker, ScoredMasker):
            m = self.masker
            masker = ScoredMasker(m.ratio, self.hard_fraction(), m.temperature)
            mask = masker(ScoredLayout(layout, self.predicted_losses(values)), generator)
        else:
            mask = self.masker(layout, generator)
        return mask.view(values.size(0), -1)

    def loss_terms(self, batch: Any, generator: torch.Generator) -> dict[str, Tensor]:
        """``loss`` = ``reconstruction`` + ``rank_weight`` · ``ranking``."""
        x = image_values(batch, generator)
        p = self.encode(x, self.draw_mask(x, generator))
        pred = self.decoder(p.latent, p.ids_keep, p.grid, p.padding)
        target = self.patch_targets(x)
        reconstruction = self.criterion(pred, target, p.mask)
        scores = self.predictor(p.latent, p.ids_keep, p.grid, p.padding)[..., 0]
        per_patch = (pred.detach() - target).pow(2).mean(-1)
        ranking = pairwise_ranking_loss(scores, per_patch, p.mask)
        return {
            "loss": reconstruction + self.rank_weight * ranking,
            "reconstruction": reconstruction,
            "ranking": ranking,
        }

    def on_train_step_end(self, step: int) -> None:
        """Move the easy → hard schedule: ``step + 1`` optimiser steps have been taken."""
        self.step.fill_(int(step) + 1)


def build_hpm(
    *,
    image_size: int | Sequence[int] = 224,
    patch_size: int | Sequence[int] = 16,
    in_channels: int = 3,
    spatial_dims: int = 2,
    dim: int = 768,
    depth: int = 12,
    heads: int = 12,
    mlp_ratio: float = 4.0,
    decoder_dim: int = 512,
    decoder_depth: int = 8,
    decoder_heads: int = 16,
    predictor_depth: int | None = None,
    masker: Mapping | str | None = None,
    loss: Mapping | str | None = None,
    norm_pix: bool = True,
    total_steps: int = 1000,
    rank_weight: float = 1.0,
    cls_token: bool = True,
    eps: float = 1e-6,
    pool: str = "mean",
) -> HPM:
    """HPM by keywords (MAE's ViT-B/16 at 224, its 8-block 512-wide decoder and a loss predictor of the same size).

    ``masker`` defaults to ``{name: scored, ratio: 0.75, fraction: 0.5}`` (HPM's final hard share), ``loss`` to
    ``{name: l2}``; ``predictor_depth`` (default: ``decoder_depth``) sizes the loss predictor, which has the
    decoder's width and heads; ``total_steps`` is the length of the easy → hard schedule.
    """
    mae = build_mae(
        image_size=image_size,
        patch_size=patch_size,
        in_channels=in_channels,
        spatial_dims=spatial_dims,
        dim=dim,
        depth=depth,
        heads=heads,
        mlp_ratio=mlp_ratio,
        decoder_dim=decoder_dim,
        decoder_depth=decoder_depth,
        decoder_heads=decoder_heads,
        norm_pix=norm_pix,
        cls_token=cls_token,
        eps=eps,
        pool=pool,
    )
    msk = masker_section(masker, {"name": "scored", "ratio": 0.75, "fraction": 0.5})
    if not isinstance(msk, ScoredMasker) and not issubclass(TokenGridLayout, tuple(msk.layouts)):
        raise UsageError(f"method.masker: hpm masks patches: give 'scored' or a token-grid masker, got {msk.name!r}")
    predictor = MAEDecoder(
        dim,
        1,
        decoder_dim,
        decoder_depth if predictor_depth is None else predictor_depth,
        decoder_heads,
        mlp_ratio,
        spatial_dims=spatial_dims,
        grid=mae.encoder.image_grid,
        cls_token=cls_token,
        eps=eps,
    )
    crit = loss_section(loss, {"name": "l2"})
    return HPM(mae.encoder, mae.decoder, msk, crit, mae.target, predictor, total_steps, rank_weight, pool)
