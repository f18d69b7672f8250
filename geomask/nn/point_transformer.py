"""Transformer over point-patch tokens with centre positional embeddings (Point-BERT / Point-MAE).

Pre-norm blocks ``x = x + Attn(LN(x + pos))``, ``x = x + MLP(LN(x))``; the positional embedding of every
token (an MLP of its patch centre) is added to the block input at every block, as in Point-MAE.
"""

from __future__ import annotations

from torch import Tensor, nn

__all__ = ["CenterEmbed", "PatchTransformer", "TransformerBlock"]


class CenterEmbed(nn.Module):
    """Positional embedding of patch centres: ``Linear(3, 128) → GELU → Linear(128, C)``.

    Shapes:
        centers ``[B, G, 3]`` → ``[B, G, C]``.
    """

    def __init__(self, dim: int, hidden: int = 128):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(3, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, centers: Tensor) -> Tensor:
        return self.mlp(centers)


class TransformerBlock(nn.Module):
    """One pre-norm self-attention block.

    Args:
        dim: C.
        heads: attention heads (dividing C).
        mlp_ratio: hidden width of the MLP over C.
        dropout: dropout of attention weights and MLP.
    """

    def __init__(self, dim: int, heads: int, mlp_ratio: float = 4.0, dropout: float = 0.0):
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim {dim} is not divisible by heads {heads}")
        self.norm1 = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.norm2 = nn.LayerNorm(dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, dim))

    def forward(self, x: Tensor) -> Tensor:
        h = self.norm1(x)
        x = x + self.attn(h, h, h, need_weights=False)[0]
        return x + self.mlp(self.norm2(x))


class PatchTransformer(nn.Module):
    """A stack of :class:`TransformerBlock` with the positional embedding added before every block.

    Args:
        dim: C.
        depth: number of blocks.
        heads: attention heads.
        mlp_ratio: MLP width over C.
        dropout: dropout inside the blocks.

    Shapes:
        x ``[B, L, C]``, pos ``[B, L, C]`` → ``[B, L, C]`` (layer-normalised).
    """

    def __init__(self, dim: int, depth: int, heads: int, mlp_ratio: float = 4.0, dropout: float = 0.0):
        super().__init__()
        self.blocks = nn.ModuleList(TransformerBlock(dim, heads, mlp_ratio, dropout) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: Tensor, pos: Tensor) -> Tensor:
        for blk in self.blocks:
            x = blk(x + pos)
        return self.norm(x)
