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

**CNN encoder** (``encoder: cnn``, :class:`SimMIMCNN`): a ResNet (:class:`~geomask.nn.sparse_cnn.SparseCNN`'s dense
twin, ``backbone`` a :data:`~geomask.nn.sparse_cnn.CNN_CONFIGS` name) sees the **whole** image.  SimMIM's code
injects the mask token after the patch embedding (its Swin: the 4×4/4 patch embedding, ``x * (1 - w) + token * w``);
the ResNet's patch embedding is its stem (conv, BN, ReLU, max pool: stride ``s = 4`` in an ImageNet ResNet, 1 in
``tiny``), so here the masked pixels are zeroed, the stem runs, and every masked stem site (the token grid at
stride ``s``, what the masker draws on) is replaced by a learnable mask token of the stem's width.  Zeroing first
keeps the stem's overlapping kernels from carrying masked pixels to visible sites: masked pixels reach the encoder
only as the mask token.  The head is SimMIM's: a 1×1 convolution from the last stage (stride ``r``) to ``r² C``
channels and ``PixelShuffle(r)``; the loss is the same masked L1, over the ``s × s`` pixel patches of the token
grid.  The dense twin, not the sparse network on the full grid (the same numbers), because it is faster: one
training step of ``tiny`` at batch 64 on 32 × 32, one thread, 0.37 s dense against 0.64 s sparse.  The mask patch
must be a multiple of ``s`` and the image sides multiples of ``r``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from geomask.errors import UsageError
from geomask.grids.patches import patch_mask_to_sites, patchify
from geomask.masking.base import Masker
from geomask.masking.image_simmim import SimMIMMasker
from geomask.masking.layout import TokenGridLayout
from geomask.methods.base import Method
from geomask.methods.compose import loss_section, masker_section, section_aliases
from geomask.methods.mae import IMAGE_DATA, MAEOutput, ViTMethod, image_values
from geomask.nn.sparse_cnn import SparseCNN, build_sparse_cnn
from geomask.nn.vit import ViT

__all__ = ["SimMIM", "SimMIMCNN", "build_simmim"]


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


class SimMIMCNN(SimMIM):
    """SimMIM with a ResNet encoder (module docstring, *CNN encoder*).

    Args:
        encoder: a dense :class:`~geomask.nn.sparse_cnn.SparseCNN` (``sparse=False``).
        masker: chooses the masked sites of the token grid (the stem's output grid, stride ``s``).
        loss: ``loss(pred [B, L, s² C], target [B, L, s² C], mask [B, L]) -> scalar`` (default: masked L1).

    Shapes:
        values ``[B, C, H, W]``, mask ``[B, L]`` with ``L = (H / s)(W / s)`` → prediction ``[B, C, H, W]``.
    """

    encoder: SparseCNN  # type: ignore[assignment]

    def __init__(self, encoder: SparseCNN, masker: Masker, loss: nn.Module) -> None:
        Method.__init__(self)  # not SimMIM's: no ViT to check
        if encoder.sparse:
            raise UsageError("SimMIMCNN takes the dense twin of the CNN (sparse=False)")
        self.encoder, self.masker, self.criterion, self.pool = encoder, masker, loss, "mean"
        cfg = encoder.config
        self.token_stride = int(cfg["stem_stride"]) * (2 if cfg["stem_pool"] else 1)
        self.mask_token = nn.Parameter(torch.zeros(int(cfg["stem_width"])))
        nn.init.trunc_normal_(self.mask_token, std=0.02)
        r = encoder.downsample_ratio
        self.head = nn.Sequential(
            nn.Conv2d(encoder.out_channels[-1], r * r * encoder.in_channels, 1), nn.PixelShuffle(r)
        )

    def grid(self, values: Tensor) -> tuple[int, int]:
        """The token grid ``(H / s, W / s)`` of a batch (sides multiples of the last stride ``r``)."""
        r = self.encoder.downsample_ratio
        if values.dim() != 4 or values.size(1) != self.encoder.in_channels:
            raise UsageError(f"simmim's CNN takes [B, {self.encoder.in_channels}, H, W], got {tuple(values.shape)}")
        if values.size(2) % r or values.size(3) % r:
            raise UsageError(f"image sides must be multiples of the CNN's stride {r}, got {tuple(values.shape)}")
        return values.size(2) // self.token_stride, values.size(3) // self.token_stride

    def encode(self, values: Tensor, mask: Tensor) -> Tensor:
        """The last stage ``[B, C_last, H / r, W / r]`` of the image whose masked sites are the mask token."""
        grid = self.grid(values)
        m = mask.reshape(values.size(0), *grid)
        pixels = patch_mask_to_sites(m, self.token_stride, grid).unsqueeze(1)
        enc = self.encoder
        x = F.relu(enc.bn1(enc.conv1(values.masked_fill(pixels, 0.0))))
        if enc.maxpool is not None:
            x = enc.maxpool(x)
        w = m.unsqueeze(1).to(x.dtype)
        x = x * (1.0 - w) + self.mask_token.to(x.dtype).view(1, -1, 1, 1) * w
        for stage in enc.stages():
            for blk in stage:
                x = blk(x)
        return x

    def predict(self, values: Tensor, mask: Tensor) -> Tensor:
        """Every pixel predicted, ``[B, C, H, W]``."""
        return self.head(self.encode(values, mask))

    def reconstruct(self, values: Tensor, mask: Tensor) -> MAEOutput:
        """Encode with the mask token, predict every pixel, score the masked sites.

        Returns:
            :class:`~geomask.methods.mae.MAEOutput`: ``pred`` / ``target`` ``[B, L, s² C]`` raw pixels (grid order).
        """
        pred = patchify(self.predict(values, mask), self.token_stride)
        target = patchify(values, self.token_stride)
        mask = mask.reshape(values.size(0), -1)
        return MAEOutput(self.criterion(pred, target, mask), pred, target, mask)

    def loss_terms(self, batch: Any, generator: torch.Generator) -> dict[str, Tensor]:
        """``loss`` (= ``reconstruction``, the masked pixels' loss)."""
        x = image_values(batch, generator)
        mask = self.masker(TokenGridLayout(x.size(0), self.grid(x), x.device), generator).view(x.size(0), -1)
        loss = self.reconstruct(x, mask).loss
        return {"loss": loss, "reconstruction": loss}

    def features(self, batch: Any) -> Tensor:
        """The encoder on the whole image (no mask token), its last stage averaged: ``[B, C_last]``."""
        x = image_values(batch)
        self.grid(x)
        return self.encoder.pooled(x)


_VIT_DEFAULTS = {"image_size": 224, "patch_size": 16, "dim": 768, "depth": 12, "heads": 12, "mlp_ratio": 4.0}
_VIT_DEFAULTS |= {"cls_token": True, "pos_embed": "sincos", "drop_path": 0.0, "pool": "mean", "spatial_dims": 2}


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
    encoder: str = "vit",
    backbone: str | None = None,
    widths: Sequence[int] | None = None,
    layers: Sequence[int] | None = None,
    stem_width: int | None = None,
    stem_kernel: int | None = None,
    stem_stride: int | None = None,
    stem_pool: bool | None = None,
) -> SimMIM:
    """SimMIM by keywords (the paper's ViT-B/16 at 224, 32-pixel mask patches, ratio 0.6, is the default).

    ``masker`` defaults to ``{name: simmim, ratio: mask_ratio, mask_patch_size: mask_patch_size,
    model_patch_size: patch_size}``, ``loss`` to ``{name: l1}``.  A ``simmim`` masker whose ``model_patch_size`` is
    not the ViT's patch is refused (its blocks would not be whole mask patches).

    ``encoder: cnn`` builds :class:`SimMIMCNN`: ``backbone`` (a :data:`~geomask.nn.sparse_cnn.CNN_CONFIGS` name,
    default ``resnet50``) with ``widths`` .. ``stem_pool`` overriding it, ``in_channels`` as given; the masker's
    ``model_patch_size`` is then the stem's stride (4 for an ImageNet ResNet).  The ViT keywords are refused with
    it, the CNN ones with ``encoder: vit``.
    """
    cnn_keys = {
        "backbone": backbone,
        "widths": widths,
        "layers": layers,
        "stem_width": stem_width,
        "stem_kernel": stem_kernel,
        "stem_stride": stem_stride,
        "stem_pool": stem_pool,
    }
    if encoder == "cnn":
        vit_given = {
            "image_size": image_size,
            "patch_size": patch_size,
            "dim": dim,
            "depth": depth,
            "heads": heads,
            "mlp_ratio": mlp_ratio,
            "cls_token": cls_token,
            "pos_embed": pos_embed,
            "drop_path": drop_path,
            "pool": pool,
            "spatial_dims": spatial_dims,
        }
        bad = sorted(k for k, v in vit_given.items() if v != _VIT_DEFAULTS[k])
        if bad:
            raise UsageError(f"method.{bad[0]} is a ViT keyword; encoder: cnn takes {', '.join(cnn_keys)}")
        overrides = {k: v for k, v in cnn_keys.items() if k != "backbone" and v is not None}
        cnn = build_sparse_cnn(backbone or "resnet50", in_channels, **overrides, sparse=False)
        token = int(cnn.config["stem_stride"]) * (2 if cnn.config["stem_pool"] else 1)
        default = {"name": "simmim", "ratio": mask_ratio, "mask_patch_size": mask_patch_size, "model_patch_size": token}
        msk = masker_section(masker, default, layout=TokenGridLayout)
        if isinstance(msk, SimMIMMasker) and msk.model_patch_size != token:
            raise UsageError(
                f"method.masker: simmim's model_patch_size {msk.model_patch_size} must be the CNN stem's stride {token}"
            )
        return SimMIMCNN(cnn, msk, loss_section(loss, {"name": "l1"}))
    if encoder != "vit":
        raise UsageError(f"method.encoder must be 'vit' or 'cnn', got {encoder!r}")
    given = sorted(k for k, v in cnn_keys.items() if v is not None)
    if given:
        raise UsageError(f"method.{given[0]} is a CNN keyword: give it with encoder: cnn")
    vit = ViT(
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
    return SimMIM(vit, msk, loss_section(loss, {"name": "l1"}), pool)
