"""A transformer encoder over token sequences: token + learned position embeddings, the pre-LN blocks of
:class:`~geomask.nn.vit.ViTBlock` (one fused ``qkv``, SDPA; the same block as the ViT, not a second transformer),
padding kept out of attention, a final LayerNorm.

.. math::
    h^{(0)}_t = E[x_t] + P_t,\\qquad h \\leftarrow h + \\mathrm{Attn}(\\mathrm{LN}_1 h),\\quad
    h \\leftarrow h + \\mathrm{MLP}(\\mathrm{LN}_2 h),\\qquad \\mathrm{out} = \\mathrm{LN}(h)

Sizes (``dim, depth, heads``): tiny ``(64, 2, 2)``, BERT-small ``(512, 4, 8)``, BERT-base ``(768, 12, 12)`` with
``max_len=512``.  Positions are learned (``positions="learned"``, BERT's: ``P_t`` added to the embeddings) or rotary
(``"rotary"``, RoFormer / ESM-2: queries and keys of every head rotated by position-dependent angles
``t · 10000^{-2i/d}``, rotate-half layout, nothing added to the embeddings, any length).  Rotary blocks are the same
:class:`~geomask.nn.vit.ViTBlock` with its attention's ``forward`` replaced by :class:`RotaryAttention` (same
``qkv`` / ``proj`` weights).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from geomask.errors import UsageError
from geomask.nn.vit import _drop_path, init_transformer, transformer_blocks
from geomask.nn.vit import attention_mask as padding_attention

__all__ = ["RotaryAttention", "SequenceEncoder", "rotary_tables"]


def rotary_tables(length: int, head_dim: int, device: torch.device, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    """``cos, sin`` ``[L, d]`` of rotary positions (angles ``t · 10000^{-2i/d}``, each frequency twice, rotate-half)."""
    inv = 1.0 / (10000 ** (torch.arange(0, head_dim, 2, device=device, dtype=torch.float32) / head_dim))
    ang = torch.arange(length, device=device, dtype=torch.float32)[:, None] * inv[None, :]
    ang = torch.cat([ang, ang], -1)
    return ang.cos().to(dtype), ang.sin().to(dtype)


def _rotate(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    half = x.size(-1) // 2
    rot = torch.cat([-x[..., half:], x[..., :half]], -1)
    return x * cos + rot * sin


class RotaryAttention(nn.Module):
    """The ViT's attention (fused ``qkv``, SDPA) with rotary positions on queries and keys; wraps its weights."""

    def __init__(self, attn: nn.Module):
        super().__init__()
        self.heads, self.qkv, self.proj = attn.heads, attn.qkv, attn.proj

    def forward(self, x: Tensor, attn_mask: Tensor | None = None, positions: Tensor | None = None) -> Tensor:
        """``positions [B, N]`` int64: every token's position (packed rows: reset at each sequence start);
        ``None``: ``0 .. N-1``."""
        b, n, c = x.shape
        d = c // self.heads
        q, k, v = self.qkv(x).view(b, n, 3, self.heads, d).permute(2, 0, 3, 1, 4).unbind(0)
        if positions is None:
            cos, sin = rotary_tables(n, d, x.device, q.dtype)
        else:  # per-token tables [B, 1, N, d]
            cos, sin = rotary_tables(int(positions.max()) + 1 if positions.numel() else 1, d, x.device, q.dtype)
            cos, sin = cos[positions][:, None], sin[positions][:, None]
        out = F.scaled_dot_product_attention(_rotate(q, cos, sin), _rotate(k, cos, sin), v, attn_mask=attn_mask)
        return self.proj(out.transpose(1, 2).reshape(b, n, c))


class SequenceEncoder(nn.Module):
    """Pre-LN transformer encoder of token ids (module docstring).

    Args:
        vocab_size: ``V``.
        dim, depth, heads, mlp_ratio: the transformer.
        max_len: the longest sequence.
        positions: ``"learned"`` or ``"rotary"`` (module docstring).
        eps: LayerNorm epsilon.
        drop_path: stochastic depth rising to this value.

    Shapes:
        ``ids [B, L]`` int64, ``attention_mask [B, L]`` bool (True = real) → ``[B, L, E]``.
    """

    def __init__(
        self,
        vocab_size: int,
        dim: int = 768,
        depth: int = 12,
        heads: int = 12,
        mlp_ratio: float = 4.0,
        max_len: int = 512,
        eps: float = 1e-12,
        drop_path: float = 0.0,
        positions: str = "learned",
    ):
        super().__init__()
        if positions not in ("learned", "rotary"):
            raise UsageError(f"positions must be 'learned' or 'rotary', got {positions!r}")
        if positions == "rotary" and (dim // heads) % 2:
            raise UsageError(f"rotary positions need an even head width, got {dim} / {heads} heads")
        self.dim, self.max_len, self.vocab_size = dim, max_len, vocab_size
        self.tokens = nn.Embedding(vocab_size, dim)
        self.blocks = transformer_blocks(dim, depth, heads, mlp_ratio, True, eps, drop_path)
        if positions == "rotary":
            self.register_parameter("positions", None)
            for block in self.blocks:
                block.attn = RotaryAttention(block.attn)
        else:
            self.positions = nn.Parameter(torch.zeros(max_len, dim))
        self.norm = nn.LayerNorm(dim, eps=eps)
        init_transformer(self)
        nn.init.normal_(self.tokens.weight, std=0.02)
        if self.positions is not None:
            nn.init.trunc_normal_(self.positions, std=0.02)

    def embed(self, ids: Tensor, positions: Tensor | None = None) -> Tensor:
        """``[B, L]`` → ``[B, L, E]`` token + position embeddings (``positions [B, L]``: per-token positions,
        packed rows; ``None``: ``0 .. L-1``)."""
        if ids.dim() != 2 or ids.size(1) > self.max_len:
            raise UsageError(f"ids must be [B, L] with L <= max_len {self.max_len}, got {tuple(ids.shape)}")
        h = self.tokens(ids)
        if self.positions is None:
            return h
        if positions is None:
            return h + self.positions[: ids.size(1)]
        if positions.shape != ids.shape:
            raise UsageError(f"positions must have the ids' shape {tuple(ids.shape)}, got {tuple(positions.shape)}")
        return h + self.positions[positions]

    def forward(
        self,
        ids: Tensor,
        attention_mask: Tensor | None = None,
        segment_ids: Tensor | None = None,
        positions: Tensor | None = None,
    ) -> Tensor:
        """Packed rows (:mod:`geomask.sequences.packing`): ``segment_ids [B, L]`` (equal = same sequence) keeps
        attention inside each sequence (block-diagonal, combined with padding); ``positions [B, L]`` restart at
        every sequence (learned: the embedding row; rotary: the angle)."""
        h = self.embed(ids, positions)
        if segment_ids is not None:
            from geomask.sequences.packing import attention_within

            attn = attention_within(segment_ids, attention_mask)
        else:
            attn = None if attention_mask is None else padding_attention(~attention_mask)
        rotary = self.positions is None and positions is not None
        for block in self.blocks:
            if rotary:  # ViTBlock.forward with the positions handed to its rotary attention
                a = block.attn(block.norm1(h), attn, positions)
                h = h + _drop_path(a, block.drop_path, block.training)
                h = h + _drop_path(block.mlp(block.norm2(h)), block.drop_path, block.training)
            else:
                h = block(h, attn)
        return self.norm(h)
