"""Image sources as uint8 arrays: folders of PNG / JPEG files, single image files, ``.npz`` and ``.npy`` arrays.

The reading rules of ``geomask prep images`` (:mod:`geomask.datasets.prep_images`):

* a **folder**: each subfolder is a class (names sorted → ids 0, 1, ...; images anywhere below it), images directly
  in the folder are unlabelled (-1); hidden files and folders are skipped.  Every image is read as RGB (grey
  images repeated, alpha dropped) with Pillow.  A file that cannot be decoded, or has another size than the
  folder's first, fails alone (:func:`read_folder` returns it with its message); the others are kept.
* an image file (PNG, JPEG, BMP, GIF, WebP, TIFF): one unlabelled RGB image.
* ``.npz``: ``images`` (``N×H×W×C``, ``N×C×H×W``, or ``N×H×W`` for one channel), optional ``labels`` (``[N]``
  integers, -1 unlabelled) and ``classes`` (names; without them class ``i`` is named ``"i"``); ``.npy``: images
  only (unlabelled).  The channel axis of a 4-D array is the shorter of axes 1 and 3 (channels last on a tie).
  Integer arrays must hold 0..255; float arrays are read as 0..1 when their maximum is at most 1, else as 0..255,
  and must be finite.  Nothing is unpickled (``allow_pickle=False``).

Shapes: images are returned as ``[N, C, H, W]`` uint8, labels ``[N]`` int64.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from geomask.errors import FormatError, GeomaskError, MissingFileError

__all__ = [
    "IMAGE_SUFFIXES",
    "read_folder",
    "read_image_array",
    "read_picture",
    "resize_images",
    "size_error",
    "source_format",
]

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}

Shape = tuple[int, int, int]


def _as_uint8(a: np.ndarray, path: Path) -> np.ndarray:
    """Pixel values as uint8 (module docstring's rules)."""
    if a.dtype == np.uint8:
        return a
    kind = a.dtype.kind
    if kind in "iu":
        lo, hi = (int(a.min()), int(a.max())) if a.size else (0, 0)
        if lo < 0 or hi > 255:
            raise FormatError(path, f"{a.dtype} pixel values from {lo} to {hi}, outside 0..255 (scale them to 8 bits)")
        return a.astype(np.uint8)
    if kind == "f":
        bad = ~np.isfinite(a)
        if bad.any():
            first = int(np.argmax(bad.reshape(len(a), -1).any(1)))
            what = "NaN" if np.isnan(a).any() else "infinite values"
            raise FormatError(path, f"{what} in the images (first in image {first})")
        lo, hi = (float(a.min()), float(a.max())) if a.size else (0.0, 0.0)
        if lo < 0 or hi > 255:
            raise FormatError(path, f"float pixel values from {lo:g} to {hi:g}, outside 0..1 and 0..255")
        return np.rint(a * (255.0 if hi <= 1.0 else 1.0)).clip(0, 255).astype(np.uint8)
    raise FormatError(path, f"images of dtype {a.dtype} (expected uint8, integers in 0..255 or floats)")


def _to_nchw(a: np.ndarray, path: Path) -> np.ndarray:
    if a.ndim == 3:
        a = a[:, None]
    elif a.ndim == 4:
        if a.shape[3] <= a.shape[1]:
            a = a.transpose(0, 3, 1, 2)
    else:
        raise FormatError(path, f"images must be N×H×W×C, N×C×H×W or N×H×W, got shape {tuple(a.shape)}")
    if min(a.shape) == 0:
        raise FormatError(path, f"holds no images (shape {tuple(a.shape)})")
    return np.ascontiguousarray(a)


def _labels(z: Any, n: int, path: Path) -> tuple[np.ndarray, list[str]]:
    files = set(getattr(z, "files", ()))
    labels = np.full(n, -1, dtype=np.int64)
    if "labels" in files:
        lab = np.asarray(z["labels"])
        if lab.ndim == 2 and lab.shape[1] == 1:
            lab = lab[:, 0]
        if lab.ndim != 1:
            raise FormatError(path, f"labels must be one per image [N], got shape {tuple(lab.shape)}")
        if len(lab) != n:
            raise FormatError(path, f"{len(lab)} labels for {n} images")
        if lab.dtype.kind == "f" and not (np.isfinite(lab).all() and (lab == np.round(lab)).all()):
            raise FormatError(path, "labels must be whole numbers")
        if lab.dtype.kind not in "iuf":
            raise FormatError(path, f"labels of dtype {lab.dtype} (expected integers)")
        labels = lab.astype(np.int64)
        if len(labels) and labels.min() < -1:
            raise FormatError(path, f"label {int(labels.min())} (labels are class ids >= 0, or -1 for none)")
    if "classes" in files:
        cl = np.asarray(z["classes"])
        if cl.ndim != 1:
            raise FormatError(path, f"classes must be a list of names, got shape {tuple(cl.shape)}")
        classes = [str(c) for c in cl.tolist()]
        if len(set(classes)) != len(classes):
            raise FormatError(path, "class names repeat")
    else:
        classes = [str(i) for i in range(int(labels.max()) + 1)] if len(labels) else []
    if len(labels) and labels.max() >= len(classes):
        raise FormatError(path, f"label {int(labels.max())} but {len(classes)} classes")
    return labels, classes


def read_image_array(path: str | Path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Images, labels and class names of an ``.npz`` or ``.npy`` file (module docstring's rules).

    Returns:
        ``images [N, C, H, W]`` uint8, ``labels [N]`` int64 (-1: unlabelled), class names.

    Raises:
        FormatError: an unreadable file, no ``images`` array, a wrong rank, bad values or labels.
    """
    path = Path(path)
    try:
        if path.suffix.lower() == ".npy":
            images = np.load(path, allow_pickle=False)
            return _finish(images, None, path)
        with np.load(path, allow_pickle=False) as z:
            if "images" not in z.files:
                have = ", ".join(z.files) or "nothing"
                raise FormatError(path, f"no 'images' array (it has {have})")
            return _finish(z["images"], z, path)
    except GeomaskError:
        raise
    except Exception as e:  # a truncated zip, an object array, not NumPy at all
        raise FormatError(path, f"cannot read ({type(e).__name__}: {' '.join(str(e).split())})") from None


def _finish(images: np.ndarray, z: Any, path: Path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    if not isinstance(images, np.ndarray) or images.dtype.names is not None:
        raise FormatError(path, "not a plain array of pixels")
    images = _to_nchw(images, path)
    labels, classes = _labels(z, len(images), path)
    return _as_uint8(images, path), labels, classes


def resize_images(images: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``[N, C, H, W]`` uint8 resized to ``size`` (bilinear, antialiased), in chunks to bound memory."""
    if tuple(images.shape[2:]) == tuple(size):
        return images
    out = np.empty((len(images), images.shape[1], *size), dtype=np.uint8)
    for s in range(0, len(images), 1024):
        x = torch.from_numpy(images[s : s + 1024]).float()
        y = torch.nn.functional.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)
        out[s : s + 1024] = y.round().clamp(0, 255).to(torch.uint8).numpy()
    return out


def read_picture(path: Path, size: tuple[int, int] | None) -> np.ndarray:
    """One image file as RGB ``[3, H, W]`` uint8 (resized to ``size`` when given)."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            im.load()
            rgb = im.convert("RGB")
    except Exception as e:  # truncated, not an image, an unsupported variant
        raise FormatError(path, f"cannot decode the image ({type(e).__name__}: {' '.join(str(e).split())})") from None
    if size is not None and rgb.size != (size[1], size[0]):
        rgb = rgb.resize((size[1], size[0]), Image.Resampling.BILINEAR)
    return np.asarray(rgb, dtype=np.uint8).transpose(2, 0, 1)


def _folder_files(path: Path) -> tuple[list[tuple[Path, int]], list[str]]:
    """``(file, class id or -1)`` of every image below ``path`` (hidden files and folders skipped), and the
    class names (sorted subfolder names that hold images)."""
    files = []
    for p in sorted(path.rglob("*")):
        rel = p.relative_to(path).parts
        if p.suffix.lower() in IMAGE_SUFFIXES and not any(r.startswith(".") for r in rel) and p.is_file():
            files.append((p, rel[0] if len(rel) > 1 else None))
    classes = sorted({c for _, c in files if c is not None})
    ids = {c: i for i, c in enumerate(classes)}
    return [(p, -1 if c is None else ids[c]) for p, c in files], classes


def size_error(path: Path, got: Shape, want: Shape, resize: bool) -> FormatError:
    if got[0] != want[0]:
        return FormatError(path, f"images have {got[0]} channel(s), the dataset's have {want[0]}")
    hint = "" if resize else ": pass --size H W to resize every image"
    return FormatError(path, f"images are {got[1]}×{got[2]} (H×W), the dataset's are {want[1]}×{want[2]}{hint}")


def read_folder(
    path: Path, expected: Shape | None, size: tuple[int, int] | None
) -> tuple[np.ndarray, np.ndarray, list[str], list[tuple[str, str]]]:
    """A class folder's images ``[n, 3, H, W]``, labels, classes, and ``(file, message)`` per bad file."""
    files, classes = _folder_files(path)
    if not files:
        suffixes = ", ".join(sorted(s.lstrip(".") for s in IMAGE_SUFFIXES))
        raise FormatError(path, f"no images ({suffixes}) in the folder or its subfolders")
    pictures, labels, failed = [], [], []
    for f, label in files:
        try:
            pic = read_picture(f, size)
            shape = tuple(pic.shape)
            if expected is None:
                expected = shape
            elif shape != expected:
                raise size_error(f, shape, expected, size is not None)
        except FormatError as e:
            failed.append((str(f), str(e)))
            continue
        pictures.append(pic)
        labels.append(label)
    if not pictures:
        raise FormatError(path, f"none of its {len(files)} images could be read (e.g. {failed[0][1]})")
    return np.stack(pictures), np.array(labels, dtype=np.int64), classes, failed


def source_format(path: Path) -> str:
    if not path.exists():
        raise MissingFileError(path, "file or folder")
    if path.is_dir():
        return "folder"
    suffix = path.suffix.lower()
    if suffix in (".npz", ".npy"):
        return suffix[1:]
    if suffix in IMAGE_SUFFIXES:
        return "image"
    known = ", ".join(sorted(s.lstrip(".") for s in IMAGE_SUFFIXES))
    raise FormatError(path, f"not an image source (a folder of images, an image file ({known}), .npz or .npy)")
