"""Scene augmentations for two-view methods (CPCM, MSM), batched over scenes, and view correspondences.

Every scene of a batch (``batch [N]`` gives each point's scene) draws its own rotation about ``z``, scale,
flips, colour change and elastic field from one ``torch.Generator``; points are transformed in one pass.
Augmentations keep the point order, so point ``i`` of view A and point ``i`` of view B are the same
physical point: after voxelizing both views, :func:`voxel_pairs` turns the two ``inverse`` maps into voxel
correspondences.  Order of operations: elastic (in the scene's frame) → rotate about the scene's centroid →
scale → flip → jitter.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from geomask.masking.base import resolve_generator
from geomask.points.voxelize import voxelize
from geomask.sparse import SparseTensor

__all__ = [
    "GEOMETRY",
    "GEOMETRY_WIDTH",
    "SceneAugment",
    "ScenePoints",
    "crop_scenes",
    "geometry_features",
    "to_sparse",
    "voxel_pairs",
]


@dataclass
class ScenePoints:
    """A batch of point clouds, the input of the scene methods.

    Attributes:
        points: ``[N, 3]`` float32 coordinates (metres).
        feats: ``[N, C]`` float32 input features (colours in ``[0, 1]`` first when there are colours).
        batch: ``[N]`` int64 scene index of each point, ``0 .. B-1``.
        labels: ``[N]`` int64 class per point, ``ignore_index`` (-1) where unknown or unlabelled; or ``None``.
    """

    points: Tensor
    feats: Tensor
    batch: Tensor
    labels: Tensor | None = None

    @property
    def num_scenes(self) -> int:
        return int(self.batch.max()) + 1 if len(self.batch) else 0

    def select(self, index: Tensor) -> ScenePoints:
        """The points ``index`` (scenes renumbered ``0 .. B'-1`` in order)."""
        b = self.batch[index]
        _, b = torch.unique(b, return_inverse=True)
        labels = None if self.labels is None else self.labels[index]
        return ScenePoints(self.points[index], self.feats[index], b, labels)


@dataclass
class SceneAugment:
    """Random scene transforms (Pointcept-style defaults for indoor scans).

    Args:
        rotate: max rotation angle about ``z`` in radians (``pi``: any angle; 0: none).
        scale: ``(lo, hi)`` uniform isotropic scale.
        flip: probability of mirroring ``x`` and, independently, ``y``.
        jitter: std of Gaussian per-point noise in metres (clipped at ``5 * jitter``).
        color_jitter: std of a per-scene brightness shift and per-point noise on the colour channels.
        color_channels: the first this many feature channels are colours in ``[0, 1]``.
        elastic: ``(granularity, magnitude)`` in metres for a smooth random displacement field, or ``None``.
    """

    rotate: float = math.pi
    scale: tuple[float, float] = (0.9, 1.1)
    flip: float = 0.5
    jitter: float = 0.005
    color_jitter: float = 0.05
    color_channels: int = 3
    elastic: tuple[float, float] | None = None

    def __call__(
        self,
        points: Tensor,
        feats: Tensor,
        batch: Tensor,
        generator: torch.Generator | None = None,
        num_scenes: int | None = None,
    ) -> tuple[Tensor, Tensor]:
        """Transform a batch of scenes.

        Shapes:
            points ``[N, 3]``, feats ``[N, C]``, batch ``[N]`` → points ``[N, 3]``, feats ``[N, C]``.
        """
        gen = resolve_generator(generator)
        b = batch.long()
        nb = num_scenes if num_scenes is not None else (int(b.max()) + 1 if len(b) else 0)
        dev, dt = points.device, points.dtype

        def rand(*shape: int) -> Tensor:
            return torch.rand(*shape, generator=gen, device=gen.device).to(dev, dt)

        pts = points
        if self.elastic is not None:
            pts = _elastic(pts, b, nb, *self.elastic, gen)
        counts = torch.bincount(b, minlength=nb).clamp(min=1).to(dt)
        centre = torch.zeros(nb, 3, device=dev, dtype=dt).index_add_(0, b, pts) / counts[:, None]
        angle = (rand(nb) * 2 - 1) * self.rotate
        cos, sin = torch.cos(angle), torch.sin(angle)
        rel = pts - centre[b]
        x = cos[b] * rel[:, 0] - sin[b] * rel[:, 1]
        y = sin[b] * rel[:, 0] + cos[b] * rel[:, 1]
        lo, hi = self.scale
        s = lo + (hi - lo) * rand(nb)
        sign = torch.where(rand(nb, 2) < self.flip, -1.0, 1.0).to(dt)
        out = torch.stack([x * sign[b, 0], y * sign[b, 1], rel[:, 2]], dim=1) * s[b, None] + centre[b]
        if self.jitter > 0:
            noise = torch.randn(len(pts), 3, generator=gen, device=gen.device).to(dev, dt) * self.jitter
            out = out + noise.clamp(-5 * self.jitter, 5 * self.jitter)
        f = feats
        k = min(self.color_channels, feats.size(1))
        if self.color_jitter > 0 and k > 0:
            shift = torch.randn(nb, 1, generator=gen, device=gen.device).to(dev, feats.dtype) * self.color_jitter
            noise = torch.randn(len(pts), k, generator=gen, device=gen.device).to(dev, feats.dtype)
            col = (feats[:, :k] + shift[b] + noise * self.color_jitter * 0.5).clamp(0.0, 1.0)
            f = torch.cat([col, feats[:, k:]], dim=1)
        return out, f


def _elastic(points: Tensor, b: Tensor, nb: int, granularity: float, magnitude: float, gen: torch.Generator) -> Tensor:
    """Add a smooth random displacement: noise on a coarse grid (spacing ``granularity``), trilinearly read.

    All scenes share one ``grid_sample`` call: their noise grids are stacked along the first axis, and a
    scene's points address only its own slab (``align_corners=True`` keeps them off the seams).
    """
    lo = torch.full((nb, 3), float("inf"), device=points.device, dtype=points.dtype)
    lo = lo.scatter_reduce(0, b[:, None].expand(-1, 3), points, "amin")
    hi = torch.full_like(lo, float("-inf")).scatter_reduce(0, b[:, None].expand(-1, 3), points, "amax")
    g = [int(v) for v in (torch.ceil((hi - lo).max(0).values / granularity) + 2).tolist()]
    noise = torch.randn(1, 3, nb * g[0], g[1], g[2], generator=gen, device=gen.device).to(points)
    local = (points - lo[b]) / granularity  # in [0, g - 2]
    # grid_sample's last axis is W (our z), then H (y), then D (x)
    idx = torch.stack([local[:, 2], local[:, 1], local[:, 0] + b.to(points.dtype) * g[0]], dim=1)
    size = torch.tensor([g[2], g[1], nb * g[0]], device=points.device, dtype=points.dtype)
    norm = idx / (size - 1).clamp(min=1) * 2 - 1
    disp = F.grid_sample(noise, norm.view(1, 1, 1, -1, 3), mode="bilinear", align_corners=True)
    return points + disp.view(3, -1).t() * magnitude


def crop_scenes(batch: Tensor, points: Tensor, max_points: int, generator: torch.Generator | None = None) -> Tensor:
    """Indices of at most ``max_points`` points per scene: those nearest a random point of the scene.

    Returns:
        ``[K]`` int64 indices into the points, sorted (scenes with fewer points are kept whole).
    """
    gen = resolve_generator(generator)
    b = batch.long()
    n = len(b)
    if n == 0:
        return torch.zeros(0, dtype=torch.long, device=b.device)
    nb = int(b.max()) + 1
    counts = torch.bincount(b, minlength=nb)
    start = torch.cumsum(counts, 0) - counts
    order = torch.argsort(b, stable=True)
    u = torch.rand(nb, generator=gen, device=gen.device).to(b.device)
    pick = order[start + (u * counts).long().clamp(max=(counts - 1).clamp(min=0))]
    dist = (points - points[pick][b]).pow(2).sum(1)
    scale = dist.max().clamp(min=1e-12) * 2
    key = b.to(torch.float64) * 1.0 + (dist.to(torch.float64) / float(scale))  # scene first, then distance
    srt = torch.argsort(key)
    rank = torch.empty_like(srt)
    rank[srt] = torch.arange(n, device=b.device) - start[b[srt]]
    return torch.nonzero(rank < max_points).squeeze(1)


def voxel_pairs(inverse_a: Tensor, inverse_b: Tensor) -> tuple[Tensor, Tensor]:
    """Distinct voxel pairs ``(row in view A, row in view B)`` holding a common point.

    Shapes:
        inverse_a, inverse_b ``[N]`` (each point's voxel in the two views) → two ``[P]`` int64 tensors.
    """
    if inverse_a.shape != inverse_b.shape:
        raise ValueError("both views must voxelize the same points")
    if len(inverse_a) == 0:
        return inverse_a.long(), inverse_b.long()
    nb = int(inverse_b.max()) + 1
    key = torch.unique(inverse_a.long() * nb + inverse_b.long())
    return torch.div(key, nb, rounding_mode="floor"), key % nb


GEOMETRY = ("none", "height", "xyz")
GEOMETRY_WIDTH = {"none": 0, "height": 1, "xyz": 3}


def geometry_features(points: Tensor, batch: Tensor, kind: str = "none") -> Tensor:
    """Coordinate-derived input channels: none ``[N, 0]``; ``"height"``: ``z - min_z`` of the scene ``[N, 1]``;
    ``"xyz"``: coordinates minus the scene's centroid ``[N, 3]`` (Pointcept feeds ``coord`` to outdoor nets)."""
    if kind not in GEOMETRY:
        raise ValueError(f"geometry must be one of {GEOMETRY}, got {kind!r}")
    b = batch.long()
    nb = int(b.max()) + 1 if len(b) else 0
    if kind == "none":
        return points.new_zeros(len(points), 0)
    if kind == "height":
        lo = torch.full((nb,), float("inf"), dtype=points.dtype, device=points.device)
        lo = lo.scatter_reduce(0, b, points[:, 2], "amin")
        return (points[:, 2] - lo[b])[:, None]
    counts = torch.bincount(b, minlength=nb).clamp(min=1).to(points.dtype)
    centre = torch.zeros(nb, 3, dtype=points.dtype, device=points.device).index_add_(0, b, points) / counts[:, None]
    return points - centre[b]


def to_sparse(
    points: Tensor, feats: Tensor, batch: Tensor, voxel_size: float, geometry: str = "none"
) -> tuple[SparseTensor, Tensor]:
    """Voxelize a batch of scenes (mean features per voxel) into a stride-1 :class:`SparseTensor`.

    ``geometry`` appends :func:`geometry_features` (of these, already augmented, points) to the features.

    Returns:
        ``(tensor, inverse)``: coords ``[V, 4]``, feats ``[V, C (+1 or 3)]``; ``inverse [N]`` each point's voxel.
    """
    if geometry != "none":
        feats = torch.cat([feats, geometry_features(points, batch, geometry).to(feats.dtype)], dim=1)
    vox = voxelize(points, voxel_size, batch=batch, features=feats)
    return SparseTensor(vox.coords, vox.features.to(torch.float32)), vox.inverse
