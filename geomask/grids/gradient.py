"""Sobel gradient maps of dense 2-D grids: Uni4Eye's gradient target and SelectiveMAE's per-patch texture score.

Per channel, with replicate padding (the border pixels repeated, so a flat image has a zero map):

.. math::
    G_x = \\begin{bmatrix} -1 & 0 & 1 \\\\ -2 & 0 & 2 \\\\ -1 & 0 & 1 \\end{bmatrix} \\star I,\\qquad
    G_y = G_x^{\\top\\text{-kernel}} \\star I,\\qquad
    \\lVert \\nabla I \\rVert = \\sqrt{G_x^2 + G_y^2}

(``⋆`` is cross-correlation, :func:`torch.nn.functional.conv2d`; one grouped convolution for both kernels and every
channel of the batch).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from geomask.errors import UsageError
from geomask.grids.patches import patchify

__all__ = ["patch_gradient_energy", "sobel", "sobel_magnitude"]

_SOBEL_X = ((-1.0, 0.0, 1.0), (-2.0, 0.0, 2.0), (-1.0, 0.0, 1.0))


def sobel(x: Tensor) -> tuple[Tensor, Tensor]:
    """The horizontal and vertical Sobel responses ``G_x, G_y`` of every channel (module docstring).

    Shapes:
        ``x [B, C, H, W]`` float → two ``[B, C, H, W]``.
    """
    if not isinstance(x, Tensor) or x.dim() != 4 or not x.is_floating_point():
        got = f"{x.dtype} {tuple(x.shape)}" if isinstance(x, Tensor) else type(x).__name__
        raise UsageError(f"a Sobel gradient takes a float [B, C, H, W] tensor, got {got}")
    c = x.size(1)
    kx = torch.tensor(_SOBEL_X, dtype=x.dtype, device=x.device)
    weight = torch.stack([kx, kx.t()])[:, None].repeat(c, 1, 1, 1)  # [2C, 1, 3, 3]: (x, y) per channel
    g = F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), weight, groups=c)
    g = g.view(x.size(0), c, 2, *x.shape[2:])
    return g[:, :, 0], g[:, :, 1]


def sobel_magnitude(x: Tensor) -> Tensor:
    """The gradient magnitude ``sqrt(G_x² + G_y²)`` of every channel: ``[B, C, H, W]`` → ``[B, C, H, W]``."""
    gx, gy = sobel(x)
    return torch.sqrt(gx * gx + gy * gy)


def patch_gradient_energy(x: Tensor, patch_size: int | tuple[int, int]) -> Tensor:
    """The mean gradient magnitude of every patch, standardised over the patches of each image (no gradient).

    Shapes:
        ``x [B, C, H, W]`` → ``[B, L]`` (row-major patch grid; mean 0 and standard deviation 1 per image, or all
        zeros for an image whose patches are equally textured).
    """
    with torch.no_grad():
        energy = patchify(sobel_magnitude(x), patch_size).mean(-1)
        mean = energy.mean(1, keepdim=True)
        std = energy.std(1, keepdim=True, unbiased=False)
        return (energy - mean) / std.clamp(min=1e-6)
