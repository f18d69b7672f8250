"""MAE's random token masking, with the ``ids_keep`` / ``ids_restore`` that visible-only encoders gather by.

MAE (He et al. 2022) and Hugging Face's ``ViTMAEEmbeddings.random_masking``: every sample draws
``noise ~ U[0, 1)^L``; ``ids_shuffle = argsort(noise)`` (ascending: small noise is **kept**),
``ids_restore = argsort(ids_shuffle)``, the first ``L - M`` of ``ids_shuffle`` are kept and the mask is
``ids_restore >= L - M``.  Give :func:`mae_random_masking` the same ``noise`` as Hugging Face's ``noise=``
argument and it returns the same tensors, so masks can be reproduced across the two.

The masked count is the project's rule, ``M = floor(r L + 0.5)`` (:func:`~geomask.masking.base.mask_counts`).
MAE computes ``L - int(L (1 - r))``, i.e. ``ceil(r L)`` up to float error; the two agree whenever ``r L`` has a
fractional part of 0 or at least 0.5 (``r = 0.75`` with ``L = 196`` or ``64``: 147 and 48 in both).
"""

from __future__ import annotations

import torch
from torch import Tensor

from geomask.errors import UsageError
from geomask.masking.base import Masker, check_ratio, mask_counts, resolve_generator
from geomask.masking.layout import TokenGridLayout
from geomask.masking.registry import register_masker

__all__ = ["RandomTokenMasker", "ids_from_mask", "mae_random_masking"]


def mae_random_masking(noise: Tensor, ratio: float) -> tuple[Tensor, Tensor, Tensor]:
    """MAE's per-sample random masking from given noise: ``(mask, ids_keep, ids_restore)``.

    Args:
        noise: ``[B, L]`` floats; the ``L - M`` smallest of every row are kept.
        ratio: masked share, ``M = floor(ratio * L + 0.5)``.

    Shapes:
        ``[B, L]`` → mask ``[B, L]`` bool (True = masked), ids_keep ``[B, L - M]`` int64 (in noise order, as
        MAE's encoder gathers them), ids_restore ``[B, L]`` int64 (``gather(cat([visible, mask tokens]),
        ids_restore)`` puts tokens back in grid order).
    """
    if noise.dim() != 2:
        raise UsageError(f"noise must be [B, L], got {tuple(noise.shape)}")
    b, n = noise.shape
    ratio = check_ratio("random_tokens", "ratio", ratio)
    keep = n - int(mask_counts(torch.tensor([n]), ratio)[0])
    ids_shuffle = torch.argsort(noise, dim=1)
    ids_restore = torch.argsort(ids_shuffle, dim=1)
    return ids_restore >= keep, ids_shuffle[:, :keep], ids_restore


def ids_from_mask(mask: Tensor) -> tuple[Tensor, Tensor]:
    """``(ids_keep, ids_restore)`` of any mask with the same count in every row (block, SimMIM, scored ...).

    The shuffle lists the visible tokens first, then the masked ones, each in grid order (one stable sort);
    ``ids_keep`` are its first ``L - M`` entries and ``ids_restore`` its inverse, with MAE's meaning.

    Shapes:
        mask ``[B, L]`` bool (True = masked) → ids_keep ``[B, L - M]``, ids_restore ``[B, L]``, int64.

    Raises:
        UsageError: rows with different masked counts (visible tokens would not stack to ``[B, L - M, E]``).
    """
    if mask.dim() != 2:
        raise UsageError(f"mask must be [B, L], got {tuple(mask.shape)}")
    counts = mask.sum(1)
    if mask.size(0) and bool((counts != counts[0]).any()):
        raise UsageError(f"every row must mask the same number of tokens, got {sorted(set(counts.tolist()))}")
    keep = mask.size(1) - (int(counts[0]) if mask.size(0) else 0)
    ids_shuffle = torch.argsort(mask.to(torch.uint8), dim=1, stable=True)
    return ids_shuffle[:, :keep], torch.argsort(ids_shuffle, dim=1)


@register_masker("random_tokens")
class RandomTokenMasker(Masker):
    """MAE random token masking: the round(ratio * L) tokens of largest uniform noise, per sample.

    Draws ``noise = torch.rand(B, L)`` (float32, as MAE and Hugging Face) from the generator and returns
    :func:`mae_random_masking`'s mask, so the same generator state gives Hugging Face's mask for
    ``noise=noise``.  :meth:`random_masking` also returns ``ids_keep`` and ``ids_restore``.  Takes a
    :class:`~geomask.masking.layout.TokenGridLayout` (every sample has ``L`` tokens).

    Args:
        ratio: masked share (MAE: 0.75).

    Shapes:
        layout ``(B, grid)`` → ``[B * L]`` bool, row-major (True = masked).
    """

    layouts = (TokenGridLayout,)

    def __init__(self, ratio: float = 0.75) -> None:
        self.ratio = check_ratio("random_tokens", "ratio", ratio)

    def noise(self, layout: TokenGridLayout, generator: torch.Generator) -> Tensor:
        """The ``[B, L]`` float32 noise this masker draws (on the layout's device)."""
        b, n = layout.dense_shape
        return torch.rand(b, n, generator=generator, device=generator.device).to(layout.device)

    def mask(self, layout: TokenGridLayout, generator: torch.Generator) -> Tensor:  # type: ignore[override]
        return mae_random_masking(self.noise(layout, generator), self.ratio)[0].reshape(-1)

    def random_masking(
        self, batch_size: int, num_tokens: int, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor, Tensor]:
        """``(mask [B, L], ids_keep [B, L - M], ids_restore [B, L])`` for ``B`` samples of ``L`` tokens (MAE)."""
        layout = TokenGridLayout(batch_size, (num_tokens,))
        return mae_random_masking(self.noise(layout, resolve_generator(generator)), self.ratio)
