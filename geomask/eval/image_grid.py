"""The picture grid of ``geomask eval images``: rows of equally sized images tiled into one PNG.

:func:`grid_pixels` tiles ``rows`` (each ``[N, C, H, W]`` in ``[0, 1]``, one or three channels) into one
``uint8 [rows · (H·s + gap) + gap, N · (W·s + gap) + gap, 3]`` array (nearest-neighbour upscaling by ``scale``,
white gaps), so the file's size is exact and known in advance; :func:`write_image_grid` saves it as a PNG with
matplotlib's ``imsave`` when matplotlib is installed, else with PIL.  Both are whole-array operations (no loops
over pixels).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from geomask.errors import UsageError

__all__ = ["grid_pixels", "grid_size", "write_image_grid"]

GAP = 2


def grid_size(rows: int, cols: int, height: int, width: int, scale: int = 4, gap: int = GAP) -> tuple[int, int]:
    """``(height, width)`` in pixels of the grid :func:`grid_pixels` makes."""
    return rows * (height * scale + gap) + gap, cols * (width * scale + gap) + gap


def grid_pixels(rows: Sequence[Tensor], scale: int = 4, gap: int = GAP) -> np.ndarray:
    """``rows`` of ``[N, C, H, W]`` images in ``[0, 1]`` (clipped) as one RGB ``uint8`` grid (module docstring)."""
    if not rows:
        raise UsageError("a picture grid needs at least one row")
    shape = tuple(rows[0].shape)
    if len(shape) != 4 or shape[1] not in (1, 3) or any(tuple(r.shape) != shape for r in rows):
        raise UsageError(f"grid rows must all be [N, 1 or 3, H, W], got {[tuple(r.shape) for r in rows]}")
    n, c, h, w = shape
    x = torch.stack([r.detach().float().cpu() for r in rows]).clamp(0, 1)  # [R, N, C, H, W]
    if c == 1:
        x = x.expand(-1, -1, 3, -1, -1)
    x = x.repeat_interleave(scale, dim=3).repeat_interleave(scale, dim=4)
    x = torch.nn.functional.pad(x, (0, gap, 0, gap), value=1.0)  # a gap right of and below every tile
    r = len(rows)
    hh, ww = x.shape[3], x.shape[4]
    tiles = x.permute(0, 3, 1, 4, 2).reshape(r * hh, n * ww, 3)  # [R·h', N·w', 3]
    tiles = torch.nn.functional.pad(tiles.permute(2, 0, 1), (gap, 0, gap, 0), value=1.0).permute(1, 2, 0)
    return (tiles * 255).round().to(torch.uint8).numpy()


def write_image_grid(rows: Sequence[Tensor], path: str | Path, scale: int = 4) -> Path:
    """Write :func:`grid_pixels` of ``rows`` to ``path`` (PNG; parent folders made) and return the path."""
    pixels = grid_pixels(rows, scale)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        from matplotlib import image as mpimg  # no figure, no backend: writes the array as it is

        mpimg.imsave(path, pixels, format="png")
    except ImportError:
        from PIL import Image

        Image.fromarray(pixels, "RGB").save(path, format="PNG")
    return path
