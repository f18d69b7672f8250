"""LAS / LAZ point clouds through ``laspy`` (LAZ needs a backend: ``lazrs`` or ``laszip``).

Coordinates are the scaled ``x y z`` minus the header offset (kept in ``Scan.origin``), so that
geo-referenced clouds with coordinates around 10^6 keep their precision in float32.  ``classification``
becomes ``labels``, ``intensity`` stays in the file's scale, 16-bit colours are scaled to ``[0, 1]``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from geomask.errors import FormatError
from geomask.io.scans.scan import Scan, colors_to_unit

__all__ = ["read_las", "laz_available"]


def laz_available() -> bool:
    """True when laspy has a LAZ backend (``lazrs`` or ``laszip``) installed."""
    import laspy

    return bool(laspy.LazBackend.detect_available())


def read_las(path: str | Path, *, drop_invalid: bool = False) -> Scan:
    """Read a LAS or LAZ file as a :class:`Scan`.

    Raises:
        FormatError: not a LAS file, truncated, a LAZ file without a LAZ backend, no points.
    """
    import laspy

    path = Path(path)
    if path.suffix.lower() == ".laz" and not laz_available():
        raise FormatError(path, "reading LAZ needs a laspy backend: pip install lazrs (or laszip)")
    try:
        las = laspy.read(path)
    except laspy.errors.LaspyException as e:
        raise FormatError(path, f"cannot read LAS/LAZ ({' '.join(str(e).split())})") from None
    except (ValueError, EOFError, OSError) as e:
        raise FormatError(path, f"cannot read LAS/LAZ, truncated or corrupt ({type(e).__name__}: {e})") from None
    n_header = int(las.header.point_count)
    if len(las.points) != n_header:
        raise FormatError(path, f"LAS header declares {n_header} points but the file holds {len(las.points)}")
    origin = np.asarray(las.header.offsets, dtype=np.float64)
    xyz = np.stack([np.asarray(las.x), np.asarray(las.y), np.asarray(las.z)], axis=1) - origin
    dims = set(las.point_format.dimension_names)
    colors = None
    if {"red", "green", "blue"} <= dims:
        colors = colors_to_unit(np.stack([las.red, las.green, las.blue], axis=1), path)
    return Scan.build(
        drop_invalid=drop_invalid,
        points=xyz.astype(np.float32),
        colors=colors,
        intensity=np.asarray(las.intensity, dtype=np.float32) if "intensity" in dims else None,
        labels=np.asarray(las.classification, dtype=np.int64) if "classification" in dims else None,
        path=str(path),
        format="las",
        origin=origin,
    )
