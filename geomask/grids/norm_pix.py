"""MAE's per-patch normalised pixels of a dense batch: :func:`~geomask.grids.patches.patchify`, then the
``norm_pix`` target of :mod:`geomask.targets.normalize` (one normaliser in the project, not two).

.. math::
    \\hat x = \\frac{x - \\mu_{patch}}{\\sqrt{\\sigma^2_{patch} + \\epsilon}}

over the ``P = Π p_d · C`` values of every patch (all channels together, as MAE).  ``σ²`` is the **unbiased**
variance, as MAE's code (``target.var(dim=-1, keepdim=True)``, torch's default) and Hugging Face's
``ViTMAEForPreTraining`` compute it; ``ε = 1e-6``.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor

from geomask.grids.patches import patchify
from geomask.targets.normalize import normalize_patches

__all__ = ["norm_pix"]


def norm_pix(
    x: Tensor, patch_size: int | Sequence[int], eps: float = 1e-6, temporal_patch_size: int | None = None
) -> Tensor:
    """Per-patch normalised patch tokens of a dense batch (MAE's ``norm_pix_loss`` target).

    Args:
        x: ``[B, C, *spatial]``.
        patch_size, temporal_patch_size: as for :func:`~geomask.grids.patches.patchify`.
        eps: added to the per-patch variance.

    Shapes:
        ``[B, C, *spatial]`` → ``[B, L, P]`` (every row has mean 0 and unbiased variance ``σ² / (σ² + ε)``).
    """
    return normalize_patches(patchify(x, patch_size, temporal_patch_size), eps)
