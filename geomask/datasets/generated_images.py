"""Generated shape images: the default data of the image methods, built once into a cache.

These are **generated pictures of drawn shapes, not real images**: they let the image methods' CPU configs train
from a fresh clone with nothing prepared.  For real data, prepare images with ``geomask prep images`` (e.g. the
CIFAR-10 subset in ``../shared/data/images/cifar10``) and set ``data.kind: images`` and ``data.roots: [that folder]``.

Each image is ``size × size`` RGB showing one shape of one of ten classes (:data:`CLASSES`) in a random colour on a
random background colour (a mean absolute channel difference of at least 0.35, so the shape shows), at a random
position, size and rotation, with antialiased edges (coverage ``clip(0.5 - d, 0, 1)`` of a signed distance ``d``
in pixels) and Gaussian pixel noise of a random strength up to 0.06:

=====================  ==========================================================================================
disc, ring, ellipse    a filled circle; an annulus; an ellipse of axis ratio 0.3 to 0.55
square, triangle       a rotated square; a rotated equilateral triangle
cross                  a rotated plus sign (two bars a third as wide as long)
hstripes, vstripes     horizontal / vertical stripes of period 4 to 8 px inside a random box
checker                a checkerboard of 3 to 6 px cells inside a random box
gradient               no shape: a linear ramp from the background colour to the shape colour in a random direction
=====================  ==========================================================================================

Image ``i`` has class ``i mod 10`` (every class equally often) and is a pure function of ``(seed, i, size)``: images
are drawn in blocks of :data:`BLOCK` with ``numpy.random.default_rng([seed, block])``, every step a batched array
operation over a block (Python loops run over the ten classes, never over images or pixels), so a larger set
starts with the same images.

:func:`build_shapes` writes the images as an ``.npz`` and prepares it with
:func:`~geomask.datasets.prep_images.prep_images`, the code of ``geomask prep images``, into ``<name>.partial``
beside the cache folder, then renames it: ``<cache>/shapes-<N>x<size>-seed<s>-<hash>`` exists only when complete,
and is read exactly like any ``prep images`` folder (data kind ``images``).
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from geomask.errors import FormatError, UsageError

__all__ = ["BLOCK", "CLASSES", "GENERATOR_VERSION", "ShapesSpec", "build_shapes", "generate_shapes", "shapes_dir"]

GENERATOR_VERSION = 1
"""Bumped whenever :func:`generate_shapes`' output changes: the cache folder's name changes with it."""
CLASSES = ("disc", "ring", "ellipse", "square", "triangle", "cross", "hstripes", "vstripes", "checker", "gradient")
BLOCK = 256
"""Images drawn per random stream: image ``i`` comes from block ``i // BLOCK``."""


@dataclass(frozen=True)
class ShapesSpec:
    """Which generated shapes: ``images`` pictures of ``size × size`` pixels, of seed ``seed``, built into ``cache``
    (empty: ``$GEOMASK_CACHE``, else ``<repo>/out/cache``).  The ``data.shapes`` config section."""

    images: int = 2000
    size: int = 32
    seed: int = 0
    cache: str = ""


def _rotate(x: np.ndarray, y: np.ndarray, angle: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    c, s = np.cos(angle)[:, None, None], np.sin(angle)[:, None, None]
    return c * x + s * y, -s * x + c * y


def _box_sdf(u: np.ndarray, v: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Signed distance to a centred ``2a × 2b`` rectangle (exact outside and inside)."""
    qx, qy = np.abs(u) - a, np.abs(v) - b
    outside = np.hypot(np.maximum(qx, 0), np.maximum(qy, 0))
    return outside + np.minimum(np.maximum(qx, qy), 0)


def _coverage(kind: int, rng: np.random.Generator, n: int, size: int) -> np.ndarray:
    """``[n, size, size]`` shape coverage in ``[0, 1]`` (or a ramp for ``gradient``) of class ``kind``."""
    p = np.arange(size, dtype=np.float64) + 0.5
    y, x = p[None, :, None], p[None, None, :]
    r = rng.uniform(0.18, 0.4, n)[:, None, None] * size  # the shape's radius
    margin = r * 0.8
    cx = rng.uniform(0, 1, n)[:, None, None] * (size - 2 * margin) + margin
    cy = rng.uniform(0, 1, n)[:, None, None] * (size - 2 * margin) + margin
    angle = rng.uniform(0, np.pi, n)
    u, v = _rotate(x - cx, y - cy, angle)
    name = CLASSES[kind]
    if name == "disc":
        d = np.hypot(u, v) - r
    elif name == "ring":
        width = rng.uniform(0.18, 0.3, n)[:, None, None] * r
        d = np.abs(np.hypot(u, v) - (r - width)) - width
    elif name == "ellipse":
        axes = rng.uniform(0.3, 0.55, n)[:, None, None]
        d = (np.hypot(u / r, v / (r * axes)) - 1) * r * axes
    elif name == "square":
        d = _box_sdf(u, v, 0.8 * r, 0.8 * r)
    elif name == "triangle":
        normals = angle[:, None] + np.pi / 2 + np.arange(3) * 2 * np.pi / 3  # [n, 3] edge normals
        proj = (
            np.cos(normals)[:, :, None, None] * (x - cx)[:, None]
            + np.sin(normals)[:, :, None, None] * (y - cy)[:, None]
        )
        d = proj.max(1) - 0.5 * r
    elif name == "cross":
        d = np.minimum(_box_sdf(u, v, r, r / 3), _box_sdf(u, v, r / 3, r))
    elif name in ("hstripes", "vstripes", "checker"):
        half_w = rng.uniform(0.3, 0.5, n)[:, None, None] * size
        half_h = rng.uniform(0.3, 0.5, n)[:, None, None] * size
        bx = rng.uniform(0, 1, n)[:, None, None] * (size - 2 * half_w) + half_w
        by = rng.uniform(0, 1, n)[:, None, None] * (size - 2 * half_h) + half_h
        inside = np.clip(0.5 - _box_sdf(x - bx, y - by, half_w, half_h), 0, 1)
        period = rng.uniform(4, 8, n)[:, None, None]
        phase = rng.uniform(0, 1, n)[:, None, None]
        if name == "hstripes":
            wave = np.sin(2 * np.pi * (y / period + phase))
        elif name == "vstripes":
            wave = np.sin(2 * np.pi * (x / period + phase))
        else:
            cell = rng.uniform(3, 6, n)[:, None, None]
            wave = np.sin(np.pi * (x - bx) / cell + 1e-3) * np.sin(np.pi * (y - by) / cell + 1e-3)
        return inside * np.clip(0.5 + 2.0 * wave, 0, 1)
    else:  # gradient: a ramp across the image in a random direction
        t = np.cos(angle)[:, None, None] * (x - size / 2) + np.sin(angle)[:, None, None] * (y - size / 2)
        return np.clip(t / size + 0.5, 0, 1) * np.ones_like(cx)
    return np.clip(0.5 - d, 0, 1)


def _block(seed: int, block: int, n: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Images ``block · BLOCK .. + n`` as ``[n, size, size, 3]`` uint8 and their labels."""
    rng = np.random.default_rng([seed, block])
    labels = (block * BLOCK + np.arange(n)) % len(CLASSES)
    background = rng.uniform(0, 1, (n, 3))
    colour = rng.uniform(0, 1, (n, 3))
    close = np.abs(colour - background).mean(1) < 0.35
    colour[close] = np.where(background[close] > 0.5, background[close] - 0.6, background[close] + 0.6).clip(0, 1)
    noise = rng.uniform(0, 0.06, n)[:, None, None, None] * rng.standard_normal((n, size, size, 3))
    cover = np.zeros((n, size, size))
    for kind in range(len(CLASSES)):  # each class's drawing, batched over its images
        pick = np.flatnonzero(labels == kind)
        sub = np.random.default_rng([seed, block, kind])
        cover[pick] = _coverage(kind, sub, len(pick), size)
    alpha = cover[..., None]
    img = background[:, None, None] * (1 - alpha) + colour[:, None, None] * alpha + noise
    return np.rint(img.clip(0, 1) * 255).astype(np.uint8), labels.astype(np.int64)


def generate_shapes(images: int, size: int = 32, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``images`` generated pictures (module docstring) of seed ``seed``.

    Returns:
        ``[N, size, size, 3]`` uint8 pixels and ``[N]`` int64 labels (class ``i mod 10``, names in :data:`CLASSES`).
    """
    _check(ShapesSpec(images, size, seed))
    parts = [_block(seed, b, min(BLOCK, images - b * BLOCK), size) for b in range(-(-images // BLOCK))]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def _check(spec: Any) -> None:
    for key, low in (("images", 1), ("size", 8)):
        value = getattr(spec, key)
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise UsageError(f"generated shapes: {key} must be a whole number >= {low}, got {value!r}")
    if not isinstance(spec.seed, int) or spec.seed < 0:
        raise UsageError(f"generated shapes: seed must be a whole number >= 0, got {spec.seed!r}")


def _options(spec: Any) -> dict[str, Any]:
    return {"generator": GENERATOR_VERSION, "images": spec.images, "size": spec.size, "seed": spec.seed}


def shapes_dir(spec: Any = ShapesSpec()) -> Path:
    """The dataset folder of ``spec`` (a :class:`ShapesSpec`, or any object with its attributes):
    ``<cache>/shapes-<images>x<size>-seed<seed>-<hash of the options and GENERATOR_VERSION>``."""
    from geomask.datasets.cache import cache_root

    _check(spec)
    digest = hashlib.sha256(json.dumps(_options(spec), sort_keys=True).encode()).hexdigest()[:12]
    return cache_root(spec.cache) / f"shapes-{spec.images}x{spec.size}-seed{spec.seed}-{digest}"


def build_shapes(spec: Any = ShapesSpec(), *, progress: bool = True) -> Path:
    """The dataset folder of generated shapes ``spec``, made on first use (one line on stderr) and reused after.

    The images are written as one ``.npz`` and prepared by :func:`~geomask.datasets.prep_images.prep_images` into
    ``<folder>.partial``, renamed to the folder once complete, under a file lock (one builder among processes).

    Args:
        spec: a :class:`ShapesSpec` (or an object with its attributes: ``data.shapes``).
        progress: print the one line saying the images are being generated.

    Returns:
        the folder, an ``images`` dataset (``manifest.json`` + shards) with a ``generated.json`` describing it.

    Raises:
        UsageError: a bad ``spec``.
        FormatError: ``prep_images`` could not prepare the generated file (a bug: the build is left unfinished).
    """
    from geomask.datasets.prep_images import prep_images
    from geomask.io.atomic import atomic_write_bytes, atomic_write_text, build_once

    def write(partial: Path) -> Path:
        staging = partial / "generated"
        staging.mkdir(parents=True, exist_ok=True)
        images, labels = generate_shapes(spec.images, spec.size, spec.seed)
        buf = io.BytesIO()
        np.savez(buf, images=images, labels=labels, classes=np.array(CLASSES))
        source = staging / "shapes.npz"
        atomic_write_bytes(source, buf.getvalue())
        _, failures = prep_images([source], partial, progress=False)
        if failures:
            raise FormatError(failures[0][0], f"could not prepare the generated shapes: {failures[0][1]}")
        about = {
            "what": "generated images of drawn shapes, not real images (geomask.datasets.generated_images)",
            **_options(spec),
            "classes": list(CLASSES),
        }
        atomic_write_text(partial / "generated.json", json.dumps(about, indent=1, sort_keys=True) + "\n")
        shutil.rmtree(staging)
        return partial

    out = shapes_dir(spec)
    message = f"generating {spec.images} images of drawn shapes (GENERATED, not real images) into {out} (first use) ..."
    return build_once(out, message if progress else None, write, resume=True)
