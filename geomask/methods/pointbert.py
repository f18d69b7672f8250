"""Point-BERT (Yu et al., CVPR 2022): masked point modeling against a dVAE tokenizer's token ids.

Patches (FPS centres + kNN groups, re-centred) are embedded by a mini-PointNet; block masking hides
25-45 % of every cloud's patches as one contiguous block; the input tokens of masked patches are replaced by
a learned mask token *inside* the encoder (positions kept), a class token is prepended, and a linear head
predicts the token id the dVAE (:class:`~geomask.nn.dvae.DiscreteVAE`) gives each masked patch:

.. math::
    \\mathcal{L}_{MPM} = \\frac{1}{|M|} \\sum_{P \\in M} \\mathrm{CE}(\\mathrm{head}(\\mathbf{h}_P), \\mathrm{id}(P))

``stage`` selects the paper's two stages or both in one run:

* ``"dvae"``: train the tokenizer only (loss = dVAE loss);
* ``"mpm"``: the tokenizer is frozen (load its weights into ``dvae`` first) and only MPM trains;
* ``"joint"``: both losses summed, the MPM targets taken from the current tokenizer without gradient (one
  ``geomask pretrain`` run; not the paper's schedule).

The Gumbel temperature and KL weight follow :func:`~geomask.nn.dvae.gumbel_temperature` /
:func:`~geomask.nn.dvae.kl_weight` of the buffer ``num_updates``, the number of optimiser steps taken
(advanced by :meth:`PointBERT.on_train_step_end`, never by ``forward``; saved in checkpoints, so a resumed run
continues the schedules).  The MPM targets are the tokenizer's ids in inference mode (its BatchNorm on running
statistics, :class:`~geomask.targets.TokenIds`): in stage ``"mpm"`` the frozen tokenizer stays in eval mode
whatever :meth:`PointBERT.train` is told; in stage ``"joint"`` it trains, and only the target computation runs it
in inference mode, restored before ``forward`` returns.  Point-BERT's auxiliary MoCo loss is not included.

The masker (default ``{name: block, low: mask_low, high: mask_high}``) is called on a
:class:`~geomask.masking.layout.PatchLayout` of the centres; the MPM loss (default ``{name: cross_entropy}``,
:class:`~geomask.losses.CrossEntropy` over the masked patches, with :func:`~geomask.losses.masked_accuracy`)
is any registered ``loss(logits [P, V], ids [P]) -> scalar``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from geomask.losses import CrossEntropy, masked_accuracy
from geomask.masking.base import Masker
from geomask.masking.block import BlockPatchMasker
from geomask.masking.layout import PatchLayout
from geomask.methods.base import Method
from geomask.methods.compose import loss_section, masker_section, section_aliases
from geomask.nn.dvae import DiscreteVAE, gumbel_temperature, kl_weight
from geomask.nn.point_patch import PatchEmbed
from geomask.nn.point_transformer import CenterEmbed, PatchTransformer
from geomask.points.patches import PointPatches, as_point_batch, group_points
from geomask.targets import TokenIds

__all__ = ["PointBERT", "build_pointbert"]

STAGES = ("dvae", "mpm", "joint")


class PointBERT(Method):
    """Point-BERT pretraining.

    Args:
        dvae: the tokenizer.
        num_groups: G patches per cloud.
        group_size: K points per patch.
        dim: token width C.
        depth: transformer blocks.
        heads: attention heads.
        stage: ``"dvae"``, ``"mpm"`` or ``"joint"``.
        masker: chooses the masked patches (default: Point-BERT's block masking of 25-45 %).
        tau_start, tau_end, tau_steps: Gumbel temperature schedule.
        kl_start, kl_end, kl_steps: KL weight schedule.
        dropout: dropout inside the transformer blocks.
        embed_hidden: first width of the patch embedding's MLPs (128 in the paper).
        loss: the MPM loss ``loss(logits [P, V], ids [P]) -> scalar`` (default :class:`~geomask.losses.CrossEntropy`).
    """

    data_kinds = ("objects", "scan_objects")

    def __init__(
        self,
        dvae: DiscreteVAE,
        num_groups: int = 64,
        group_size: int = 32,
        dim: int = 384,
        depth: int = 12,
        heads: int = 6,
        stage: str = "joint",
        masker: Masker | None = None,
        tau_start: float = 1.0,
        tau_end: float = 0.0625,
        tau_steps: int = 100_000,
        kl_start: float = 0.0,
        kl_end: float = 0.1,
        kl_steps: int = 100_000,
        dropout: float = 0.0,
        embed_hidden: int = 128,
        loss: nn.Module | None = None,
    ):
        super().__init__()
        if stage not in STAGES:
            raise ValueError(f"unknown Point-BERT stage {stage!r}; valid: {', '.join(STAGES)}")
        self.dvae = dvae
        self.num_groups, self.group_size, self.stage = num_groups, group_size, stage
        self.masker = masker if masker is not None else BlockPatchMasker()
        self.criterion = loss if loss is not None else CrossEntropy()
        self.tau = (tau_start, tau_end, tau_steps)
        self.beta = (kl_start, kl_end, kl_steps)
        self.patch_embed = PatchEmbed(dim, embed_hidden)
        self.pos_embed = CenterEmbed(dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.cls_pos = nn.Parameter(torch.zeros(1, 1, dim))
        self.mask_token = nn.Parameter(torch.zeros(dim))
        self.encoder = PatchTransformer(dim, depth, heads, dropout=dropout)
        self.head = nn.Linear(dim, dvae.num_tokens)
        for p in (self.cls_token, self.cls_pos, self.mask_token):
            nn.init.trunc_normal_(p, std=0.02)
        self.register_buffer("num_updates", torch.zeros((), dtype=torch.long))
        if stage == "mpm":
            self.dvae.requires_grad_(False)
            self.dvae.eval()
        if stage == "dvae":
            for m in (self.patch_embed, self.pos_embed, self.encoder, self.head):
                m.requires_grad_(False)
            for p in (self.cls_token, self.cls_pos, self.mask_token):
                p.requires_grad_(False)

    def train(self, mode: bool = True) -> PointBERT:
        """Set the training mode; in stage ``"mpm"`` the frozen tokenizer stays in eval mode."""
        super().train(mode)
        if self.stage == "mpm":
            self.dvae.eval()
        return self

    def on_train_step_end(self, step: int) -> None:
        """Advance the Gumbel temperature and KL weight schedules by one step."""
        self.num_updates += 1

    @property
    def tokens(self) -> TokenIds:
        """The MPM target: the tokenizer's token ids, computed in inference mode without gradient (a view on
        ``dvae``, not a submodule of its own, so the state dict holds the tokenizer once)."""
        return TokenIds(self.dvae)

    def group(self, batch: Any, generator: torch.Generator | None = None) -> PointPatches:
        """Patches of a batch (FPS start drawn from ``generator``)."""
        return group_points(as_point_batch(batch), self.num_groups, self.group_size, generator)

    def schedules(self) -> tuple[float, float]:
        """The current Gumbel temperature and KL weight."""
        step = int(self.num_updates)
        return gumbel_temperature(step, *self.tau), kl_weight(step, *self.beta)

    def encode(self, patches: PointPatches, mask: Tensor | None = None) -> Tensor:
        """Encoder output ``[B, 1 + G, C]`` (class token first); masked patches' tokens → the mask token."""
        tokens = self.patch_embed(patches.neighborhood)
        if mask is not None:
            tokens = torch.where(mask.unsqueeze(-1), self.mask_token.to(tokens.dtype), tokens)
        b = tokens.size(0)
        x = torch.cat([self.cls_token.expand(b, -1, -1), tokens], dim=1)
        pos = torch.cat([self.cls_pos.expand(b, -1, -1), self.pos_embed(patches.centers)], dim=1)
        return self.encoder(x, pos)

    def loss_terms(self, batch: Any, generator: torch.Generator) -> dict[str, Tensor]:
        """Losses: ``loss``; ``mpm`` (CE) and ``mpm_acc`` unless stage is dvae; the dVAE's terms unless mpm."""
        patches = self.group(batch, generator)
        tau, beta = self.schedules()
        out: dict[str, Tensor] = {}
        total = patches.centers.new_zeros(())
        if self.stage != "mpm":
            d = self.dvae(patches.neighborhood, patches.centers, tau, beta, generator)
            total = total + d["loss"]
            out.update({f"dvae_{k}": v for k, v in d.items() if k != "loss"})
            out["dvae"] = d["loss"]
        if self.stage != "dvae":
            target = self.tokens(patches.neighborhood, patches.centers)
            b, g = patches.centers.shape[:2]
            mask = self.masker(PatchLayout(patches.centers), generator).view(b, g)
            h = self.encode(patches, mask)[:, 1:]
            logits = self.head(h[mask])
            ce = self.criterion(logits, target[mask])
            total = total + ce
            out["mpm"] = ce
            out["mpm_acc"] = masked_accuracy(logits, target[mask])
        out["loss"] = total
        return out

    @torch.no_grad()
    def embed(self, batch: Any) -> Tensor:
        """Frozen features: class token and max of the patch tokens, ``[B, 2C]`` (FPS from index 0)."""
        x = self.encode(self.group(batch, None))
        return torch.cat([x[:, 0], x[:, 1:].amax(1)], dim=-1)

    def features(self, batch: Any) -> Tensor:
        """:meth:`embed`: class token and max of the patch tokens, ``[B, 2C]``."""
        return self.embed(batch)


@section_aliases(masker=("mask_low", "mask_high"))
def build_pointbert(
    *,
    num_groups: int = 64,
    group_size: int = 32,
    dim: int = 384,
    depth: int = 12,
    heads: int = 6,
    stage: str = "joint",
    num_tokens: int = 8192,
    token_dim: int = 256,
    dvae_dim: int = 256,
    dgcnn_hidden: list[int] | tuple[int, ...] = (128, 256, 512, 512),
    dgcnn_k: int = 4,
    mask_low: float = 0.25,
    mask_high: float = 0.45,
    masker: Mapping | str | None = None,
    loss: Mapping | str | None = None,
    tau_start: float = 1.0,
    tau_end: float = 0.0625,
    tau_steps: int = 100_000,
    kl_start: float = 0.0,
    kl_end: float = 0.1,
    kl_steps: int = 100_000,
    dropout: float = 0.0,
    embed_hidden: int = 128,
) -> PointBERT:
    """Point-BERT by keywords (the paper's ShapeNet setting is the default).

    ``masker`` defaults to ``{name: block, low: mask_low, high: mask_high}``, ``loss`` (MPM's) to
    ``{name: cross_entropy}``.
    """
    msk = masker_section(masker, {"name": "block", "low": mask_low, "high": mask_high}, layout=PatchLayout)
    crit = loss_section(loss, {"name": "cross_entropy"})
    dvae = DiscreteVAE(group_size, num_tokens, token_dim, dvae_dim, tuple(dgcnn_hidden), dgcnn_k, embed_hidden)
    return PointBERT(
        dvae, num_groups, group_size, dim, depth, heads, stage, msk,
        tau_start, tau_end, tau_steps, kl_start, kl_end, kl_steps, dropout, embed_hidden, crit,
    )  # fmt: skip
