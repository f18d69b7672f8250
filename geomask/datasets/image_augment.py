"""Seeded, batched image augmentations: random resized crop (MAE / SimMIM pretraining's) and horizontal flip.

Every image of a batch draws its own crop box and flip from one ``torch.Generator`` (the step's generator the
engine hands to the method), and the whole batch is resampled by **one** ``affine_grid`` + ``grid_sample`` call:
no Python loop over images.

The crop follows torchvision's ``RandomResizedCrop.get_params``: up to ``tries`` (10) attempts per image of an area
``s · H · W`` with ``s ~ U(scale)`` and an aspect ratio ``w / h`` log-uniform in ``ratio``, rounded to whole pixels;
the first attempt that fits the image wins, its top-left corner uniform over the positions that fit; when none
fits, the whole image centre-cropped to the nearest allowed ratio.  All attempts are drawn for every image (fixed
tensor shapes), so the draws, and therefore the crops, depend only on the generator's state and ``(B, H, W)``.
The box is resized to the output size with bilinear interpolation at pixel centres (``align_corners=False``, as
``torch.nn.functional.interpolate``), edges clamped:

.. math::
    \\mathrm{out}[k, l] = \\mathrm{in}\\big(i + (k + \\tfrac12) \\tfrac{h}{H'} - \\tfrac12,\\;
        j + (l + \\tfrac12) \\tfrac{w}{W'} - \\tfrac12\\big)

for a box of top-left ``(i, j)`` and size ``h × w`` and an ``H' × W'`` output; a flipped image reads column
``W' - 1 - l`` instead of ``l``.  A box of the whole image, unflipped, is the identity (up to float rounding).
Crops and flips commute with a per-channel affine normalisation, so the values may be normalised already.

Shapes:
    values ``[B, C, H, W]`` float → ``[B, C, H', W']`` (``H' × W'`` = ``size``, default ``H × W``);
    boxes ``[B, 4]`` int64 ``(top, left, height, width)``; flips ``[B]`` bool.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from geomask.errors import UsageError

__all__ = ["ImageAugment", "crop_boxes", "resized_crop"]


def _pair(value: Sequence[float], name: str, low: float, high: float) -> tuple[float, float]:
    try:
        a, b = (float(v) for v in value)
    except (TypeError, ValueError):
        raise UsageError(f"{name} must be two numbers [low, high], got {value!r}") from None
    if not (low <= a <= b <= high) or not (math.isfinite(a) and math.isfinite(b)):
        raise UsageError(f"{name} must be two numbers with {low} <= low <= high <= {high}, got {[a, b]}")
    return a, b


def crop_boxes(
    n: int,
    height: int,
    width: int,
    generator: torch.Generator,
    scale: Sequence[float] = (0.2, 1.0),
    ratio: Sequence[float] = (3 / 4, 4 / 3),
    tries: int = 10,
) -> Tensor:
    """``n`` random resized crop boxes of an ``height × width`` image (torchvision's rule, module docstring).

    Args:
        n: images.
        height, width: the image size.
        generator: the source of every draw (``2 · tries + 2`` uniforms per image, always).
        scale: the crop's share of the image area, ``[low, high]`` within ``(0, 1]``.
        ratio: the crop's aspect ``w / h``, ``[low, high]``, drawn log-uniformly.
        tries: attempts per image before the centre-crop fallback.

    Returns:
        ``[n, 4]`` int64 ``(top, left, height, width)``, every box inside the image.
    """
    lo, hi = _pair(scale, "crop scale", 1e-6, 1.0)
    r0, r1 = _pair(ratio, "crop ratio", 1e-6, 1e6)
    dev = generator.device
    u = torch.rand((n, 2 * tries + 2), generator=generator, device=dev, dtype=torch.float64).cpu()
    area = height * width * (lo + (hi - lo) * u[:, :tries])
    aspect = torch.exp(math.log(r0) + (math.log(r1) - math.log(r0)) * u[:, tries : 2 * tries])
    w = torch.round(torch.sqrt(area * aspect)).long()
    h = torch.round(torch.sqrt(area / aspect)).long()
    fits = (w > 0) & (w <= width) & (h > 0) & (h <= height)
    first = fits.long().argmax(1)  # the first attempt that fits (0 when none does: masked below)
    pick = torch.arange(n)
    found = fits.any(1)
    bh, bw = h[pick, first], w[pick, first]
    # fallback: the whole image, centre-cropped to the nearest ratio in [r0, r1]
    in_ratio = width / height
    if in_ratio < r0:
        fw, fh = width, int(round(width / r0))
    elif in_ratio > r1:
        fw, fh = int(round(height * r1)), height
    else:
        fw, fh = width, height
    bh = torch.where(found, bh, torch.full_like(bh, fh))
    bw = torch.where(found, bw, torch.full_like(bw, fw))
    top = torch.floor(u[:, -2] * (height - bh + 1)).long().clamp(max=height - bh)
    left = torch.floor(u[:, -1] * (width - bw + 1)).long().clamp(max=width - bw)
    top = torch.where(found, top, (height - bh) // 2)
    left = torch.where(found, left, (width - bw) // 2)
    return torch.stack([top, left, bh, bw], 1)


def resized_crop(
    values: Tensor, boxes: Tensor, flips: Tensor | None = None, size: Sequence[int] | None = None
) -> Tensor:
    """Each image's box resized to ``size`` (and mirrored left-right where ``flips``), one ``grid_sample`` call.

    Args:
        values: ``[B, C, H, W]`` float.
        boxes: ``[B, 4]`` ``(top, left, height, width)`` in pixels.
        flips: ``[B]`` bool, or ``None`` (no flips).
        size: the output ``(H', W')``; ``None``: ``(H, W)``.

    Shapes:
        ``[B, C, H, W]`` → ``[B, C, H', W']``.
    """
    if values.dim() != 4 or not values.is_floating_point():
        raise UsageError(f"resized_crop takes float images [B, C, H, W], got {values.dtype} {tuple(values.shape)}")
    b, c, height, width = values.shape
    out_h, out_w = (height, width) if size is None else (int(size[0]), int(size[1]))
    boxes = boxes.to(device=values.device, dtype=values.dtype)
    top, left, bh, bw = boxes.unbind(1)
    sx = bw / width
    if flips is not None:
        sx = torch.where(flips.to(values.device), -sx, sx)
    theta = torch.zeros(b, 2, 3, dtype=values.dtype, device=values.device)
    theta[:, 0, 0] = sx
    theta[:, 0, 2] = (2 * left + bw) / width - 1
    theta[:, 1, 1] = bh / height
    theta[:, 1, 2] = (2 * top + bh) / height - 1
    grid = F.affine_grid(theta, [b, c, out_h, out_w], align_corners=False)
    return F.grid_sample(values, grid, mode="bilinear", padding_mode="border", align_corners=False)


@dataclass(frozen=True)
class ImageAugment:
    """Random resized crop and horizontal flip, drawn per image from a generator (module docstring).

    Args:
        crop_scale: the crop's share of the image area, ``[low, high]`` (MAE / SimMIM pretraining: ``(0.2, 1.0)``);
            ``(1, 1)`` with ``crop_ratio`` ``(W/H, W/H)`` keeps the whole image.
        crop_ratio: the crop's aspect ``w / h``, drawn log-uniformly.
        flip: mirror each image left-right with probability 1/2.
        size: the output ``(H', W')``; ``None``: the input's size.

    Call it as ``augment(batch, generator)`` on a :class:`~geomask.grids.GridBatch` (same patch size and labels)
    or a ``[B, C, H, W]`` float tensor; the draws are :func:`crop_boxes`' then ``B`` uniforms for the flips.
    """

    crop_scale: tuple[float, float] = (0.2, 1.0)
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)
    flip: bool = True
    size: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "crop_scale", _pair(self.crop_scale, "crop scale", 1e-6, 1.0))
        object.__setattr__(self, "crop_ratio", _pair(self.crop_ratio, "crop ratio", 1e-6, 1e6))
        if self.size is not None:
            size = tuple(int(s) for s in self.size)
            if len(size) != 2 or min(size) < 1:
                raise UsageError(f"augmentation size must be two whole numbers >= 1 (H W), got {self.size!r}")
            object.__setattr__(self, "size", size)

    def sample(self, n: int, height: int, width: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """The draws of ``n`` images: boxes ``[n, 4]`` and flips ``[n]`` bool (all ``False`` without ``flip``)."""
        boxes = crop_boxes(n, height, width, generator, self.crop_scale, self.crop_ratio)
        coin = torch.rand(n, generator=generator, device=generator.device).cpu()
        return boxes, (coin < 0.5) & self.flip

    def __call__(self, batch: Any, generator: torch.Generator) -> Any:
        from geomask.grids import GridBatch

        values = batch.values if isinstance(batch, GridBatch) else batch
        if not isinstance(values, Tensor) or values.dim() != 4 or not values.is_floating_point():
            got = f"{values.dtype} {tuple(values.shape)}" if isinstance(values, Tensor) else type(values).__name__
            raise UsageError(f"image augmentations take float [B, C, H, W] images (2-D), got {got}")
        boxes, flips = self.sample(values.size(0), values.size(2), values.size(3), generator)
        out = resized_crop(values, boxes, flips, self.size)
        return batch.replace(out) if isinstance(batch, GridBatch) else out
