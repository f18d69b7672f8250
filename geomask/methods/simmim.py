"""SimMIM (Xie et al., CVPR 2022): a mask token in place of masked patches, one linear head back to pixels.

SimMIM's mask generator (the ``masker``, default ``{name: simmim, ratio: 0.6, mask_patch_size: 32,
model_patch_size: patch_size}``) masks random mask patches of ``mask_patch_size`` pixels, a multiple of the ViT
patch; the ViT sees **every** patch, a learnable mask token replacing the embedding of each masked one; a linear
head predicts every patch's raw pixels; L1 on the masked pixels, divided by their number times the channels
(SimMIM's formula without its ``+ 1e-5``):

.. math::
    \\mathcal{L} = \\frac{1}{|M| \\, p^D C} \\sum_{i \\in M} \\lVert \\hat{x}_i - x_i \\rVert_1

(the ``loss`` section, default ``{name: l1}``, the masked mean over the ``|M| · Π p_d · C`` entries).

The head is SimMIM's / Hugging Face's ``Conv2d(E, p² C, 1)`` + ``PixelShuffle(p)`` as one ``Linear(E, p^D C)``
per token followed by :func:`~geomask.grids.unpatchify` (the same map for any rank; the output rows are ordered
channel last, so a Hugging Face head converts by a permutation: :mod:`geomask.nn.convert_hf`).

The mask patch scales with the input by keeping SimMIM's ViT ratio of 2 tokens per mask-patch side: 32-pixel mask
patches on a ViT/16 at 224 (the paper's ViT-B), 8-pixel ones on a ViT/4 at 32 (CIFAR).  SimMIM's Swin setting
``(192, 32, 4, 0.6)`` is ``image_size=192, patch_size=4, mask_patch_size=32`` here (a 48 × 48 token ViT).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from geomask.errors import UsageError
from geomask.grids.patches import patchify
from geomask.masking.base import Masker
from geomask.masking.image_simmim import SimMIMMasker
from geomask.masking.layout import TokenGridLayout
from geomask.methods.compose import loss_section, masker_section, section_aliases
from geomask.methods.mae import IMAGE_DATA, MAEOutput, ViTMethod, image_values
from geomask.nn.vit import ViT

__all__ = ["SimMIM", "build_simmim"]


class SimMIM(ViTMethod):
    """SimMIM pretraining (module docstring).

    Args:
        encoder: a :class:`~geomask.nn.vit.ViT` with a mask token.
        masker: chooses the masked patches on the token grid (default: SimMIM's mask generator).
        loss: ``loss(pred [B, L, P], target [B, L, P], mask [B, L]) -> scalar`` (default: masked L1).
        pool: ``features`` pooling, ``"mean"`` of the patch tokens or ``"cls"``.
    """

    data_kinds = IMAGE_DATA

    def __init__(self, encoder: ViT, masker: Masker, loss: nn.Module, pool: str = "mean"):
        super().__init__()
        if encoder.mask_token is None:
            raise UsageError("SimMIM needs a ViT with a mask token (mask_token=True)")
        self.encoder, self.masker, self.criterion, self.pool = encoder, masker, loss, pool
        self.head = nn.Linear(encoder.dim, encoder.patch_embed.in_features)
        nn.init.xavier_uniform_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def reconstruct(self, values: Tensor, mask: Tensor) -> MAEOutput:
        """Encode every patch with the masked ones replaced by the mask token, predict every patch's pixels.

        Args:
            values: ``[B, C, *spatial]``.
            mask: ``[B, L]`` bool, True = masked.

        Returns:
            :class:`~geomask.methods.mae.MAEOutput`: ``pred`` / ``target`` ``[B, L, P]`` raw pixels (grid order).
        """
        out = self.encoder(values, mask=mask)
        pred = self.head(out[:, self.encoder.num_prefix :])
        target = patchify(values, self.encoder.patch)
        return MAEOutput(self.criterion(pred, target, mask), pred, target, mask)

    def loss_terms(self, batch: Any, generator: torch.Generator) -> dict[str, Tensor]:
        """``loss`` (= ``reconstruction``, the masked pixels' loss)."""
        x = image_values(batch, generator)
        layout = TokenGridLayout(x.size(0), self.encoder.grid(x), x.device)
        mask = self.masker(layout, generator).view(x.size(0), -1)
        loss = self.reconstruct(x, mask).loss
        return {"loss": loss, "reconstruction": loss}


@section_aliases(masker=("mask_ratio", "mask_patch_size"))
def build_simmim(
    *,
    image_size: int | Sequence[int] = 224,
    patch_size: int = 16,
    in_channels: int = 3,
    spatial_dims: int = 2,
    dim: int = 768,
    depth: int = 12,
    heads: int = 12,
    mlp_ratio: float = 4.0,
    mask_ratio: float = 0.6,
    mask_patch_size: int = 32,
    masker: Mapping | str | None = None,
    loss: Mapping | str | None = None,
    cls_token: bool = True,
    pos_embed: str = "sincos",
    eps: float = 1e-6,
    drop_path: float = 0.0,
    pool: str = "mean",
) -> SimMIM:
    """SimMIM by keywords (the paper's ViT-B/16 at 224, 32-pixel mask patches, ratio 0.6, is the default).

    ``masker`` defaults to ``{name: simmim, ratio: mask_ratio, mask_patch_size: mask_patch_size,
    model_patch_size: patch_size}``, ``loss`` to ``{name: l1}``.  A ``simmim`` masker whose ``model_patch_size`` is
    not the ViT's patch is refused (its blocks would not be whole mask patches).
    """
    encoder = ViT(
        patch_size,
        in_channels,
        dim,
        depth,
        heads,
        mlp_ratio,
        spatial_dims=spatial_dims,
        image_size=image_size,
        cls_token=cls_token,
        mask_token=True,
        pos_embed=pos_embed,
        eps=eps,
        drop_path=drop_path,
    )
    default = {
        "name": "simmim",
        "ratio": mask_ratio,
        "mask_patch_size": mask_patch_size,
        "model_patch_size": patch_size,
    }
    msk = masker_section(masker, default, layout=TokenGridLayout)
    if isinstance(msk, SimMIMMasker) and msk.model_patch_size != patch_size:
        raise UsageError(
            f"method.masker: simmim's model_patch_size {msk.model_patch_size} must be the ViT's patch_size {patch_size}"
        )
    return SimMIM(encoder, msk, loss_section(loss, {"name": "l1"}), pool)
