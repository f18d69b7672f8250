"""Point-MAE (Pang et al., ECCV 2022): masked autoencoding of point patches.

Patches (FPS centres + kNN groups, re-centred) are embedded by a mini-PointNet; a random 60 % of every
cloud's patches is masked; the encoder sees the visible tokens only; a light decoder gets the encoded
visible tokens plus a shared mask token at every masked position (all with centre positional embeddings)
and a linear head predicts the ``K`` points of every masked patch, scored by Chamfer-L2:

.. math::
    \\mathcal{L} = \\frac{1}{|M|} \\sum_{P \\in M} \\mathrm{CD}_{L2}(\\hat{P}, P)

The parts are components: the masker (default ``{name: random_patches, ratio: mask_ratio}``) is called on a
:class:`~geomask.masking.layout.PatchLayout` of the centres and must hide the same number of patches in every
cloud (``uniform`` and ``random_patches`` do; ``block`` draws a ratio per cloud); the loss (default
``{name: chamfer_l2}``, :class:`~geomask.losses.ChamferL2`) scores ``[P, K, 3]`` predicted against true patches.

Batches are ``[B, N, 3]`` point tensors (or objects with ``pos``; see
:func:`~geomask.points.patches.as_point_batch`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from geomask.errors import UsageError
from geomask.losses import ChamferL2
from geomask.masking.base import Masker
from geomask.masking.layout import PatchLayout
from geomask.masking.random_patches import RandomPatchMasker
from geomask.methods.base import Method
from geomask.methods.compose import loss_section, masker_section, section_aliases
from geomask.nn.point_patch import PatchEmbed
from geomask.nn.point_transformer import CenterEmbed, PatchTransformer
from geomask.points.patches import PointPatches, as_point_batch, group_points

__all__ = ["PointMAE", "build_pointmae"]


class PointMAE(Method):
    """Point-MAE pretraining.

    Args:
        num_groups: G patches per cloud.
        group_size: K points per patch.
        dim: token width C.
        depth: encoder blocks.
        decoder_depth: decoder blocks.
        heads: attention heads.
        masker: chooses the masked patches (default: 60 % random patches, Point-MAE's).
        dropout: dropout inside the transformer blocks.
        embed_hidden: first width of the patch embedding's MLPs (128 in the paper).
        loss: ``loss(pred [P, K, 3], target [P, K, 3]) -> scalar`` (default :class:`~geomask.losses.ChamferL2`).
    """

    data_kinds = ("objects", "scan_objects")

    def __init__(
        self,
        num_groups: int = 64,
        group_size: int = 32,
        dim: int = 384,
        depth: int = 12,
        decoder_depth: int = 4,
        heads: int = 6,
        masker: Masker | None = None,
        dropout: float = 0.0,
        embed_hidden: int = 128,
        loss: nn.Module | None = None,
    ):
        super().__init__()
        self.num_groups, self.group_size, self.dim = num_groups, group_size, dim
        self.masker = masker if masker is not None else RandomPatchMasker(0.6)
        self.criterion = loss if loss is not None else ChamferL2()
        self.patch_embed = PatchEmbed(dim, embed_hidden)
        self.pos_embed = CenterEmbed(dim)
        self.encoder = PatchTransformer(dim, depth, heads, dropout=dropout)
        self.mask_token = nn.Parameter(torch.zeros(dim))
        self.decoder_pos_embed = CenterEmbed(dim)
        self.decoder = PatchTransformer(dim, decoder_depth, heads, dropout=dropout)
        self.head = nn.Linear(dim, 3 * group_size)
        nn.init.trunc_normal_(self.mask_token, std=0.02)

    def group(self, batch: Any, generator: torch.Generator | None = None) -> PointPatches:
        """Patches of a batch (FPS start drawn from ``generator``)."""
        return group_points(as_point_batch(batch), self.num_groups, self.group_size, generator)

    def loss_terms(self, batch: Any, generator: torch.Generator) -> dict[str, Tensor]:
        """Losses ``loss`` (= ``chamfer``, the masked patches' Chamfer-L2)."""
        patches = self.group(batch, generator)
        b, g, k, _ = patches.neighborhood.shape
        mask = self.masker(PatchLayout(patches.centers), generator).view(b, g)
        per_cloud = mask.sum(1)
        g_m = int(per_cloud[0])
        if not 0 < g_m < g or not bool((per_cloud == g_m).all()):
            raise UsageError(
                f"pointmae: the masker must hide the same number of patches in every cloud, at least one and not "
                f"all {g}; masker {getattr(self.masker, 'name', '') or type(self.masker).__name__!r} hid "
                f"{per_cloud.tolist()}"
            )
        tokens = self.patch_embed(patches.neighborhood)  # [B, G, C]
        c = tokens.size(-1)
        vis_tokens = tokens[~mask].reshape(b, g - g_m, c)
        vis_centers = patches.centers[~mask].reshape(b, g - g_m, 3)
        msk_centers = patches.centers[mask].reshape(b, g_m, 3)
        latent = self.encoder(vis_tokens, self.pos_embed(vis_centers))
        x = torch.cat([latent, self.mask_token.expand(b, g_m, c)], dim=1)
        pos = self.decoder_pos_embed(torch.cat([vis_centers, msk_centers], dim=1))
        out = self.decoder(x, pos)[:, g - g_m :]  # [B, G_m, C]
        pred = self.head(out).reshape(b * g_m, k, 3)
        target = patches.neighborhood[mask].reshape(b * g_m, k, 3)
        cd = self.criterion(pred, target)
        return {"loss": cd, "chamfer": cd}

    @torch.no_grad()
    def embed(self, batch: Any) -> Tensor:
        """Frozen features: mean and max of the unmasked encoder's tokens, ``[B, 2C]`` (FPS from index 0)."""
        patches = self.group(batch, None)
        x = self.encoder(self.patch_embed(patches.neighborhood), self.pos_embed(patches.centers))
        return torch.cat([x.mean(1), x.amax(1)], dim=-1)

    def features(self, batch: Any) -> Tensor:
        """:meth:`embed`: mean and max of the encoder's tokens on every patch, ``[B, 2C]``."""
        return self.embed(batch)


@section_aliases(masker="mask_ratio")
def build_pointmae(
    *,
    num_groups: int = 64,
    group_size: int = 32,
    dim: int = 384,
    depth: int = 12,
    decoder_depth: int = 4,
    heads: int = 6,
    mask_ratio: float = 0.6,
    masker: Mapping | str | None = None,
    loss: Mapping | str | None = None,
    dropout: float = 0.0,
    embed_hidden: int = 128,
) -> PointMAE:
    """Point-MAE by keywords (the paper's ShapeNet setting is the default).

    ``masker`` defaults to ``{name: random_patches, ratio: mask_ratio}``, ``loss`` to ``{name: chamfer_l2}``.
    """
    if masker is None and not 0.0 < mask_ratio < 1.0:
        raise ValueError(f"mask_ratio must be in (0, 1), got {mask_ratio}")
    msk = masker_section(masker, {"name": "random_patches", "ratio": mask_ratio}, layout=PatchLayout)
    crit = loss_section(loss, {"name": "chamfer_l2"})
    return PointMAE(num_groups, group_size, dim, depth, decoder_depth, heads, msk, dropout, embed_hidden, crit)
