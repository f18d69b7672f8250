"""Pretraining-only MLM decoders (DrBERT / BPDec, Liang & Liang 2024): extra layers between the encoder's output and
BERT's LM head, dropped after pretraining, so the encoder and its fine-tuning cost stay BERT's.

Every decoder maps the encoder's output ``H [B, L, E]`` (and the padding mask) to ``D [B, L, E]``, the LM head's
input; the decoder has the encoder's width, so the head stays tied to the input embedding.

``stack`` (:class:`StackDecoder`; the paper's main design, "multiple transformer blocks as a decoder"):
``k`` more pre-LN self-attention blocks (:class:`~geomask.nn.vit.ViTBlock`, the encoder's block) and a LayerNorm:

.. math::
    D = \\mathrm{LN}\\big(\\mathrm{Block}_k \\circ \\dots \\circ \\mathrm{Block}_1 (H)\\big)

``positions`` (:class:`PositionDecoder`; the design that re-injects absolute positions next to the output, as
DeBERTa's enhanced mask decoder, which DrBERT starts from): queries start from ``H + P`` (``P`` the decoder's own
learned absolute positions), keys and values are the encoder's output ``H`` in every layer; each layer is pre-LN
cross-attention and an MLP with residuals:

.. math::
    Q^{(0)} = H + P,\\quad Q \\leftarrow Q + \\mathrm{softmax}\\Big(\\frac{W_q \\mathrm{LN}_1(Q)\\,
    (W_k \\bar H)^\\top}{\\sqrt{d}}\\Big) W_v \\bar H,\\quad Q \\leftarrow Q + \\mathrm{MLP}(\\mathrm{LN}_2 Q),\\quad
    D = \\mathrm{LN}(Q^{(k)})

with ``\\bar H = \\mathrm{LN}_{kv}(H)`` per layer and multi-head attention (padding keys hidden).  DeBERTa shares the
two layers' weights; here every layer has its own.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from geomask.errors import UsageError
from geomask.nn.vit import Mlp, attention_mask, init_transformer, transformer_blocks

__all__ = ["DECODERS", "CrossBlock", "PositionDecoder", "StackDecoder", "build_mlm_decoder"]

DECODERS = ("stack", "positions")
"""The decoder designs by name (module docstring)."""


class StackDecoder(nn.Module):
    """``k`` pre-LN self-attention blocks and a LayerNorm over the encoder's output (module docstring).

    Shapes:
        ``h [B, L, E]``, ``attention_mask [B, L]`` bool (True = real) or ``None`` → ``[B, L, E]``.
    """

    def __init__(self, dim: int, depth: int, heads: int, mlp_ratio: float = 4.0, eps: float = 1e-12):
        super().__init__()
        self.blocks = transformer_blocks(dim, depth, heads, mlp_ratio, True, eps, 0.0)
        self.norm = nn.LayerNorm(dim, eps=eps)
        init_transformer(self)

    def forward(self, h: Tensor, attention_mask_: Tensor | None = None) -> Tensor:
        attn = None if attention_mask_ is None else attention_mask(~attention_mask_)
        for block in self.blocks:
            h = block(h, attn)
        return self.norm(h)


class CrossBlock(nn.Module):
    """Pre-LN multi-head cross-attention from queries ``q`` to ``kv`` rows, then an MLP, each with a residual.

    Shapes:
        ``q [B, L, E]``, ``kv [B, S, E]``, ``attn_mask`` ``[B, 1, 1, S]`` bool or ``None`` → ``[B, L, E]``.
    """

    def __init__(self, dim: int, heads: int, mlp_ratio: float = 4.0, eps: float = 1e-12):
        super().__init__()
        if dim % heads:
            raise UsageError(f"width {dim} is not divisible by {heads} heads")
        self.heads = heads
        self.norm_q, self.norm_kv, self.norm2 = (nn.LayerNorm(dim, eps=eps) for _ in range(3))
        self.q, self.kv, self.proj = nn.Linear(dim, dim), nn.Linear(dim, 2 * dim), nn.Linear(dim, dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, q: Tensor, kv: Tensor, attn_mask: Tensor | None = None) -> Tensor:
        b, n, c = q.shape
        d = c // self.heads
        qh = self.q(self.norm_q(q)).view(b, n, self.heads, d).transpose(1, 2)
        k, v = self.kv(self.norm_kv(kv)).view(b, kv.size(1), 2, self.heads, d).permute(2, 0, 3, 1, 4).unbind(0)
        out = F.scaled_dot_product_attention(qh, k, v, attn_mask=attn_mask)
        q = q + self.proj(out.transpose(1, 2).reshape(b, n, c))
        return q + self.mlp(self.norm2(q))


class PositionDecoder(nn.Module):
    """Queries ``H + P`` attending to the encoder's output in ``k`` :class:`CrossBlock` s (module docstring).

    Shapes:
        ``h [B, L, E]`` (``L <= max_len``), ``attention_mask [B, L]`` bool or ``None`` → ``[B, L, E]``.
    """

    def __init__(self, dim: int, depth: int, heads: int, max_len: int, mlp_ratio: float = 4.0, eps: float = 1e-12):
        super().__init__()
        self.positions = nn.Parameter(torch.zeros(max_len, dim))
        self.blocks = nn.ModuleList(CrossBlock(dim, heads, mlp_ratio, eps) for _ in range(depth))
        self.norm = nn.LayerNorm(dim, eps=eps)
        init_transformer(self)
        nn.init.trunc_normal_(self.positions, std=0.02)

    def forward(self, h: Tensor, attention_mask_: Tensor | None = None) -> Tensor:
        if h.size(1) > self.positions.size(0):
            raise UsageError(f"the decoder has {self.positions.size(0)} positions, got a sequence of {h.size(1)}")
        attn = None if attention_mask_ is None else attention_mask(~attention_mask_)
        q = h + self.positions[: h.size(1)]
        for block in self.blocks:
            q = block(q, h, attn)
        return self.norm(q)


def build_mlm_decoder(
    name: str, dim: int, depth: int, heads: int, max_len: int, mlp_ratio: float = 4.0, eps: float = 1e-12
) -> nn.Module:
    """A decoder of :data:`DECODERS` by name; an unknown name or ``depth < 1`` is a one-line ``UsageError``."""
    if name not in DECODERS:
        raise UsageError(f"unknown decoder {name!r} (valid: {', '.join(DECODERS)})")
    if depth < 1:
        raise UsageError(f"decoder_depth must be >= 1, got {depth}")
    if name == "stack":
        return StackDecoder(dim, depth, heads, mlp_ratio, eps)
    return PositionDecoder(dim, depth, heads, max_len, mlp_ratio, eps)
