"""Normalised targets: MAE's per-patch ``norm_pix`` and data2vec / MSM's parameter-free LayerNorm.

Both normalise over the **last** dimension and keep the shape.  Neither detaches: a target computed from
data has no gradient anyway, and a teacher's features come from a no-grad forward.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from geomask.errors import UsageError
from geomask.targets.registry import register_target

__all__ = ["LayerNormTarget", "NormalizedPatches", "normalize_patches"]


def normalize_patches(x: Tensor, eps: float = 1e-6) -> Tensor:
    """MAE's ``norm_pix`` target: every patch (last dimension) minus its mean, over ``sqrt(var + eps)``.

    ``var`` is the unbiased variance (``Tensor.var``'s default, as MAE's code), so a patch needs two or more
    values.

    Shapes:
        x ``[..., P]`` (``P >= 2``) → ``[..., P]``.
    """
    if x.dim() == 0 or x.shape[-1] < 2:
        raise UsageError(f"norm_pix needs patches of 2 or more values in the last dimension, got {tuple(x.shape)}")
    mean = x.mean(dim=-1, keepdim=True)
    var = x.var(dim=-1, keepdim=True)
    return (x - mean) / (var + eps) ** 0.5


@register_target("norm_pix")
class NormalizedPatches(nn.Module):
    """Per-patch normalised values (MAE norm_pix): ``(x - mean) / sqrt(var + eps)`` over the last dimension.

    Args:
        eps: added to the (unbiased) variance; MAE's 1e-6.

    Shapes:
        patches ``[..., P]`` → ``[..., P]``.
    """

    def __init__(self, eps: float = 1e-6) -> None:
        super().__init__()
        if not eps > 0:
            raise UsageError(f"norm_pix eps must be > 0, got {eps}")
        self.eps = float(eps)

    def forward(self, patches: Tensor) -> Tensor:
        return normalize_patches(patches, self.eps)


@register_target("layer_norm")
class LayerNormTarget(nn.Module):
    """Parameter-free LayerNorm over the last dimension (data2vec / MSM teacher-feature normalisation).

    Exactly ``F.layer_norm(x, x.shape[-1:], eps=eps)`` (biased variance, no affine parameters).

    Args:
        eps: LayerNorm's epsilon (torch's default 1e-5).

    Shapes:
        features ``[..., C]`` → ``[..., C]``.
    """

    def __init__(self, eps: float = 1e-5) -> None:
        super().__init__()
        if not eps > 0:
            raise UsageError(f"layer_norm eps must be > 0, got {eps}")
        self.eps = float(eps)

    def forward(self, features: Tensor) -> Tensor:
        return F.layer_norm(features, features.shape[-1:], eps=self.eps)
