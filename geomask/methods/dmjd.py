"""DMJD (Ma et al., "Disjoint Masking with Joint Distillation for Efficient Masked Image Modeling", 2023,
arXiv 2301.00230): several disjoint masked views of every image in one batch, and a dual-branch head.

**Disjoint masking.**  Every image is repeated ``K`` times (view-major, ``x.repeat(K, 1, 1, 1)``) and the
``disjoint`` masker (:class:`~geomask.masking.image_disjoint.DisjointMasker`, default ``{name: disjoint,
ratio: 0.6, views: 2, disjoint: visible}``) masks each view at the full ratio with the views' *visible* sets
disjoint, so their masked sets together cover the image (every token is predicted in some view).  ``K`` is the
masker's ``views`` (1 for any other masker on a :class:`~geomask.masking.layout.TokenGridLayout`).

**Joint distillation.**  The ViT encodes the visible tokens of every view (MAE's visible-only encoder);

- the *masked branch* (a light :class:`~geomask.nn.vit.MAEDecoder` with a mask token) predicts the HOG features of
  every token (:func:`~geomask.grids.hog.hog_patches`: per channel, ``[-1, 0, 1]`` gradients, 9 bins, cells of
  ``patch / 2`` pixels — MaskFeat's 8 × 8 cells of a 16-pixel patch — L2 per cell) and is scored on the masked
  tokens (``loss`` section, default ``l2``):
  :math:`\\mathcal{L}_m = \\frac{1}{|M| P} \\sum_{i \\in M} \\lVert \\hat{h}_i - h_i \\rVert_2^2`;
- the *visible branch* (a projector: Linear-LN-GELU, Linear-LN-GELU, Linear-LN without affine; then a linear
  predictor, DMJD's ``proj_embed`` + ``predictor``) maps every visible token's encoder output to the same target
  space and is scored against the **HOG features of the visible tokens themselves** (the official code's
  ``target_vis = target[~mask]``; the target is a fixed feature extractor, so no teacher and no step hook), with
  smooth L1 at ``beta = 2`` (``visible_loss`` section):
  :math:`\\mathcal{L}_v = \\frac{1}{|V| P} \\sum_{i \\in V} \\mathrm{smoothL1}_{\\beta}(\\hat{v}_i - h_i)`.

.. math::
    \\mathcal{L} = \\mathcal{L}_m + \\theta \\, \\mathcal{L}_v \\qquad (\\theta = 1)

Both means run over all ``K B`` views.  Left out from the official code: its per-image whitening of the HOG target
(an extra normaliser, not in the paper's formulas), its ConvViT backbone (here the plain ViT) and the block-wise
variant of the disjoint mask.  No picture grid in ``geomask eval images`` (:meth:`DMJD.reconstruct_pixels` says so
in one line): DMJD predicts HOG features, not pixels.  Batches as MAE (:func:`~geomask.methods.mae.image_values`:
data kinds ``images`` and ``shapes``, augmented with the step's generator).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from geomask.errors import UsageError
from geomask.grids.hog import NORMS, hog_dim, hog_patches
from geomask.masking.base import Masker
from geomask.masking.layout import TokenGridLayout
from geomask.methods.compose import loss_section, masker_section, section_aliases
from geomask.methods.mae import IMAGE_DATA, ViTMethod, image_values
from geomask.nn.vit import MAEDecoder, ViT, visible_ids

__all__ = ["DMJD", "DMJDOutput", "build_dmjd", "visible_projector"]


class DMJDOutput(NamedTuple):
    """One DMJD pass over ``N = K B`` views: ``loss``, ``masked`` and ``visible`` (the two branch losses);
    ``pred [N, L, P]`` (masked branch, every token), ``target [N, L, P]`` (HOG), ``mask [N, L]`` (True = masked),
    ``pred_visible [N, V, P]``, ``ids_keep [N, V]`` and ``padding [N, V]`` or ``None``."""

    loss: Tensor
    masked: Tensor
    visible: Tensor
    pred: Tensor
    target: Tensor
    mask: Tensor
    pred_visible: Tensor
    ids_keep: Tensor
    padding: Tensor | None


def visible_projector(in_dim: int, dim: int, out_dim: int, eps: float = 1e-6) -> nn.Sequential:
    """DMJD's visible branch: three Linear-LN layers (GELU between, the last LN without affine), then a linear
    predictor to ``out_dim``.  Shapes: ``[*, in_dim]`` → ``[*, out_dim]``."""
    return nn.Sequential(
        nn.Linear(in_dim, dim),
        nn.LayerNorm(dim, eps=eps),
        nn.GELU(),
        nn.Linear(dim, dim),
        nn.LayerNorm(dim, eps=eps),
        nn.GELU(),
        nn.Linear(dim, dim),
        nn.LayerNorm(dim, eps=eps, elementwise_affine=False),
        nn.Linear(dim, out_dim),
    )


class DMJD(ViTMethod):
    """DMJD pretraining (module docstring).

    Args:
        encoder: a :class:`~geomask.nn.vit.ViT` (2-D) without mask token.
        decoder: the masked branch, a :class:`~geomask.nn.vit.MAEDecoder` to ``P`` HOG values a patch.
        projector: the visible branch, ``[*, E]`` → ``[*, P]`` (:func:`visible_projector`).
        masker: on a :class:`TokenGridLayout` of ``K B`` views (``K`` = its ``views``, else 1).
        loss: masked-branch loss ``(pred, target, mask) -> scalar``.
        visible_loss: visible-branch loss ``(pred, target, mask) -> scalar``.
        cell, bins, norm: the HOG target (:func:`~geomask.grids.hog.hog_patches`).
        theta: weight of the visible branch.
        pool: ``features`` pooling (``"mean"`` or ``"cls"``).

    Shapes:
        batch ``[B, C, H, W]`` → views ``[K B, C, H, W]``; mask ``[K B, L]``; HOG ``[K B, L, P]``.
    """

    data_kinds = IMAGE_DATA

    def __init__(
        self,
        encoder: ViT,
        decoder: MAEDecoder,
        projector: nn.Module,
        masker: Masker,
        loss: nn.Module,
        visible_loss: nn.Module,
        *,
        cell: int,
        bins: int = 9,
        norm: str = "cell",
        theta: float = 1.0,
        pool: str = "mean",
    ):
        super().__init__()
        if len(encoder.patch) != 2 or encoder.patch[0] != encoder.patch[1]:
            raise UsageError(f"dmjd: the HOG target needs square 2-D patches, got {encoder.patch}")
        if encoder.patch[0] % cell:
            raise UsageError(f"dmjd: the HOG cell ({cell}) must divide the patch ({encoder.patch[0]})")
        if norm not in NORMS:
            raise UsageError(f"dmjd: hog_norm must be one of {', '.join(NORMS)}, got {norm!r}")
        self.encoder, self.decoder, self.projector = encoder, decoder, projector
        self.masker, self.criterion, self.visible_criterion = masker, loss, visible_loss
        self.views = int(getattr(masker, "views", 1))
        self.cell, self.bins, self.norm, self.theta, self.pool = cell, bins, norm, float(theta), pool

    def hog_targets(self, values: Tensor) -> Tensor:
        """The HOG target of every patch, ``[B, L, P]`` (no gradient)."""
        with torch.no_grad():
            return hog_patches(values.float(), self.encoder.patch[0], self.cell, self.bins, self.norm).to(values.dtype)

    def views_mask(self, values: Tensor, generator: torch.Generator) -> Tensor:
        """The masks of the ``K`` views of every image, view-major: ``[K B, L]`` bool (True = masked)."""
        n = self.views * values.size(0)
        layout = TokenGridLayout(n, self.encoder.grid(values), values.device)
        return self.masker(layout, generator).view(n, -1)

    def run(self, values: Tensor, mask: Tensor) -> DMJDOutput:
        """Both branches on given view masks.

        Args:
            values: ``[B, C, H, W]``.
            mask: ``[K B, L]`` bool, view-major (view ``k`` of image ``b`` is row ``k B + b``).
        """
        if mask.dim() != 2 or mask.size(0) % values.size(0):
            raise UsageError(f"dmjd: a [K B, L] mask for {values.size(0)} images, got {tuple(mask.shape)}")
        k = mask.size(0) // values.size(0)
        grid = self.encoder.grid(values)
        xs = values.repeat(k, 1, 1, 1)
        ids_keep, padding = visible_ids(mask)
        latent = self.encoder(xs, ids_keep=ids_keep, padding_mask=padding)
        pred = self.decoder(latent, ids_keep, grid, padding)
        target = self.hog_targets(values).repeat(k, 1, 1)
        masked = self.criterion(pred, target, mask)
        pred_visible = self.projector(latent[:, self.encoder.num_prefix :])
        target_visible = target.gather(1, ids_keep[..., None].expand(-1, -1, target.size(-1)))
        shown = torch.ones_like(ids_keep, dtype=torch.bool) if padding is None else ~padding
        visible = self.visible_criterion(pred_visible, target_visible, shown)
        loss = masked + self.theta * visible
        return DMJDOutput(loss, masked, visible, pred, target, mask, pred_visible, ids_keep, padding)

    def loss_terms(self, batch: Any, generator: torch.Generator) -> dict[str, Tensor]:
        """``loss`` = ``masked`` + theta · ``visible``."""
        x = image_values(batch, generator)
        out = self.run(x, self.views_mask(x, generator))
        return {"loss": out.loss, "masked": out.masked, "visible": out.visible}

    def reconstruct_pixels(self, batch: Any, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """Not applicable: DMJD predicts HOG features, not pixels (``geomask eval images`` reports one line and
        draws no grid for it).

        Raises:
            UsageError: always.
        """
        raise UsageError("dmjd predicts HOG features, not pixels: it has no pixel reconstruction to draw")


@section_aliases(masker=("mask_ratio", "views"))
def build_dmjd(
    *,
    image_size: int = 224,
    patch_size: int = 16,
    in_channels: int = 3,
    dim: int = 768,
    depth: int = 12,
    heads: int = 12,
    mlp_ratio: float = 4.0,
    decoder_dim: int = 512,
    decoder_depth: int = 8,
    decoder_heads: int = 16,
    mask_ratio: float = 0.6,
    views: int = 2,
    masker: Mapping | str | None = None,
    loss: Mapping | str | None = None,
    visible_loss: Mapping | str | None = None,
    hog_cell: int | None = None,
    hog_bins: int = 9,
    hog_norm: str = "cell",
    theta: float = 1.0,
    cls_token: bool = False,
    eps: float = 1e-6,
    pool: str = "mean",
) -> DMJD:
    """DMJD by keywords (ViT-B/16 at 224, ratio 0.6, 2 views, a 512-wide 8-block masked branch are the defaults).

    ``masker`` defaults to ``{name: disjoint, ratio: mask_ratio, views: views, disjoint: visible}``, ``loss`` to
    ``{name: l2}``, ``visible_loss`` to ``{name: smooth_l1, beta: 2.0}``; ``hog_cell`` to ``patch_size // 2`` (2 × 2
    cells a patch, MaskFeat's 8 of 16).  No class token by default (DMJD's encoder has none).
    """
    if masker is None and not 0.0 < mask_ratio < 1.0:
        raise UsageError(f"dmjd: mask_ratio must be in (0, 1), got {mask_ratio}")
    cell = patch_size // 2 if hog_cell is None else hog_cell
    if cell < 1 or patch_size % cell:
        raise UsageError(f"dmjd: hog_cell ({cell}) must divide patch_size ({patch_size})")
    encoder = ViT(
        patch_size, in_channels, dim, depth, heads, mlp_ratio, image_size=image_size, cls_token=cls_token, eps=eps
    )
    out_dim = hog_dim(in_channels, patch_size, cell, hog_bins)
    decoder = MAEDecoder(
        dim,
        out_dim,
        decoder_dim,
        decoder_depth,
        decoder_heads,
        mlp_ratio,
        grid=encoder.image_grid,
        cls_token=cls_token,
        eps=eps,
    )
    projector = visible_projector(dim, decoder_dim, out_dim, eps)
    default = {"name": "disjoint", "ratio": mask_ratio, "views": views, "disjoint": "visible"}
    msk = masker_section(masker, default, layout=TokenGridLayout)
    crit = loss_section(loss, {"name": "l2"})
    vis = loss_section(visible_loss, {"name": "smooth_l1", "beta": 2.0}, section="visible_loss")
    return DMJD(
        encoder, decoder, projector, msk, crit, vis, cell=cell, bins=hog_bins, norm=hog_norm, theta=theta, pool=pool
    )
