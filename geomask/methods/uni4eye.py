"""Uni4Eye (Cai et al., MICCAI 2022, *Unified 2D and 3D Self-supervised Pre-training via Masked Image Modeling
Transformer for Ophthalmic Image Classification*), its image part: MAE with a unified 2-D/3-D patch embedding and a
dual-branch decoder.

Parts: masker (default ``{name: random_tokens, ratio: 0.75}``) → :class:`~geomask.nn.patch_embed.UnifiedViT` (the
paper's *Unified Patch Embedding*: a switchable 2-D / 3-D patch embedding in front of one ViT; an image is a depth-1
volume on the 3-D position grid; visible-only encoding) → two light :class:`~geomask.nn.vit.MAEDecoder` s over the
same latents: one predicts every patch's pixels, the other the patch of the image's **gradient map**
``G = ‖∇I‖`` (Sobel magnitude per channel, :func:`~geomask.grids.gradient.sobel_magnitude`, one batched grouped
convolution) → loss, both on the masked patches ``M``:

.. math::
    \\mathcal{L} = \\underbrace{\\frac{1}{|M|} \\sum_{i \\in M} \\frac{1}{P} \\lVert \\hat{x}_i - \\bar{x}_i
    \\rVert_2^2}_{\\text{reconstruction}} + \\lambda \\underbrace{\\frac{1}{|M|} \\sum_{i \\in M} \\frac{1}{P}
    \\lVert \\hat{g}_i - g_i \\rVert_2^2}_{\\text{gradient}}

with ``x̄`` the ``norm_pix`` patches (MAE's target), ``g`` the raw gradient-map patches and ``λ`` =
``gradient_weight`` (both reductions the ``loss`` section, default ``{name: l2}``).

Pretraining takes 2-D images (data kinds ``images`` and ``shapes``); the encoder also encodes volumes
``[B, C, D, H, W]`` (:meth:`Uni4Eye.features` and ``encoder(x)`` accept both ranks), which is what the unified
embedding is for.  :meth:`Uni4Eye.reconstruct_pixels` gives ``geomask eval images`` its pictures (the image branch
mapped back to pixels with each patch's mean and variance).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from geomask.errors import UsageError
from geomask.grids.gradient import sobel_magnitude
from geomask.grids.patches import patchify, unpatchify
from geomask.masking.base import Masker
from geomask.masking.layout import TokenGridLayout
from geomask.methods.compose import loss_section, masker_section
from geomask.methods.mae import MAE, image_values
from geomask.nn.patch_embed import UnifiedViT
from geomask.nn.vit import MAEDecoder
from geomask.targets import NormalizedPatches

__all__ = ["Uni4Eye", "build_uni4eye"]


class Uni4Eye(MAE):
    """Uni4Eye pretraining (module docstring).

    Args:
        encoder: a :class:`~geomask.nn.patch_embed.UnifiedViT`.
        decoder: the image branch, an :class:`~geomask.nn.vit.MAEDecoder` to ``p² C`` per patch.
        gradient_decoder: the gradient-map branch, the same shape.
        masker, loss, target, pool: as :class:`~geomask.methods.mae.MAE` (``target`` maps image patches only).
        gradient_weight: ``λ``.
    """

    encoder: UnifiedViT

    def __init__(
        self,
        encoder: UnifiedViT,
        decoder: MAEDecoder,
        gradient_decoder: MAEDecoder,
        masker: Masker,
        loss: nn.Module,
        target: nn.Module | None = None,
        gradient_weight: float = 1.0,
        pool: str = "mean",
    ):
        super().__init__(encoder, decoder, masker, loss, target, pool)
        if not gradient_weight >= 0:
            raise UsageError(f"uni4eye: gradient_weight must be >= 0, got {gradient_weight!r}")
        self.gradient_decoder = gradient_decoder
        self.gradient_weight = float(gradient_weight)

    def unused_parameters(self) -> set[str]:
        """The volume embedding (``encoder.patch_embed``): 2-D pretraining never uses it."""
        return {"encoder.patch_embed.weight", "encoder.patch_embed.bias"}

    def patch_targets(self, values: Tensor) -> Tensor:
        """The image target of every patch, ``[B, L, p² C]`` (``norm_pix`` or raw pixels)."""
        target = patchify(values, self.encoder.patch_for(values))
        return self.target(target) if self.target is not None else target

    def gradient_targets(self, values: Tensor) -> Tensor:
        """The gradient-map patches ``[B, L, p² C]`` (Sobel magnitude, no gradient)."""
        with torch.no_grad():
            return patchify(sobel_magnitude(values), self.encoder.patch_for(values))

    def loss_terms(self, batch: Any, generator: torch.Generator) -> dict[str, Tensor]:
        """``loss`` = ``reconstruction`` + ``gradient_weight`` · ``gradient``."""
        x = image_values(batch, generator)
        if x.dim() != 4:
            raise UsageError(f"uni4eye pretrains on 2-D images [B, C, H, W], got {tuple(x.shape)}")
        layout = TokenGridLayout(x.size(0), self.encoder.grid(x)[1:], x.device)
        mask = self.masker(layout, generator).view(x.size(0), -1)
        p = self.encode(x, mask)
        reconstruction = self.criterion(
            self.decoder(p.latent, p.ids_keep, p.grid, p.padding), self.patch_targets(x), mask
        )
        g_pred = self.gradient_decoder(p.latent, p.ids_keep, p.grid, p.padding)
        gradient = self.criterion(g_pred, self.gradient_targets(x), mask)
        return {
            "loss": reconstruction + self.gradient_weight * gradient,
            "reconstruction": reconstruction,
            "gradient": gradient,
        }

    @torch.no_grad()
    def reconstruct_pixels(self, batch: Any, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """``(masked_input, reconstruction)``, both ``[B, C, H, W]`` in the batch's pixel space: the masker's mask
        on the 2-D patch grid, masked patches at 0 in the first and the image branch's prediction (``norm_pix``
        mapped back with each patch's own mean and variance) in the second, visible patches the input's."""
        x = image_values(batch)
        if x.dim() != 4:
            raise UsageError(f"uni4eye draws 2-D images [B, C, H, W], got {tuple(x.shape)}")
        b = x.size(0)
        mask = self.masker(TokenGridLayout(b, self.encoder.grid(x)[1:], x.device), generator).view(b, -1)
        p = self.encode(x, mask)
        pred = self.decoder(p.latent, p.ids_keep, p.grid, p.padding)
        patch = self.encoder.patch_for(x)
        raw = patchify(x, patch)
        if self.target is not None:
            eps = float(getattr(self.target, "eps", 1e-6))
            pred = pred * (raw.var(-1, keepdim=True) + eps).sqrt() + raw.mean(-1, keepdim=True)
        m = mask[..., None]
        spatial = tuple(x.shape[2:])
        shown = unpatchify(torch.where(m, pred, raw), patch, spatial)
        return unpatchify(raw.masked_fill(m, 0.0), patch, spatial), shown


def build_uni4eye(
    *,
    image_size: int = 224,
    patch_size: int = 16,
    depth_patch: int = 4,
    in_channels: int = 3,
    dim: int = 768,
    depth: int = 12,
    heads: int = 12,
    mlp_ratio: float = 4.0,
    decoder_dim: int = 512,
    decoder_depth: int = 8,
    decoder_heads: int = 16,
    masker: Mapping | str | None = None,
    loss: Mapping | str | None = None,
    norm_pix: bool = True,
    gradient_weight: float = 1.0,
    cls_token: bool = True,
    eps: float = 1e-6,
    pool: str = "mean",
) -> Uni4Eye:
    """Uni4Eye by keywords (ViT-B/16 with MAE's 8-block 512-wide decoder for each branch is the default).

    ``dim`` must divide by 6 (3-D sin-cos positions) and the decoders' width too.  ``masker`` defaults to
    ``{name: random_tokens, ratio: 0.75}``, ``loss`` to ``{name: l2}``; ``depth_patch`` is the patch depth of
    volumes.
    """
    for key, width in (("dim", dim), ("decoder_dim", decoder_dim)):
        if isinstance(width, bool) or not isinstance(width, int) or width < 6 or width % 6:
            raise UsageError(f"uni4eye: {key} must be a multiple of 6 (3-D sin-cos positions), got {width!r}")
    encoder = UnifiedViT(
        patch_size,
        depth_patch,
        in_channels,
        dim,
        depth,
        heads,
        mlp_ratio,
        image_size=image_size,
        cls_token=cls_token,
        eps=eps,
    )
    out_dim = patch_size * patch_size * in_channels

    def branch() -> MAEDecoder:
        return MAEDecoder(
            dim,
            out_dim,
            decoder_dim,
            decoder_depth,
            decoder_heads,
            mlp_ratio,
            spatial_dims=3,
            grid=encoder.image_grid,
            cls_token=cls_token,
            eps=eps,
        )

    msk = masker_section(masker, {"name": "random_tokens", "ratio": 0.75}, layout=TokenGridLayout)
    crit = loss_section(loss, {"name": "l2"})
    target = NormalizedPatches(1e-6) if norm_pix else None
    return Uni4Eye(encoder, branch(), branch(), msk, crit, target, gradient_weight, pool)
