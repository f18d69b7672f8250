"""Normalisation of point clouds: centring, unit scaling and colour scaling.

Each function works on numpy arrays or torch tensors and returns the same kind; none changes its input.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch

from geomask.io.scans.scan import Scan

__all__ = ["center", "normalize_scan", "scale_colors", "unit_sphere"]

_MODES = ("mean", "bbox", "min")
Array = np.ndarray | torch.Tensor


def _shift(points: Array, mode: str) -> Array:
    if mode not in _MODES:
        raise ValueError(f"center mode must be one of {_MODES}, got {mode!r}")
    if mode == "mean":
        return points.mean(0, keepdims=True) if isinstance(points, np.ndarray) else points.mean(0, keepdim=True)
    lo = points.min(0) if isinstance(points, np.ndarray) else points.min(0).values
    if mode == "min":
        return lo[None]
    hi = points.max(0) if isinstance(points, np.ndarray) else points.max(0).values
    return ((lo + hi) / 2)[None]


def center(points: Array, mode: str = "mean") -> tuple[Array, Array]:
    """Shift a cloud so that its mean (``"mean"``), bounding-box centre (``"bbox"``) or minimum corner
    (``"min"``, all coordinates non-negative, as voxel grids like) is at the origin.

    Returns:
        ``(shifted [N, D], shift [1, D])`` with ``shifted = points - shift``.
    """
    if len(points) == 0:
        raise ValueError("cannot centre an empty cloud")
    shift = _shift(points, mode)
    return points - shift, shift


def unit_sphere(points: Array) -> tuple[Array, Array, float]:
    """Centre on the mean and scale so the farthest point is at distance 1.

    Returns:
        ``(normalized [N, D], shift [1, D], scale)`` with ``normalized = (points - shift) / scale``.
    """
    shifted, shift = center(points, "mean")
    if isinstance(shifted, np.ndarray):
        radius = float(np.sqrt((shifted.astype(np.float64) ** 2).sum(1)).max())
    else:
        radius = float(shifted.double().pow(2).sum(1).sqrt().max())
    scale = radius if radius > 0 else 1.0
    return shifted / scale, shift, scale


def scale_colors(colors: Array, max_value: float = 255.0) -> Array:
    """Colours from ``[0, max_value]`` to float32 ``[0, 1]`` (values already in ``[0, 1]`` stay when
    ``max_value == 1``); out-of-range values are clipped."""
    if max_value <= 0:
        raise ValueError(f"max_value must be positive, got {max_value}")
    if isinstance(colors, np.ndarray):
        return (colors.astype(np.float32) / np.float32(max_value)).clip(0, 1)
    return (colors.to(torch.float32) / max_value).clamp(0, 1)


def normalize_scan(scan: Scan, mode: str = "mean") -> tuple[Scan, np.ndarray]:
    """A copy of ``scan`` centred with :func:`center` (colours are already in ``[0, 1]`` from the readers).

    Returns:
        ``(centred scan, shift [3] float64)``; the shift is added to ``scan.origin``.
    """
    shifted, shift = center(scan.points.astype(np.float64), mode)
    origin = shift[0] + (0 if scan.origin is None else scan.origin)
    return replace(scan, points=shifted.astype(np.float32), origin=origin), shift[0]
