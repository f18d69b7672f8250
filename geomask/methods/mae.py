"""MAE (He et al., CVPR 2022): masked autoencoding of image patches with a visible-only ViT encoder.

A random 75 % of every image's patches is masked (the ``masker``, default ``{name: random_tokens, ratio: 0.75}``:
MAE's noise argsort); the ViT encodes the visible patches only; a light decoder puts a shared mask token at
every masked position and predicts every patch's pixels; the loss scores the masked patches against their
per-patch normalised pixels (``norm_pix``, the ``norm_pix`` target, eps 1e-6):

.. math::
    \\mathcal{L} = \\frac{1}{|M|} \\sum_{i \\in M} \\frac{1}{P} \\lVert \\hat{x}_i - \\bar{x}_i \\rVert_2^2

(the ``loss`` section, default ``{name: l2}``: the masked mean over the ``|M| · P`` entries, MAE's formula).

Parts: masker → :class:`~geomask.nn.vit.ViT` (``ids_keep``: visible only) → :class:`~geomask.nn.vit.MAEDecoder`
→ target (:class:`~geomask.targets.NormalizedPatches` or raw patches) → loss.  Any masker on a
:class:`~geomask.masking.layout.TokenGridLayout` works (``simmim``, ``beit_block``, ...); a sample with fewer
masked tokens than another is padded in the encoder (attention padding mask), so counts may differ.

Batches are :class:`~geomask.grids.GridBatch` (data kinds ``images`` and ``shapes``; ``values [B, C, *spatial]``
float, augmented with the step's generator first where the batch carries an augmentation) or plain
``[B, C, *spatial]`` tensors; the model's own patch size is used, not the batch's.  With ``noise`` (Hugging Face's
``ViTMAEForPreTraining(noise=...)``) :meth:`MAE.reconstruct` draws the same mask and token order as Hugging Face.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from geomask.errors import UsageError
from geomask.grids import GridBatch
from geomask.grids.patches import patchify
from geomask.masking.base import Masker
from geomask.masking.image_random import mae_random_masking
from geomask.masking.layout import TokenGridLayout
from geomask.methods.base import Method
from geomask.methods.compose import loss_section, masker_section, section_aliases
from geomask.nn.vit import MAEDecoder, ViT, visible_ids
from geomask.targets import NormalizedPatches

__all__ = ["MAE", "MAEOutput", "MAEPass", "ViTMethod", "build_mae", "image_values"]

# prepared image folders, and the generated shapes (default data of the CPU configs)
IMAGE_DATA = ("images", "shapes")


def image_values(batch: Any, generator: torch.Generator | None = None) -> Tensor:
    """The dense ``[B, C, *spatial]`` float values of an image batch (a :class:`GridBatch` or a tensor).

    With a ``generator``, a batch that carries its augmentation (the ``images`` kind's ``ImageBatch``:
    ``batch.augmented(generator)``, random resized crop and flip) is augmented first, drawing from it.
    """
    augmented = getattr(batch, "augmented", None) if generator is not None else None
    if callable(augmented):
        batch = augmented(generator)
    x = batch.values if isinstance(batch, GridBatch) else batch
    if not isinstance(x, Tensor) or x.dim() < 3 or not x.is_floating_point():
        got = f"{x.dtype} {tuple(x.shape)}" if isinstance(x, Tensor) else type(x).__name__
        raise UsageError(f"an image method takes a GridBatch or a float [B, C, *spatial] tensor, got {got}")
    return x


class MAEOutput(NamedTuple):
    """One reconstruction: ``loss``; ``pred`` and ``target`` ``[B, L, P]`` in grid order; ``mask [B, L]`` (True =
    masked).  ``pred`` is in the target's units (normalised patches with ``norm_pix``)."""

    loss: Tensor
    pred: Tensor
    target: Tensor
    mask: Tensor


class MAEPass(NamedTuple):
    """The encoder half of MAE: ``mask [B, L]``, ``latent [B, c + K, E]``, ``ids_keep [B, K]`` (grid index of each
    latent patch token), ``padding [B, K]`` or ``None``, and the patch ``grid`` (what :class:`MAEDecoder` takes)."""

    mask: Tensor
    latent: Tensor
    ids_keep: Tensor
    padding: Tensor | None
    grid: tuple[int, ...]


class ViTMethod(Method):
    """A method on image batches whose ``encoder`` is a :class:`~geomask.nn.vit.ViT` pooled by ``pool`` (``mean`` or
    ``cls``): the shared data kinds and :meth:`features` of MAE, SimMIM, MFM and HPM."""

    data_kinds = IMAGE_DATA
    encoder: ViT
    pool: str

    def features(self, batch: Any) -> Tensor:
        """The encoder on every patch of the (unmasked, unaugmented) images, pooled: ``[B, E]``."""
        return self.encoder.pool(self.encoder(image_values(batch)), self.pool)


class MAE(ViTMethod):
    """MAE pretraining (module docstring).

    Args:
        encoder: a :class:`~geomask.nn.vit.ViT` without mask token.
        decoder: a :class:`~geomask.nn.vit.MAEDecoder` from the encoder's width to ``Π p_d · C``.
        masker: chooses the masked patches on the token grid (default: 75 % random tokens).
        loss: ``loss(pred [B, L, P], target [B, L, P], mask [B, L]) -> scalar`` (default: masked L2).
        target: maps raw patch tokens to the target (default: ``norm_pix``); ``None``: raw pixels.
        pool: ``features`` pooling, ``"mean"`` of the patch tokens or ``"cls"``.
    """

    data_kinds = IMAGE_DATA

    def __init__(
        self,
        encoder: ViT,
        decoder: MAEDecoder,
        masker: Masker,
        loss: nn.Module,
        target: nn.Module | None = None,
        pool: str = "mean",
    ):
        super().__init__()
        self.encoder, self.decoder, self.masker, self.criterion = encoder, decoder, masker, loss
        self.target = target
        self.pool = pool

    def encode(self, values: Tensor, mask: Tensor | None = None, *, noise: Tensor | None = None) -> MAEPass:
        """Encode the visible patches: the encoder half of :meth:`reconstruct` (same arguments).

        Returns:
            :class:`MAEPass`: the mask, the latent ``[B, c + K, E]``, ``ids_keep [B, K]``, ``padding`` and the grid.
        """
        grid = self.encoder.grid(values)
        padding = None
        if noise is not None:
            ratio = getattr(self.masker, "ratio", None)
            if not isinstance(ratio, float):
                raise UsageError("reconstruct(noise=...) needs a masker with one ratio (random_tokens)")
            mask, ids_keep, _ = mae_random_masking(noise, ratio)
        elif mask is not None:
            ids_keep, padding = visible_ids(mask)
        else:
            raise UsageError("give a mask or noise")
        latent = self.encoder(values, ids_keep=ids_keep, padding_mask=padding)
        return MAEPass(mask, latent, ids_keep, padding, grid)

    def patch_targets(self, values: Tensor) -> Tensor:
        """The reconstruction target of every patch, ``[B, L, P]`` (``norm_pix`` or raw pixels)."""
        target = patchify(values, self.encoder.patch)
        return self.target(target) if self.target is not None else target

    def reconstruct(self, values: Tensor, mask: Tensor | None = None, *, noise: Tensor | None = None) -> MAEOutput:
        """Encode the visible patches, decode every patch, score the masked ones.

        Args:
            values: ``[B, C, *spatial]``.
            mask: ``[B, L]`` bool (True = masked); visible tokens are encoded in grid order.
            noise: ``[B, L]`` instead of ``mask``: MAE's / Hugging Face's random masking at the masker's ratio
                (tokens kept in noise order, exactly as ``ViTMAEForPreTraining(noise=noise)``).
        """
        p = self.encode(values, mask, noise=noise)
        pred = self.decoder(p.latent, p.ids_keep, p.grid, p.padding)
        target = self.patch_targets(values)
        return MAEOutput(self.criterion(pred, target, p.mask), pred, target, p.mask)

    def loss_terms(self, batch: Any, generator: torch.Generator) -> dict[str, Tensor]:
        """``loss`` (= ``reconstruction``, the masked patches' loss)."""
        x = image_values(batch, generator)
        layout = TokenGridLayout(x.size(0), self.encoder.grid(x), x.device)
        mask = self.masker(layout, generator).view(x.size(0), -1)
        loss = self.reconstruct(x, mask).loss
        return {"loss": loss, "reconstruction": loss}


@section_aliases(masker="mask_ratio")
def build_mae(
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
    mask_ratio: float = 0.75,
    masker: Mapping | str | None = None,
    loss: Mapping | str | None = None,
    norm_pix: bool = True,
    cls_token: bool = True,
    eps: float = 1e-6,
    pool: str = "mean",
) -> MAE:
    """MAE by keywords (ViT-B/16 at 224 with MAE's 8-block, 512-wide decoder is the default).

    ``masker`` defaults to ``{name: random_tokens, ratio: mask_ratio}``, ``loss`` to ``{name: l2}``; ``norm_pix``
    scores per-patch normalised pixels (MAE's ``norm_pix_loss``).  ``image_size`` only caches positions: other
    sizes (multiples of the patch) work too.
    """
    if masker is None and not 0.0 < mask_ratio < 1.0:
        raise UsageError(f"mask_ratio must be in (0, 1), got {mask_ratio}")
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
        eps=eps,
    )
    out_dim = encoder.patch_embed.in_features
    decoder = MAEDecoder(
        dim,
        out_dim,
        decoder_dim,
        decoder_depth,
        decoder_heads,
        mlp_ratio,
        spatial_dims=spatial_dims,
        grid=encoder.image_grid,
        cls_token=cls_token,
        eps=eps,
    )
    msk = masker_section(masker, {"name": "random_tokens", "ratio": mask_ratio}, layout=TokenGridLayout)
    crit = loss_section(loss, {"name": "l2"})
    return MAE(encoder, decoder, msk, crit, NormalizedPatches(1e-6) if norm_pix else None, pool)
