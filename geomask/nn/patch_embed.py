"""Uni4Eye's unified patch embedding: one ViT that encodes 2-D images and 3-D volumes.

Uni4Eye (Cai et al., MICCAI 2022) replaces ViT's patch embedding by a *Unified Patch Embedding* module whose
switchable patch embedding picks a 2-D or a 3-D embedding layer by the rank of the input, in front of one shared
transformer.  Here:

* a volume ``[B, C, D, H, W]`` is cut into ``p_d × p × p`` patches and embedded by ``patch_embed`` (the ViT's own
  linear map of :func:`~geomask.grids.patchify` tokens, a ``Conv3d`` of stride = kernel);
* an image ``[B, C, H, W]`` is cut into ``p × p`` patches and embedded by ``patch_embed_2d`` (a ``Conv2d``) and is
  placed as a *depth-1 volume*: its patch grid is ``(1, H / p, W / p)``, so both ranks share the 3-D sin-cos
  positions (an image's tokens take the positions of a volume's first slice), the class token and every block.

Everything else is :class:`~geomask.nn.vit.ViT` with ``spatial_dims = 3`` (visible-only encoding with ``ids_keep``,
padding masks, pooling).

Shapes:
    ``[B, C, H, W]`` → ``[B, c + K, E]`` over the grid ``(1, H/p, W/p)``; ``[B, C, D, H, W]`` → ``[B, c + K, E]``
    over ``(D/p_d, H/p, W/p)``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from geomask.errors import UsageError
from geomask.grids.patches import grid_shape, patchify
from geomask.nn.vit import ViT

__all__ = ["UnifiedViT"]


class UnifiedViT(ViT):
    """A ViT over 2-D images and 3-D volumes with a switchable patch embedding (module docstring).

    Args:
        patch_size: the in-plane patch size ``p``.
        depth_patch: the patch depth ``p_d`` of volumes.
        in_channels, dim, depth, heads, mlp_ratio, image_size, cls_token, eps, drop_path: as
            :class:`~geomask.nn.vit.ViT` (``image_size``: the 2-D size whose ``(1, h, w)`` positions are cached).
    """

    def __init__(
        self,
        patch_size: int = 16,
        depth_patch: int = 4,
        in_channels: int = 3,
        dim: int = 768,
        depth: int = 12,
        heads: int = 12,
        mlp_ratio: float = 4.0,
        *,
        image_size: int | None = None,
        cls_token: bool = True,
        eps: float = 1e-6,
        drop_path: float = 0.0,
    ):
        if not isinstance(patch_size, int) or not isinstance(depth_patch, int) or patch_size < 1 or depth_patch < 1:
            raise UsageError(f"patch_size and depth_patch must be integers >= 1, got {patch_size!r}, {depth_patch!r}")
        super().__init__(
            (depth_patch, patch_size, patch_size),
            in_channels,
            dim,
            depth,
            heads,
            mlp_ratio,
            spatial_dims=3,
            image_size=None,
            cls_token=cls_token,
            eps=eps,
            drop_path=drop_path,
        )
        self.patch_2d = (patch_size, patch_size)
        self.patch_embed_2d = nn.Linear(patch_size * patch_size * in_channels, dim)
        nn.init.xavier_uniform_(self.patch_embed_2d.weight)
        nn.init.zeros_(self.patch_embed_2d.bias)
        if image_size is not None:
            self.image_grid = (1, *grid_shape((image_size, image_size), self.patch_2d))
            self.sincos.grid = self.image_grid
            self.sincos.cached = self.sincos(self.image_grid, torch.float32, torch.device("cpu"))

    def patch_for(self, x: Tensor) -> tuple[int, ...]:
        """The patch shape used for an input: ``(p, p)`` for images, ``(p_d, p, p)`` for volumes."""
        return self.patch_2d if x.dim() == 4 else self.patch

    def grid(self, x: Tensor) -> tuple[int, ...]:
        """The 3-D patch grid of an image ``[B, C, H, W]`` (``(1, H/p, W/p)``) or a volume ``[B, C, D, H, W]``."""
        if x.dim() not in (4, 5) or x.size(1) != self.in_channels:
            raise UsageError(
                f"this ViT takes images [B, {self.in_channels}, H, W] or volumes [B, {self.in_channels}, D, H, W], "
                f"got {tuple(x.shape)}"
            )
        g = grid_shape(tuple(x.shape[2:]), self.patch_for(x))
        return (1, *g) if x.dim() == 4 else g

    def embed(self, x: Tensor, ids_keep: Tensor | None = None, mask: Tensor | None = None) -> Tensor:
        """Token embeddings with positions and the class token (:meth:`ViT.embed`, the embedding chosen by rank)."""
        if mask is not None:
            raise UsageError("a UnifiedViT encodes visible tokens (ids_keep), it has no mask token")
        grid = self.grid(x)
        tokens = patchify(x, self.patch_for(x))
        linear = self.patch_embed_2d if x.dim() == 4 else self.patch_embed
        pos = self.positions(grid, tokens.dtype, tokens.device)
        pos_prefix, pos = pos[: self.num_prefix], pos[self.num_prefix :]
        if ids_keep is not None:
            tokens = tokens.gather(1, ids_keep[..., None].expand(-1, -1, tokens.size(-1)))
            pos = pos[ids_keep]
        h = linear(tokens) + pos
        if self.cls_token is not None:
            h = torch.cat([(self.cls_token + pos_prefix).expand(h.size(0), -1, -1), h], dim=1)
        return h

    def num_patches(self, x: Tensor) -> int:
        """``L`` of an input."""
        return math.prod(self.grid(x))
