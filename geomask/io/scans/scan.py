"""The :class:`Scan` dataclass every scan reader returns, its checks, and :func:`scan_info`.

Conventions: ``points`` are float32 in the file's units; ``colors`` are float32 in ``[0, 1]``;
``labels`` / ``instances`` are int64 with the file's own ids (map them with
:func:`geomask.points.labelmaps.map_labels`).  A ``Scan`` is checked when it is built: a reader that
returns one has returned a finite, non-empty cloud whose per-point arrays all have ``N`` rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from geomask.errors import FormatError

__all__ = ["Scan", "colors_to_unit", "scan_info"]

_PER_POINT = ("points", "colors", "intensity", "normals", "labels", "instances")


@dataclass
class Scan:
    """One point cloud read from a file.

    Attributes:
        points: ``[N, 3]`` float32 coordinates.
        colors: ``[N, 3]`` float32 in ``[0, 1]``, or ``None``.
        intensity: ``[N]`` float32 (the file's scale), or ``None``.
        normals: ``[N, 3]`` float32, or ``None``.
        labels: ``[N]`` int64 semantic ids as stored in the file (or its label file), or ``None``.
        instances: ``[N]`` int64 instance ids, or ``None``.
        path: the file the points came from (``None`` for in-memory data).
        format: the reader's name: ``"ply"``, ``"pcd"``, ``"las"``, ``"npy"``, ``"npz"``, ``"kitti"``.
        origin: ``[3]`` float64 shift already subtracted from the file's coordinates to keep float32
            precision (LAS/LAZ: the header offset), or ``None`` when ``points`` are the file's coordinates.

    Raises:
        FormatError: no points, non-finite coordinates, or a per-point array with another length.
    """

    points: np.ndarray
    colors: np.ndarray | None = None
    intensity: np.ndarray | None = None
    normals: np.ndarray | None = None
    labels: np.ndarray | None = None
    instances: np.ndarray | None = None
    path: str | None = None
    format: str = "memory"
    origin: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.points = np.ascontiguousarray(self.points, dtype=np.float32)
        if self.points.ndim != 2 or self.points.shape[1] != 3:
            raise FormatError(self.path, f"points have shape {tuple(self.points.shape)}, expected [N, 3]")
        n = len(self.points)
        if n == 0:
            raise FormatError(self.path, "the cloud is empty (0 points)")
        bad = ~np.isfinite(self.points).all(axis=1)
        if bad.any():
            first = int(np.flatnonzero(bad)[0])
            raise FormatError(
                self.path,
                f"{int(bad.sum())} of {n} points have NaN or infinite coordinates (first at point {first}); "
                "pass drop_invalid=True to drop them",
            )
        for name, width, dtype in (
            ("colors", 3, np.float32),
            ("normals", 3, np.float32),
            ("intensity", 0, np.float32),
            ("labels", 0, np.int64),
            ("instances", 0, np.int64),
        ):
            value = getattr(self, name)
            if value is None:
                continue
            value = np.ascontiguousarray(value)
            if width == 0 and value.ndim == 2 and value.shape[1] == 1:
                value = value[:, 0]
            want = (n, width) if width else (n,)
            if value.shape != want:
                raise FormatError(self.path, f"{name} have shape {tuple(value.shape)}, expected {list(want)}")
            setattr(self, name, value.astype(dtype, copy=False))
        if self.colors is not None and len(self.colors) and (self.colors.min() < 0 or self.colors.max() > 1):
            raise FormatError(self.path, "colors are outside [0, 1] (scale them with colors_to_unit)")
        if self.origin is not None:
            self.origin = np.asarray(self.origin, dtype=np.float64).reshape(3)

    @classmethod
    def build(cls, *, drop_invalid: bool = False, **fields) -> Scan:
        """A checked ``Scan`` from reader output; with ``drop_invalid``, points with a NaN or infinite
        coordinate (and their per-point values) are dropped first instead of raising."""
        points = np.asarray(fields["points"])
        if drop_invalid and points.ndim == 2:
            keep = np.isfinite(points).all(axis=1)
            if not keep.all():
                for name in _PER_POINT:
                    value = fields.get(name)
                    if value is not None and len(value) == len(points):
                        fields[name] = np.asarray(value)[keep]
        return cls(**fields)

    @property
    def num_points(self) -> int:
        return len(self.points)

    def __repr__(self) -> str:
        # shapes, not values, as PyG's Data prints them: Scan(points=[N, 3], labels=[N], format=..., path=...)
        parts = [f"{k}={list(getattr(self, k).shape)}" for k in _PER_POINT if getattr(self, k) is not None]
        parts.append(f"format={self.format!r}")
        if self.origin is not None:
            parts.append(f"origin=[{', '.join(f'{v:.6g}' for v in self.origin)}]")
        parts.append(f"path={self.path!r}")
        return f"Scan({', '.join(parts)})"

    def select(self, keep: np.ndarray) -> Scan:
        """The scan restricted to the points where ``keep`` (``[N]`` bool or indices) selects."""
        pick = {k: None if getattr(self, k) is None else getattr(self, k)[keep] for k in _PER_POINT}
        return Scan(**pick, path=self.path, format=self.format, origin=self.origin)


def colors_to_unit(values: np.ndarray, path: str | Path | None = None) -> np.ndarray:
    """Colour channels as float32 in ``[0, 1]``, whatever the file stored.

    Integer types are divided by their full range (uint8 by 255, uint16 by 65535, unless every value
    fits in 8 bits, as in LAS files that store 8-bit colour in 16-bit fields); floats already in
    ``[0, 1]`` are kept, floats up to 255 (colour stored as float, e.g. ScanNet's ``.npy``) are divided
    by 255.

    Args:
        values: ``[N, 3]`` colour channels of any numeric dtype.
        path: the file, for the error message.

    Raises:
        FormatError: negative colours, or floats above 255.
    """
    values = np.asarray(values)
    if values.size == 0:
        return values.astype(np.float32)
    lo, hi = values.min(), values.max()
    if lo < 0:
        raise FormatError(path, f"colour values are negative (min {lo})")
    if np.issubdtype(values.dtype, np.integer):
        scale = 255.0 if (values.dtype.itemsize == 1 or hi <= 255) else float(np.iinfo(values.dtype).max)
    elif not np.isfinite(hi) or hi > 255:
        raise FormatError(path, f"colour values go up to {hi}, expected [0, 1] or [0, 255]")
    else:
        scale = 255.0 if hi > 1 else 1.0
    return (values.astype(np.float32) / np.float32(scale)).clip(0, 1)


def scan_info(scan: Scan) -> dict[str, Any]:
    """A one-line summary of a scan for ``geomask info``.

    Returns:
        ``{"file", "format", "points", "colors": bool, "labels": bool, "classes": int | None,
        "bounds_min": [x, y, z], "bounds_max": [x, y, z]}``; ``classes`` counts the distinct
        non-negative label ids present (``None`` without labels).
    """
    classes = None
    if scan.labels is not None:
        classes = int(len(np.unique(scan.labels[scan.labels >= 0])))
    shift = np.zeros(3) if scan.origin is None else scan.origin
    return {
        "file": scan.path,
        "format": scan.format,
        "points": scan.num_points,
        "colors": scan.colors is not None,
        "labels": scan.labels is not None,
        "classes": classes,
        "bounds_min": [float(v) for v in scan.points.min(axis=0) + shift],
        "bounds_max": [float(v) for v in scan.points.max(axis=0) + shift],
    }
