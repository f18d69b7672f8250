"""Per-point label files that sit beside a scan: ``.npy``, SemanticKITTI ``.label``, or text (one id a line)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from geomask.errors import FormatError, MissingFileError
from geomask.io.scans.kitti import read_kitti_label
from geomask.io.scans.npy import load_array

__all__ = ["read_labels"]


def read_labels(path: str | Path) -> tuple[np.ndarray, np.ndarray | None]:
    """Read a label file.

    Args:
        path: ``.npy`` (``[N]`` or ``[N, 1]`` ids), ``.label`` (SemanticKITTI: semantic and instance
            packed in a uint32) or ``.txt`` / ``.labels`` (one integer per line).

    Returns:
        ``(labels [N] int64, instances [N] int64 or None)``.

    Raises:
        FormatError: unknown extension, corrupt file, not one id per point, ids that are not integers.
    """
    path = Path(path)
    if not path.is_file():
        raise FormatError(path, "is a folder, not a label file") if path.is_dir() else MissingFileError(path)
    suffix = path.suffix.lower()
    if suffix == ".label":
        return read_kitti_label(path)
    if suffix == ".npy":
        values = load_array(path)
        if isinstance(values, dict) or values.dtype.names:
            raise FormatError(path, "label file must hold a plain [N] array")
    elif suffix in (".txt", ".labels"):
        try:
            values = np.loadtxt(path, dtype=np.float64, ndmin=1)
        except ValueError as e:
            raise FormatError(path, f"bad label line ({' '.join(str(e).split())})") from None
    else:
        raise FormatError(path, f"unknown label file format {suffix!r} (known: .npy, .label, .txt)")
    if values.ndim == 2 and values.shape[1] == 1:
        values = values[:, 0]
    if values.ndim != 1:
        raise FormatError(path, f"labels have shape {tuple(values.shape)}, expected [N]")
    if not np.issubdtype(values.dtype, np.integer):
        if not (np.isfinite(values).all() and (values == np.round(values)).all()):
            raise FormatError(path, "labels are not whole numbers")
    return values.astype(np.int64), None
