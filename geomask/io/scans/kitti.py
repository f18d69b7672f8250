"""KITTI / SemanticKITTI LiDAR frames: ``.bin`` (float32 x, y, z, intensity) and ``.label`` files.

A ``.label`` file holds one uint32 per point: the lower 16 bits are the semantic id (SemanticKITTI's
raw ids 0..259, map them with ``map_labels(..., "semantickitti")``), the upper 16 the instance id.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from geomask.errors import FormatError
from geomask.io.scans.scan import Scan

__all__ = ["read_kitti_bin", "read_kitti_label"]


def read_kitti_bin(path: str | Path, *, drop_invalid: bool = False) -> Scan:
    """Read a KITTI velodyne ``.bin`` frame (``[N, 4]`` float32 records) as a :class:`Scan`.

    Raises:
        FormatError: a size that is not a whole number of 16-byte records (truncated), no points,
            non-finite coordinates.
    """
    path = Path(path)
    data = path.read_bytes()
    if len(data) % 16:
        raise FormatError(
            path,
            f"KITTI .bin size {len(data)} is not a multiple of 16 bytes (x, y, z, intensity float32): truncated",
            offset=len(data) - len(data) % 16,
        )
    table = np.frombuffer(data, dtype="<f4").reshape(-1, 4)
    return Scan.build(
        drop_invalid=drop_invalid, points=table[:, :3], intensity=table[:, 3], path=str(path), format="kitti"
    )


def read_kitti_label(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Read a SemanticKITTI ``.label`` file.

    Returns:
        ``(semantic [N] int64, instance [N] int64)``: the lower and upper 16 bits of each uint32.

    Raises:
        FormatError: a size that is not a multiple of 4 bytes.
    """
    path = Path(path)
    data = path.read_bytes()
    if len(data) % 4:
        raise FormatError(path, f"SemanticKITTI .label size {len(data)} is not a multiple of 4 bytes: truncated")
    raw = np.frombuffer(data, dtype="<u4")
    return (raw & 0xFFFF).astype(np.int64), (raw >> 16).astype(np.int64)
