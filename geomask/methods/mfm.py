"""MFM (Xie et al., TMLR 2023, *Masked Frequency Modeling for Self-Supervised Visual Pre-Training*): corrupt the
image's spectrum, predict the image, score the missing frequencies.

The masker (default ``{name: frequency, radius: 16, mode: random}``: MFM's disc of radius 16 at 224 px, low- or
high-pass with probability ½ per image; :class:`~geomask.masking.image_frequency.FrequencyMasker`) masks sites of
the centred 2-D spectrum; the image with those frequencies removed
(:func:`~geomask.masking.image_frequency.frequency_filter`) goes through the ViT **whole** -- no token is dropped
and there is no mask token; a light head (MFM's ViT setting ``DECODER.DEPTH 0``: ``Conv2d(E, p² C, 1)`` +
``PixelShuffle(p)``, here one ``Linear(E, p^D C)`` per token and :func:`~geomask.grids.unpatchify`) predicts
the image; the loss compares the prediction's centred orthonormal spectrum with the original's on the masked
frequencies only (the ``loss`` section, default ``{name: frequency}``, :mod:`geomask.losses.frequency`):

.. math::
    \\mathcal{L} = \\frac{1}{C \\, |M|} \\sum_{(b, k) \\in M} \\sum_c |\\hat{F}_{b,k,c} - F_{b,k,c}|

-- MFM's ``FrequencyLoss`` as shipped (``LOSS_GAMMA 1``, ``WITH_MATRIX False``: the Euclidean distance of the
complex values, no focal weight; ``loss: {name: frequency, focal: true}`` turns the focal frequency weight on),
reduced as its ``RECOVER_TARGET_TYPE: masked`` (sum over masked frequencies / their number / C).

Differences from MFM's code, all deliberate: the data kinds deliver images already normalised (per-channel
statistics), so the corruption is applied to normalised values and no clamp is applied by default (MFM filters
``[0, 1]`` pixels, clamps to ``[0, 1]``, then normalises with ImageNet's statistics: set ``clamp`` for raw pixels);
the filter is linear, so the two differ only in the zero frequency of high-pass samples and in the clamp.
Positions are the ViT's fixed sin-cos ones (MFM's ViT-B uses learned absolute positions: ``pos_embed: learned``).
The radius is in frequency-index units (cycles per image).  Scale it with the **token grid**, not with the image:
MFM's 16 at 224 px with 16 px patches is ``16 / 14 ≈ 1.1`` cycles per token (:func:`token_scaled_radius`: 9.1
on the 8 × 8 grid of a ViT/4 at 32 px; ``configs/mfm_cpu.yaml`` uses 10).  Keeping MFM's share of the image
spectrum instead (``16 · 32 / 224 = 2.3``) puts the cut-off far below one cycle per token: a low-pass input is
nearly flat over several tokens, a high-pass one loses only the mean colour and the coarsest layout, and on
CIFAR-10 (``geomask eval images``, 500 steps) radius 2.5 gave features of effective rank 1.5 and a linear probe
below the untrained ViT's (36.55 % against 40.50 %; radius 6: 39.95 %, radius 10: 40.90 % and 42.50 %).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from geomask.errors import UsageError
from geomask.grids.patches import unpatchify
from geomask.losses.frequency import spectrum
from geomask.masking.base import Masker
from geomask.masking.image_frequency import frequency_filter
from geomask.masking.layout import TokenGridLayout
from geomask.methods.compose import loss_section, masker_section
from geomask.methods.mae import IMAGE_DATA, ViTMethod, image_values
from geomask.nn.vit import ViT

__all__ = ["MFM", "MFMOutput", "build_mfm", "token_scaled_radius"]


def token_scaled_radius(
    image_size: int | Sequence[int], patch_size: int | Sequence[int], radius: float = 16.0, reference: int = 14
) -> float:
    """MFM's mask radius moved to another token grid at the same cycles per token (module docstring).

    ``radius · t / reference`` with ``t`` the fewest tokens along an axis (``image_size // patch_size``) and
    ``reference`` MFM's 14 tokens a side (224 px, 16 px patches): 16 for ViT-B/16 at 224, 9.1 for a ViT/4 at 32.
    """
    sizes = [int(image_size)] if isinstance(image_size, int) else [int(s) for s in image_size]
    patches = [int(patch_size)] * len(sizes) if isinstance(patch_size, int) else [int(p) for p in patch_size]
    if len(patches) != len(sizes) or min(sizes + patches) <= 0 or any(s < p for s, p in zip(sizes, patches)):
        raise UsageError(f"token_scaled_radius: bad image_size {image_size!r} / patch_size {patch_size!r}")
    return float(radius) * min(s // p for s, p in zip(sizes, patches)) / float(reference)


class MFMOutput(NamedTuple):
    """One reconstruction: ``loss``; ``corrupted`` input and ``pred`` image ``[B, C, *spatial]``; ``pred_spectrum``
    and ``target_spectrum`` ``[B, *spatial, C, 2]`` (centred, orthonormal, real view); ``mask [B, *spatial]`` over
    the centred spectrum (True = removed from the input, scored)."""

    loss: Tensor
    corrupted: Tensor
    pred: Tensor
    pred_spectrum: Tensor
    target_spectrum: Tensor
    mask: Tensor


class MFM(ViTMethod):
    """MFM pretraining (module docstring).

    Args:
        encoder: a :class:`~geomask.nn.vit.ViT` (a mask token, if any, is not used).
        masker: masks sites of the centred spectrum on a :class:`~geomask.masking.layout.TokenGridLayout` of the
            image size (default: ``frequency``).
        loss: ``loss(pred [B, *S, C, 2], target [B, *S, C, 2], mask [B, *S]) -> scalar`` over spectra (default:
            ``frequency``).
        clamp: ``(low, high)`` applied to the corrupted image (MFM: ``(0, 1)`` on raw pixels) or ``None``.
        pool: ``features`` pooling, ``"mean"`` of the patch tokens or ``"cls"``.
    """

    data_kinds = IMAGE_DATA

    def __init__(
        self, encoder: ViT, masker: Masker, loss: nn.Module, clamp: Sequence[float] | None = None, pool: str = "mean"
    ):
        super().__init__()
        if clamp is not None and (len(clamp) != 2 or not clamp[0] < clamp[1]):
            raise UsageError(f"mfm: clamp must be [low, high] with low < high, or null; got {clamp!r}")
        self.encoder, self.masker, self.criterion, self.pool = encoder, masker, loss, pool
        self.clamp = None if clamp is None else (float(clamp[0]), float(clamp[1]))
        self.head = nn.Linear(encoder.dim, encoder.patch_embed.in_features)
        nn.init.xavier_uniform_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def predict(self, corrupted: Tensor) -> Tensor:
        """The ViT on every patch of ``corrupted`` and the linear head, back to an image ``[B, C, *spatial]``."""
        out = self.encoder(corrupted)
        tokens = self.head(out[:, self.encoder.num_prefix :])
        return unpatchify(tokens, self.encoder.patch, corrupted.shape[2:])

    def reconstruct(self, values: Tensor, mask: Tensor) -> MFMOutput:
        """Remove the masked frequencies, predict the image, score its spectrum on the masked frequencies.

        Args:
            values: ``[B, C, *spatial]``.
            mask: ``[B, *spatial]`` (or ``[B, Π s]``) bool over the centred spectrum, True = removed.
        """
        mask = mask.reshape(values.size(0), *values.shape[2:])
        corrupted = frequency_filter(values, mask, self.clamp)
        pred = self.predict(corrupted)
        d = values.dim() - 2
        pred_f, target_f = spectrum(pred, d), spectrum(values, d)
        return MFMOutput(self.criterion(pred_f, target_f, mask), corrupted, pred, pred_f, target_f, mask)

    def loss_terms(self, batch: Any, generator: torch.Generator) -> dict[str, Tensor]:
        """``loss`` (= ``reconstruction``, the masked frequencies' loss)."""
        x = image_values(batch, generator)
        self.encoder.grid(x)  # the image must fit the ViT (one clear error)
        mask = self.masker(TokenGridLayout(x.size(0), tuple(x.shape[2:]), x.device), generator)
        loss = self.reconstruct(x, mask).loss
        return {"loss": loss, "reconstruction": loss}


def build_mfm(
    *,
    image_size: int | Sequence[int] = 224,
    patch_size: int | Sequence[int] = 16,
    in_channels: int = 3,
    spatial_dims: int = 2,
    dim: int = 768,
    depth: int = 12,
    heads: int = 12,
    mlp_ratio: float = 4.0,
    masker: Mapping | str | None = None,
    loss: Mapping | str | None = None,
    clamp: Sequence[float] | None = None,
    cls_token: bool = True,
    pos_embed: str = "sincos",
    eps: float = 1e-6,
    drop_path: float = 0.0,
    pool: str = "mean",
) -> MFM:
    """MFM by keywords (ViT-B/16 at 224, radius 16, random low/high-pass, the frequency loss is the default).

    ``masker`` defaults to ``{name: frequency, radius: 16, mode: random}``, ``loss`` to ``{name: frequency}``.
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
        pos_embed=pos_embed,
        eps=eps,
        drop_path=drop_path,
    )
    msk = masker_section(masker, {"name": "frequency", "radius": 16.0, "mode": "random"}, layout=TokenGridLayout)
    return MFM(encoder, msk, loss_section(loss, {"name": "frequency"}), clamp, pool)
