"""NumPy point clouds: ``.npy`` arrays and ``.npz`` archives.

A ``.npy`` array is ``[N, C]`` with columns by width: 3 ``xyz``, 4 ``xyz intensity``, 6 ``xyz rgb``
(ScanNet's ``*_vert_all.npy``: float colours 0..255), 7 ``xyz rgb intensity``, 9 ``xyz rgb normal``.
A structured ``.npy`` uses field names like PLY (``x y z red green blue nx ny nz label``).
A ``.npz`` archive names its arrays (Pointcept's names work): points ``points|xyz|coord|pos``, colours
``colors|rgb|color``, normals ``normals|normal``, ``intensity|strength``, labels
``labels|label|segment|semantic``, instances ``instances|instance``.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from geomask.errors import FormatError
from geomask.io.scans.scan import Scan, colors_to_unit

__all__ = ["read_npy", "load_array"]

_NPZ = {
    "points": ("points", "xyz", "coord", "coords", "pos"),
    "colors": ("colors", "rgb", "color"),
    "normals": ("normals", "normal"),
    "intensity": ("intensity", "strength"),
    "labels": ("labels", "label", "segment", "semantic", "semantic_labels"),
    "instances": ("instances", "instance", "instance_labels"),
}
_WIDTHS = {3: ("points",), 4: ("points", "intensity"), 6: ("points", "colors"), 7: ("points", "colors", "intensity")}
_WIDTHS[9] = ("points", "colors", "normals")
_SPAN = {"points": 3, "colors": 3, "normals": 3, "intensity": 1}


def load_array(path: str | Path) -> np.ndarray | dict[str, np.ndarray]:
    """``np.load`` without pickles; a corrupt or truncated file raises :class:`FormatError`."""
    path = Path(path)
    try:
        loaded = np.load(path, allow_pickle=False)
        if isinstance(loaded, np.lib.npyio.NpzFile):
            with loaded:
                return {k: loaded[k] for k in loaded.files}
        return loaded
    except (ValueError, EOFError, OSError, zipfile.BadZipFile) as e:
        if isinstance(e, FileNotFoundError):
            raise
        raise FormatError(path, f"cannot load NumPy file, truncated or corrupt ({' '.join(str(e).split())})") from None


def _from_columns(path: Path, a: np.ndarray) -> dict[str, np.ndarray]:
    if a.dtype.names:
        cols = {n.lower(): a[n] for n in a.dtype.names}
        if not all(k in cols for k in "xyz"):
            raise FormatError(path, f"structured array has no x, y, z fields (have {', '.join(a.dtype.names)})")
        out = {"points": np.stack([cols[k] for k in "xyz"], axis=1)}
        for key, names in (("colors", ("red", "green", "blue")), ("normals", ("nx", "ny", "nz"))):
            if all(k in cols for k in names):
                out[key] = np.stack([cols[k] for k in names], axis=1)
        for key, names in (("intensity", ("intensity",)), ("labels", ("label", "class")), ("instances", ("instance",))):
            hit = next((cols[k] for k in names if k in cols), None)
            if hit is not None:
                out[key] = hit
        return out
    if a.ndim != 2 or a.shape[1] not in _WIDTHS:
        raise FormatError(
            path, f"array of shape {tuple(a.shape)} is not a point cloud (expected [N, C] with C in {sorted(_WIDTHS)})"
        )
    out, col = {}, 0
    for key in _WIDTHS[a.shape[1]]:
        span = _SPAN[key]
        out[key] = a[:, col] if span == 1 else a[:, col : col + span]
        col += span
    return out


def read_npy(path: str | Path, *, drop_invalid: bool = False) -> Scan:
    """Read a ``.npy`` array or ``.npz`` archive as a :class:`Scan` (see the module doc for layouts).

    Raises:
        FormatError: truncated or corrupt file, pickled objects, an array that is not ``[N, C]``, an
            archive without a points array, non-finite coordinates, no points.
    """
    path = Path(path)
    loaded = load_array(path)
    if isinstance(loaded, dict):
        lower = {k.lower(): v for k, v in loaded.items()}
        cols = {}
        for key, names in _NPZ.items():
            hit = next((lower[n] for n in names if n in lower), None)
            if hit is not None:
                cols[key] = hit
        if "points" not in cols:
            raise FormatError(path, f"archive has no points array (have {', '.join(loaded)}; expected 'points')")
        if cols["points"].ndim == 2 and cols["points"].shape[1] > 3 and cols["points"].shape[1] in _WIDTHS:
            cols = {**_from_columns(path, cols.pop("points")), **cols}
        fmt = "npz"
    else:
        cols, fmt = _from_columns(path, loaded), "npy"
    for key in ("labels", "instances"):
        if key in cols and not np.issubdtype(cols[key].dtype, np.integer):
            values = cols[key]
            if not (np.isfinite(values).all() and (values == np.round(values)).all()):
                raise FormatError(path, f"{key} are not whole numbers")
    if "colors" in cols:
        cols["colors"] = colors_to_unit(cols["colors"], path)
    return Scan.build(drop_invalid=drop_invalid, **cols, path=str(path), format=fmt)
