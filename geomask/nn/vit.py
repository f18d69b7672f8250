"""Vision Transformer over patch tokens of any spatial rank: visible-only (MAE) and mask-token (SimMIM) encoding.

Pre-LN blocks (timm's / MAE's layout, ``scaled_dot_product_attention`` inside):

.. math::
    x \\leftarrow x + \\mathrm{DP}(\\mathrm{Attn}(\\mathrm{LN}_1(x))),\\qquad
    x \\leftarrow x + \\mathrm{DP}(\\mathrm{MLP}(\\mathrm{LN}_2(x)))

with one fused ``qkv`` projection per block, GELU (exact) MLPs and a final LayerNorm; ``DP`` is per-sample
stochastic depth (off by default).

**Patch embedding** is a linear map of :func:`~geomask.grids.patchify` tokens (channel last inside a patch), not a
convolution: one code path for 1-, 2- and 3-D grids (``Conv{1,2,3}d`` would need one per rank), and a
visible-only encoder gathers the *pixels* of its visible patches before the map, so MAE embeds only the 25 %
it encodes.  A stride-``p`` ``Conv2d`` with weight ``W [E, C, p, p]`` is the same map with
``W.permute(0, 2, 3, 1).reshape(E, -1)`` (:mod:`geomask.nn.convert_hf` converts Hugging Face checkpoints).

**Positions** are MAE's fixed N-D sin-cos embedding (:func:`~geomask.grids.sincos_pos_embed`, a zero row for the
class token), computed for whatever grid the input has (a buffer caches the grid of ``image_size``), or learned
(``pos_embed="learned"``, one grid only, as Hugging Face's ``ViTModel``).

Token order: the optional class token first, then patch tokens in row-major grid order -- or, with ``ids_keep``,
the selected tokens in the order given.  Masks follow the masker protocol (True = masked); padding masks say
True = padding (the token is no key of any attention).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from geomask.errors import UsageError
from geomask.grids.patches import grid_shape, patch_shape, patchify
from geomask.grids.pos_embed import sincos_pos_embed

__all__ = [
    "MAEDecoder",
    "SinCosPositions",
    "ViT",
    "ViTBlock",
    "attention_mask",
    "init_transformer",
    "transformer_blocks",
    "visible_ids",
]


def _drop_path(x: Tensor, p: float, training: bool) -> Tensor:
    """Stochastic depth: zero whole samples with probability ``p`` (global RNG), scale the rest by ``1 / (1 - p)``."""
    if p == 0.0 or not training:
        return x
    keep = x.new_empty((x.size(0),) + (1,) * (x.dim() - 1)).bernoulli_(1.0 - p)
    return x * keep / (1.0 - p)


def attention_mask(padding_mask: Tensor | None, prefix: int = 0) -> Tensor | None:
    """The boolean ``attn_mask`` of :func:`~torch.nn.functional.scaled_dot_product_attention` for a padding mask.

    Args:
        padding_mask: ``[B, N]`` bool, True = padding (no key); ``None`` = no padding.
        prefix: tokens in front of the padded ones that are never padding (a class token).

    Shapes:
        ``[B, N]`` → ``[B, 1, 1, prefix + N]`` (True = may attend).
    """
    if padding_mask is None:
        return None
    if padding_mask.dtype != torch.bool or padding_mask.dim() != 2:
        raise UsageError(
            f"padding_mask must be a [B, N] bool tensor, got {padding_mask.dtype} {tuple(padding_mask.shape)}"
        )
    keep = ~padding_mask
    if prefix:
        keep = torch.cat([keep.new_ones(keep.size(0), prefix), keep], dim=1)
    return keep[:, None, None, :]


def visible_ids(mask: Tensor) -> tuple[Tensor, Tensor | None]:
    """The visible tokens of every sample in grid order, padded to the largest visible count.

    Args:
        mask: ``[B, L]`` bool, True = masked.

    Returns:
        ``ids_keep [B, K]`` int64 (``K`` = most visible tokens of a sample; a sample with fewer is filled with its
        masked tokens) and ``padding [B, K]`` bool (True = a filler), ``None`` when every sample shows ``K``.
    """
    if mask.dtype != torch.bool or mask.dim() != 2:
        raise UsageError(f"mask must be a [B, L] bool tensor, got {mask.dtype} {tuple(mask.shape)}")
    visible = (~mask).sum(1)
    k = int(visible.max()) if mask.numel() else 0
    ids = torch.argsort(mask.to(torch.uint8), dim=1, stable=True)[:, :k]  # visible first, each in grid order
    if bool((visible == k).all()):
        return ids, None
    return ids, torch.arange(k, device=mask.device)[None, :] >= visible[:, None]


class SinCosPositions(nn.Module):
    """Fixed sin-cos positions of a patch grid (:func:`~geomask.grids.sincos_pos_embed`), cached for one grid.

    Args:
        dim: width ``E`` (a multiple of ``2 D``).
        spatial_dims: ``D``.
        cls_token: a zero row first.
        grid: the grid to cache (a non-persistent buffer); others are computed when asked for.

    Shapes:
        ``forward(grid)`` → ``[c + L, E]`` with ``c = 1`` for a class token.
    """

    def __init__(self, dim: int, spatial_dims: int, cls_token: bool, grid: Sequence[int] | None = None):
        super().__init__()
        if dim % (2 * spatial_dims):
            raise UsageError(
                f"a {spatial_dims}-D sin-cos embedding needs a width divisible by {2 * spatial_dims}, got {dim}"
            )
        self.dim, self.cls_token = dim, cls_token
        self.grid = tuple(grid) if grid is not None else None
        cached = sincos_pos_embed(dim, self.grid, cls_token) if self.grid is not None else None
        self.register_buffer("cached", cached, persistent=False)

    def forward(self, grid: Sequence[int], dtype: torch.dtype, device: torch.device) -> Tensor:
        if self.cached is not None and tuple(grid) == self.grid:
            return self.cached.to(dtype=dtype, device=device)
        return sincos_pos_embed(self.dim, tuple(grid), self.cls_token, dtype=dtype, device=device)


class Attention(nn.Module):
    """Multi-head self-attention with a fused ``qkv`` projection (timm's layout) over SDPA."""

    def __init__(self, dim: int, heads: int, qkv_bias: bool = True):
        super().__init__()
        if dim % heads:
            raise UsageError(f"width {dim} is not divisible by {heads} heads")
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor, attn_mask: Tensor | None = None) -> Tensor:
        b, n, c = x.shape
        # split q, k, v on the [B, N, 3, H, D] view itself: their gradients stack straight back into that layout
        # (one copy), where permuting to [3, B, H, N, D] first costs a stack and a re-layout copy per step
        q, k, v = (t.transpose(1, 2) for t in self.qkv(x).view(b, n, 3, self.heads, c // self.heads).unbind(2))
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
        return self.proj(out.transpose(1, 2).reshape(b, n, c))


class Mlp(nn.Module):
    """``fc2(GELU(fc1(x)))``."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1, self.act, self.fc2 = nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.act(self.fc1(x)))


class ViTBlock(nn.Module):
    """One pre-LN transformer block (module docstring).

    Args:
        dim: width ``E``.
        heads: attention heads (dividing ``E``).
        mlp_ratio: MLP hidden width over ``E``.
        qkv_bias: bias of the ``qkv`` projection.
        eps: LayerNorm epsilon (MAE / timm: 1e-6; Hugging Face's configs default to 1e-12).
        drop_path: stochastic-depth probability of both branches.

    Shapes:
        ``x [B, N, E]``, ``attn_mask`` ``[B, 1, 1, N]`` bool or ``None`` → ``[B, N, E]``.
    """

    def __init__(
        self,
        dim: int,
        heads: int,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        eps: float = 1e-6,
        drop_path: float = 0.0,
    ):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=eps)
        self.attn = Attention(dim, heads, qkv_bias)
        self.norm2 = nn.LayerNorm(dim, eps=eps)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.drop_path = float(drop_path)

    def forward(self, x: Tensor, attn_mask: Tensor | None = None) -> Tensor:
        x = x + _drop_path(self.attn(self.norm1(x), attn_mask), self.drop_path, self.training)
        return x + _drop_path(self.mlp(self.norm2(x)), self.drop_path, self.training)


def transformer_blocks(dim, depth, heads, mlp_ratio, qkv_bias, eps, drop_path) -> nn.ModuleList:
    """``depth`` pre-LN :class:`ViTBlock` s with stochastic depth rising linearly to ``drop_path``."""
    rates = torch.linspace(0, drop_path, depth).tolist()  # timm's rule: deeper blocks drop more
    return nn.ModuleList(ViTBlock(dim, heads, mlp_ratio, qkv_bias, eps, r) for r in rates)


def init_transformer(module: nn.Module) -> None:
    """MAE's initialisation: xavier-uniform linear maps with zero bias, LayerNorm (1, 0)."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


class ViT(nn.Module):
    """A Vision Transformer on dense grids ``[B, C, *spatial]`` of rank ``spatial_dims`` (module docstring).

    Args:
        patch_size: an int or one int per spatial axis.
        in_channels: ``C``.
        dim: width ``E`` (ViT-Ti 192, S 384, B 768).
        depth: blocks (12).
        heads: attention heads (Ti 3, S 6, B 12).
        mlp_ratio: MLP width over ``E``.
        spatial_dims: ``D`` (2: images; 3: volumes or ``T, H, W`` video).
        image_size: the input size (an int or ``D`` ints): caches its sin-cos positions; required for learned ones.
        cls_token: a learnable class token in front.
        mask_token: a learnable mask token that replaces the embeddings of masked patches (SimMIM).
        pos_embed: ``"sincos"`` (fixed, any grid) or ``"learned"`` (the grid of ``image_size`` only).
        qkv_bias, eps, drop_path: of the blocks (stochastic depth rises linearly to ``drop_path``).

    Shapes:
        ``x [B, C, *spatial]`` → ``[B, c + K, E]``: ``c = 1`` with a class token, ``K = L`` patch tokens, or the
        ``K`` of ``ids_keep``.
    """

    def __init__(
        self,
        patch_size: int | Sequence[int] = 16,
        in_channels: int = 3,
        dim: int = 768,
        depth: int = 12,
        heads: int = 12,
        mlp_ratio: float = 4.0,
        *,
        spatial_dims: int = 2,
        image_size: int | Sequence[int] | None = None,
        cls_token: bool = True,
        mask_token: bool = False,
        pos_embed: str = "sincos",
        qkv_bias: bool = True,
        eps: float = 1e-6,
        drop_path: float = 0.0,
    ):
        super().__init__()
        self.patch = patch_shape(patch_size, spatial_dims)
        self.in_channels, self.dim = in_channels, dim
        self.image_grid = None
        if image_size is not None:
            size = (image_size,) * spatial_dims if isinstance(image_size, int) else tuple(image_size)
            self.image_grid = grid_shape(size, self.patch)
        self.num_prefix = int(cls_token)
        self.patch_embed = nn.Linear(math.prod(self.patch) * in_channels, dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim)) if cls_token else None
        self.mask_token = nn.Parameter(torch.zeros(1, 1, dim)) if mask_token else None
        if pos_embed == "learned":
            if self.image_grid is None:
                raise UsageError("pos_embed='learned' needs image_size (its positions belong to one grid)")
            self.pos_embed = nn.Parameter(torch.zeros(1, self.num_prefix + math.prod(self.image_grid), dim))
            self.sincos = None
        elif pos_embed == "sincos":
            self.register_parameter("pos_embed", None)
            self.sincos = SinCosPositions(dim, spatial_dims, cls_token, self.image_grid)
        else:
            raise UsageError(f"pos_embed must be 'sincos' or 'learned', got {pos_embed!r}")
        self.blocks = transformer_blocks(dim, depth, heads, mlp_ratio, qkv_bias, eps, drop_path)
        self.norm = nn.LayerNorm(dim, eps=eps)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """MAE's initialisation (tokens and learned positions: normal, std 0.02)."""
        init_transformer(self)
        for p in (self.cls_token, self.mask_token):
            if p is not None:
                nn.init.normal_(p, std=0.02)
        if self.pos_embed is not None:
            nn.init.trunc_normal_(self.pos_embed, std=0.02)

    def grid(self, x: Tensor) -> tuple[int, ...]:
        """The patch grid of an input ``[B, C, *spatial]`` (UsageError unless it fits this ViT)."""
        if x.dim() != len(self.patch) + 2 or x.size(1) != self.in_channels:
            raise UsageError(
                f"this ViT takes [B, {self.in_channels}, {len(self.patch)} spatial axes], got {tuple(x.shape)}"
            )
        return grid_shape(tuple(x.shape[2:]), self.patch)

    def positions(self, grid: Sequence[int], dtype: torch.dtype, device: torch.device) -> Tensor:
        """Positions of the class token (if any) and every patch of ``grid``, ``[c + L, E]``."""
        if self.pos_embed is None:
            return self.sincos(grid, dtype, device)
        if tuple(grid) != self.image_grid:
            raise UsageError(
                f"learned positions belong to the grid {self.image_grid}, got an input of grid {tuple(grid)}"
            )
        return self.pos_embed[0].to(dtype)

    def embed(self, x: Tensor, ids_keep: Tensor | None = None, mask: Tensor | None = None) -> Tensor:
        """Token embeddings with positions (and the class token), before the blocks.

        Args:
            x: ``[B, C, *spatial]``.
            ids_keep: ``[B, K]`` the patches to embed (visible-only encoding), in the order given.
            mask: ``[B, K]`` (``K = L`` without ``ids_keep``) bool, True = the mask token replaces the patch.

        Shapes:
            → ``[B, c + K, E]``.
        """
        grid = self.grid(x)
        tokens = patchify(x, self.patch)
        pos = self.positions(grid, tokens.dtype, tokens.device)
        pos_prefix, pos = pos[: self.num_prefix], pos[self.num_prefix :]
        if ids_keep is not None:
            tokens = tokens.gather(1, ids_keep[..., None].expand(-1, -1, tokens.size(-1)))
            pos = pos[ids_keep]
        h = self.patch_embed(tokens)
        if mask is not None:
            if self.mask_token is None:
                raise UsageError("this ViT has no mask token: build it with mask_token=True")
            if mask.shape != h.shape[:2] or mask.dtype != torch.bool:
                raise UsageError(
                    f"mask must be a {tuple(h.shape[:2])} bool tensor, got {mask.dtype} {tuple(mask.shape)}"
                )
            h = torch.where(mask[..., None], self.mask_token.to(h.dtype), h)
        h = h + pos
        if self.cls_token is not None:
            cls = (self.cls_token + pos_prefix).expand(h.size(0), -1, -1)
            h = torch.cat([cls, h], dim=1)
        return h

    def forward_blocks(self, h: Tensor, padding_mask: Tensor | None = None) -> Tensor:
        """The blocks and the final norm over embedded tokens ``[B, c + K, E]`` (``padding_mask [B, K]``)."""
        attn_mask = attention_mask(padding_mask, self.num_prefix)
        for block in self.blocks:
            h = block(h, attn_mask)
        return self.norm(h)

    def forward(
        self,
        x: Tensor,
        *,
        ids_keep: Tensor | None = None,
        mask: Tensor | None = None,
        padding_mask: Tensor | None = None,
    ) -> Tensor:
        """Encode ``x``: every patch, the ``ids_keep`` patches only (MAE), and/or with masked patches replaced
        by the mask token (SimMIM); ``padding_mask [B, K]`` (True = padding) keeps tokens out of attention."""
        return self.forward_blocks(self.embed(x, ids_keep, mask), padding_mask)

    def pool(self, out: Tensor, kind: str = "mean") -> Tensor:
        """One vector per sample from encoder output ``[B, c + K, E]``: ``"mean"`` of the patch tokens or ``"cls"``."""
        if kind == "mean":
            return out[:, self.num_prefix :].mean(1)
        if kind == "cls":
            if self.cls_token is None:
                raise UsageError("pool='cls' needs a class token (cls_token=True)")
            return out[:, 0]
        raise UsageError(f"pool must be 'mean' or 'cls', got {kind!r}")


class MAEDecoder(nn.Module):
    """MAE's light decoder: visible latents and a shared mask token back at every grid position, predicting patches.

    ``embed`` maps the encoder's tokens to the decoder width; every masked position gets the mask token; the class
    token (if any) stays in front; fixed sin-cos positions are added; ``depth`` pre-LN blocks, a LayerNorm and a
    linear ``pred`` give one ``out_dim`` vector per patch (Hugging Face's ``ViTMAEDecoder``, same arithmetic).

    Args:
        in_dim: encoder width.
        out_dim: per-patch output, ``Π p_d · C`` for pixels.
        dim, depth, heads, mlp_ratio: the decoder transformer (MAE: 512, 8, 16, 4).
        spatial_dims: ``D``.
        grid: the patch grid whose positions are cached.
        cls_token: the encoder's output starts with a class token.
        eps: LayerNorm epsilon.

    Shapes:
        latent ``[B, c + K, E]``, ids_keep ``[B, K]`` (the grid index of each latent token), padding ``[B, K]`` →
        ``[B, L, out_dim]`` in grid order.
    """

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        dim: int = 512,
        depth: int = 8,
        heads: int = 16,
        mlp_ratio: float = 4.0,
        *,
        spatial_dims: int = 2,
        grid: Sequence[int] | None = None,
        cls_token: bool = True,
        eps: float = 1e-6,
    ):
        super().__init__()
        self.num_prefix = int(cls_token)
        self.embed = nn.Linear(in_dim, dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.positions = SinCosPositions(dim, spatial_dims, cls_token, grid)
        self.blocks = transformer_blocks(dim, depth, heads, mlp_ratio, True, eps, 0.0)
        self.norm = nn.LayerNorm(dim, eps=eps)
        self.pred = nn.Linear(dim, out_dim)
        init_transformer(self)
        nn.init.normal_(self.mask_token, std=0.02)

    def forward(
        self, latent: Tensor, ids_keep: Tensor, grid: Sequence[int], padding_mask: Tensor | None = None
    ) -> Tensor:
        h = self.embed(latent)
        b, d, n = h.size(0), h.size(-1), math.prod(grid)
        prefix, visible = h[:, : self.num_prefix], h[:, self.num_prefix :]
        index = ids_keep if padding_mask is None else ids_keep.masked_fill(padding_mask, n)  # fillers to a spare slot
        full = self.mask_token.to(h.dtype).expand(b, n + 1, d)
        full = full.scatter(1, index[..., None].expand(-1, -1, d), visible)[:, :n]
        h = torch.cat([prefix, full], dim=1) + self.positions(grid, h.dtype, h.device)
        for block in self.blocks:
            h = block(h)
        return self.pred(self.norm(h[:, self.num_prefix :]))
