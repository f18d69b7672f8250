"""A labelled synthetic object set: seeded point samples of primitive shapes.

Stands in for ShapeNet/ModelNet in tests and demos (no such data ships with geomask).  Every object is
``N`` points sampled uniformly in parameter space from the surface of one primitive, then scaled
anisotropically, rotated by a uniformly random rotation, perturbed by Gaussian noise and normalised into
the unit ball (centroid at the origin, farthest point at radius 1).  All draws come from one
``numpy.random.default_rng(seed)``: the whole set is a pure function of its arguments.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

__all__ = ["SHAPES", "synthetic_objects"]

SHAPES = ("sphere", "cube", "cylinder", "cone", "torus", "plane")


def _surface(kind: int, u: np.ndarray, v: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Points of shape ``SHAPES[kind]`` from uniform parameters ``u, v, w`` in [0, 1), ``[M, N, 3]``."""
    tau = 2.0 * np.pi
    name = SHAPES[kind]
    if name == "sphere":
        z = 2.0 * u - 1.0
        r = np.sqrt(1.0 - z * z)
        return np.stack([r * np.cos(tau * v), r * np.sin(tau * v), z], -1)
    if name == "cube":
        face = np.minimum((w * 6).astype(np.int64), 5)
        a, b = 2.0 * u - 1.0, 2.0 * v - 1.0
        sign = np.where(face % 2 == 0, 1.0, -1.0)
        axis = face // 2
        out = np.empty((*u.shape, 3))
        out[..., 0] = np.where(axis == 0, sign, a)
        out[..., 1] = np.where(axis == 1, sign, np.where(axis == 0, a, b))
        out[..., 2] = np.where(axis == 2, sign, b)
        return out
    if name == "cylinder":
        return np.stack([np.cos(tau * v), np.sin(tau * v), 2.0 * u - 1.0], -1)
    if name == "cone":
        r = np.sqrt(u)  # uniform over the lateral surface
        return np.stack([r * np.cos(tau * v), r * np.sin(tau * v), 1.0 - 2.0 * r], -1)
    if name == "torus":
        big, small = 1.0, 0.35
        ring = big + small * np.cos(tau * u)
        return np.stack([ring * np.cos(tau * v), ring * np.sin(tau * v), small * np.sin(tau * u)], -1)
    return np.stack([2.0 * u - 1.0, 2.0 * v - 1.0, np.zeros_like(u)], -1)  # plane


def _rotations(rng: np.random.Generator, m: int) -> np.ndarray:
    """``[M, 3, 3]`` uniformly random rotations (QR of Gaussian matrices, sign-fixed)."""
    q, r = np.linalg.qr(rng.standard_normal((m, 3, 3)))
    q = q * np.sign(np.diagonal(r, axis1=1, axis2=2))[:, None, :]
    det = np.linalg.det(q)
    q[:, :, 0] *= det[:, None]
    return q


def synthetic_objects(
    num_objects: int,
    num_points: int = 1024,
    seed: int = 0,
    classes: tuple[str, ...] = SHAPES,
    noise: float = 0.01,
    scale_range: tuple[float, float] = (0.6, 1.4),
) -> tuple[Tensor, Tensor]:
    """Sample a labelled set of primitive shapes, balanced over ``classes`` (round robin).

    Args:
        num_objects: M.
        num_points: N points per object.
        seed: the set's seed.
        classes: names from :data:`SHAPES`; label ``c`` is ``classes[c]``.
        noise: standard deviation of the Gaussian jitter (before normalisation).
        scale_range: per-axis scale factors are uniform in this range.

    Returns:
        ``(pos [M, N, 3] float32, labels [M] int64)``.
    """
    unknown = [c for c in classes if c not in SHAPES]
    if unknown or not classes:
        raise ValueError(f"unknown shape(s) {unknown}; valid: {', '.join(SHAPES)}")
    if num_objects < 0 or num_points < 1:
        raise ValueError(f"need num_objects >= 0 and num_points >= 1, got {num_objects}, {num_points}")
    rng = np.random.default_rng(seed)
    labels = np.arange(num_objects) % len(classes)
    u, v, w = rng.random((3, num_objects, num_points))
    pts = np.zeros((num_objects, num_points, 3))
    for c, name in enumerate(classes):  # one vectorised draw per class
        sel = labels == c
        pts[sel] = _surface(SHAPES.index(name), u[sel], v[sel], w[sel])
    pts = pts * rng.uniform(*scale_range, size=(num_objects, 1, 3))
    pts = np.einsum("mij,mnj->mni", _rotations(rng, num_objects), pts)
    pts = pts + noise * rng.standard_normal(pts.shape)
    pts = pts - pts.mean(1, keepdims=True)
    pts = pts / np.linalg.norm(pts, axis=-1).max(1)[:, None, None].clip(min=1e-12)
    return torch.from_numpy(pts.astype(np.float32)), torch.from_numpy(labels.astype(np.int64))
