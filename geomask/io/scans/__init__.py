"""Scan files → :class:`Scan`: PLY, PCD, LAS/LAZ, NumPy ``.npy``/``.npz``, KITTI ``.bin``.

:func:`read_scan` picks the reader by extension (or ``format=``), attaches labels from a file beside
the scan, and checks the result: bad input raises one :class:`~geomask.errors.FormatError` line naming
the file and the problem.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from geomask.errors import FormatError, MissingFileError
from geomask.io.scans.kitti import read_kitti_bin, read_kitti_label
from geomask.io.scans.labels import read_labels
from geomask.io.scans.las import laz_available, read_las
from geomask.io.scans.npy import read_npy
from geomask.io.scans.pcd import read_pcd
from geomask.io.scans.ply import read_ply
from geomask.io.scans.scan import Scan, colors_to_unit, scan_info

__all__ = [
    "FORMATS",
    "Scan",
    "colors_to_unit",
    "laz_available",
    "read_kitti_bin",
    "read_kitti_label",
    "read_labels",
    "read_las",
    "read_npy",
    "read_pcd",
    "read_ply",
    "read_scan",
    "scan_format",
    "scan_info",
]

#: reader per format name, and the extensions that select it
FORMATS: dict[str, tuple[Callable[..., Scan], tuple[str, ...]]] = {
    "ply": (read_ply, (".ply",)),
    "pcd": (read_pcd, (".pcd",)),
    "las": (read_las, (".las", ".laz")),
    "npy": (read_npy, (".npy", ".npz")),
    "kitti": (read_kitti_bin, (".bin",)),
}


def scan_format(path: str | Path) -> str:
    """The format name for ``path``'s extension; :class:`FormatError` when it is not a scan format."""
    suffix = Path(path).suffix.lower()
    for name, (_, suffixes) in FORMATS.items():
        if suffix in suffixes:
            return name
    known = ", ".join(s for _, sx in FORMATS.values() for s in sx)
    raise FormatError(path, f"unknown scan format {suffix or '(no extension)'!r} (known: {known})")


def read_scan(
    path: str | Path,
    labels: str | Path | None = None,
    instances: str | Path | None = None,
    *,
    format: str | None = None,
    drop_invalid: bool = False,
) -> Scan:
    """Read a point cloud file.

    Args:
        path: the scan (``.ply .pcd .las .laz .npy .npz .bin``).
        labels: a per-point label file beside it (``.npy``, SemanticKITTI ``.label`` whose upper 16 bits
            also give instances, ``.txt``); replaces labels stored in the scan itself.
        instances: a per-point instance file (same formats).
        format: a name from :data:`FORMATS` to override the extension.
        drop_invalid: drop points with NaN or infinite coordinates (organized PCD clouds, LiDAR with
            missing returns) instead of raising.

    Returns:
        the checked :class:`Scan`.

    Raises:
        FormatError: unknown format, a file the reader rejects, labels of another length than the
            points, non-finite coordinates (unless ``drop_invalid``), an empty cloud.
        MissingFileError: a file that does not exist (a ``FileNotFoundError`` too).
    """
    path = Path(path)
    if not path.is_file():
        if path.is_dir():
            raise FormatError(path, "is a folder, not a scan file")
        raise MissingFileError(path)
    if format is not None and format not in FORMATS:
        raise ValueError(f"unknown scan format {format!r} (known: {', '.join(FORMATS)})")
    reader = FORMATS[format or scan_format(path)][0]
    scan = reader(path, drop_invalid=drop_invalid)
    if labels is not None:
        lab, ins = read_labels(labels)
        _check_length(labels, lab, scan)
        scan.labels = lab
        if ins is not None and instances is None:
            scan.instances = ins
    if instances is not None:
        ins, _ = read_labels(instances)
        _check_length(instances, ins, scan)
        scan.instances = ins
    return scan


def _check_length(path: str | Path, values: np.ndarray, scan: Scan) -> None:
    if len(values) != scan.num_points:
        raise FormatError(path, f"has {len(values)} labels but the scan {scan.path} has {scan.num_points} points")
