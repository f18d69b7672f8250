"""Generated indoor scenes: the default data of the scene methods (MSM, CPCM), built once into a cache.

These are **generated rooms, not real scans**: they let ``configs/msm_cpu.yaml`` and ``configs/cpcm_cpu.yaml`` train
from a fresh clone (no scans ship with geomask).  For real data, prepare scans with ``geomask prep scans`` and set
``data.kind: scans`` and ``data.roots: [that folder]``.

A scene is a room of one type (bedroom, office, living room, kitchen, bathroom): floor, four walls, a ceiling in
half of the rooms, a door, windows (some with curtains), pictures, and that type's furniture, each piece a few
boxes and vertical cylinders placed against a wall or free on the floor without overlaps.  Points are drawn on the
visible faces in proportion to their area; those hidden inside another part (the floor under a cabinet, the wall
behind a door) are dropped; ``N`` are kept with a density that falls off with the distance to a sensor position
(weighted sampling without replacement, Efraimidis-Spirakis keys) and jittered with Gaussian sensor noise.
Colours are a per-class palette, varied per object, shaded by the normal, with a plank pattern on floors.
Labels are NYU40 ids, as ScanNet stores them (:data:`CLASSES`); :func:`build_scenes` maps them to the 20 ScanNet
benchmark classes (``nyu40_to_scannet20``: the ceiling becomes -1, ignored) exactly as for ScanNet scans.

Scene ``i`` of seed ``s`` is a pure function of ``(s, i, N)`` (``numpy.random.default_rng([s, i])``); every step
is a batched array operation over points (Python loops run over the few dozen parts, never over points).

:func:`build_scenes` writes each scene as a ``.npy`` file and prepares them with :func:`~geomask.datasets.scans.
prep_scans`, the code of ``geomask prep scans``, into ``<name>.partial`` beside the cache folder, then renames it:
the folder ``<cache>/scenes-<S>x<N>-seed<s>-<hash>`` exists only when complete (a killed build leaves the
``.partial`` folder, which the next build resumes).  Its ``generated.json`` says what made it.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from geomask.errors import FormatError, UsageError

__all__ = [
    "CLASSES",
    "GENERATOR_VERSION",
    "LABEL_MAP",
    "ROOM_TYPES",
    "SceneSpec",
    "build_scenes",
    "generate_scene",
    "scenes_dir",
]

GENERATOR_VERSION = 1
"""Bumped whenever :func:`generate_scene`'s output changes: the cache folder's name changes with it."""

LABEL_MAP = "nyu40_to_scannet20"
VOXEL_SIZE = 0.05
"""The voxel size of the prepared dataset (ScanNet's)."""

CLASSES = {
    "wall": 1, "floor": 2, "cabinet": 3, "bed": 4, "chair": 5, "sofa": 6, "table": 7, "door": 8, "window": 9,
    "bookshelf": 10, "picture": 11, "counter": 12, "desk": 14, "curtain": 16, "ceiling": 22, "refrigerator": 24,
    "toilet": 33, "sink": 34, "bathtub": 36, "otherfurniture": 39,
}  # fmt: skip
"""The NYU40 ids the scenes use, by name."""

_PALETTE = {  # NYU40 id -> RGB in [0, 1]
    1: (0.86, 0.84, 0.78), 2: (0.56, 0.41, 0.28), 3: (0.62, 0.47, 0.32), 4: (0.82, 0.82, 0.86),
    5: (0.30, 0.30, 0.36), 6: (0.36, 0.46, 0.62), 7: (0.52, 0.36, 0.22), 8: (0.72, 0.60, 0.45),
    9: (0.74, 0.85, 0.95), 10: (0.46, 0.31, 0.20), 11: (0.50, 0.50, 0.50), 12: (0.82, 0.81, 0.76),
    14: (0.58, 0.47, 0.36), 16: (0.70, 0.32, 0.30), 22: (0.95, 0.95, 0.94), 24: (0.90, 0.91, 0.93),
    33: (0.96, 0.96, 0.97), 34: (0.84, 0.87, 0.90), 36: (0.95, 0.95, 0.96), 39: (0.42, 0.56, 0.36),
}  # fmt: skip

# faces of a box, in the order -x, +x, -y, +y, -z, +z of its own frame (+y: its front, -y: its back at a wall);
# a cylinder uses 0 (side), 4 (bottom cap), 5 (top cap)
_ALL, _OPEN_BOTTOM, _FRONTS = (1, 1, 1, 1, 1, 1), (1, 1, 1, 1, 0, 1), (1, 1, 0, 1, 0, 1)
_SIDES, _FRONT, _CYL = (1, 1, 1, 1, 0, 0), (0, 0, 0, 1, 0, 0), (1, 0, 0, 0, 0, 1)
_SINK = 0.01  # parts that stand on the floor or at a wall reach this far into it, hiding the surface they touch


@dataclass(frozen=True)
class SceneSpec:
    """Which generated scenes: ``scenes`` rooms of ``points`` points each, of seed ``seed``, built into ``cache``
    (empty: ``$GEOMASK_CACHE``, else ``<repo>/out/cache``)."""

    scenes: int = 8
    points: int = 20000
    seed: int = 0
    cache: str = ""


# ---------------------------------------------------------------------------------------------------
# furniture: lists of objects, each a list of parts (label, kind 0 box / 1 cylinder, centre, half sizes, faces) in
# the group's frame (origin on the floor at the footprint's centre, back at -y)


def _box(label: int, x: tuple[float, float], y: tuple[float, float], z: tuple[float, float], faces=_OPEN_BOTTOM):
    z0 = -_SINK if z[0] <= 0 else z[0]
    return (label, 0, ((x[0] + x[1]) / 2, (y[0] + y[1]) / 2, (z0 + z[1]) / 2), _half(x, y, (z0, z[1])), faces)


def _half(*spans: tuple[float, float]) -> tuple[float, ...]:
    return tuple((b - a) / 2 for a, b in spans)


def _legs(label: int, w: float, d: float, h: float, t: float = 0.045) -> list:
    """Four legs of width ``t`` and height ``h`` under the corners of a ``w`` x ``d`` top."""
    xs, ys = (w / 2 - t) * np.array([-1, 1]), (d / 2 - t) * np.array([-1, 1])
    return [_box(label, (x - t / 2, x + t / 2), (y - t / 2, y + t / 2), (0, h), _SIDES) for x in xs for y in ys]


def _chair(dy: float = 0.0, facing: int = 1) -> list:
    """A chair whose seat is centred at ``y = dy``, facing ``+y`` (``facing`` 1) or ``-y`` (-1)."""
    edge = dy - facing * 0.22
    back = (min(edge, edge + facing * 0.04), max(edge, edge + facing * 0.04))
    parts = [
        _box(5, (-0.22, 0.22), (dy - 0.22, dy + 0.22), (0.42, 0.46), _ALL),
        _box(5, (-0.22, 0.22), back, (0.46, 0.9), _ALL),
    ]
    return parts + [(lab, k, (c[0], c[1] + dy, c[2]), h, f) for lab, k, c, h, f in _legs(5, 0.44, 0.44, 0.42)]


def _table_set(rng: np.random.Generator, label: int = 7) -> list:
    w, d = rng.uniform(0.9, 1.6), rng.uniform(0.7, 1.0)
    objects = [[_box(label, (-w / 2, w / 2), (-d / 2, d / 2), (0.71, 0.75), _ALL), *_legs(label, w, d, 0.71)]]
    for side in rng.permutation(2)[: rng.integers(1, 3)]:
        facing = 1 if side == 0 else -1
        objects.append(_chair(-facing * (d / 2 + 0.12), facing))
    return objects


def _desk_set(rng: np.random.Generator) -> list:
    w, d = rng.uniform(1.0, 1.6), rng.uniform(0.55, 0.8)
    desk = [_box(14, (-w / 2, w / 2), (-d / 2, d / 2), (0.71, 0.74), _ALL), *_legs(14, w, d, 0.71)]
    return [desk, _chair(d / 2 + 0.15, -1)]


def _bookshelf(rng: np.random.Generator) -> list:
    w, d, h = rng.uniform(0.8, 1.2), rng.uniform(0.28, 0.4), rng.uniform(1.5, 2.2)
    y, t = (-d / 2, d / 2), 0.02
    parts = [_box(10, (-w / 2, -w / 2 + t), y, (0, h)), _box(10, (w / 2 - t, w / 2), y, (0, h))]
    parts.append(_box(10, (-w / 2 + t, w / 2 - t), (-d / 2, -d / 2 + t), (0, h), _FRONT))
    boards = np.linspace(0.05, h - t, max(3, int(h / 0.38)))
    parts += [_box(10, (-w / 2 + t, w / 2 - t), (-d / 2 + t, d / 2), (z, z + t), _ALL) for z in boards]
    return [parts]


def _furniture(name: str, rng: np.random.Generator) -> list:
    """The objects of one piece (a set: a table and its chairs) in the group's frame."""
    u = rng.uniform
    if name == "table_set":
        return _table_set(rng)
    if name == "desk_set":
        return _desk_set(rng)
    if name == "bookshelf":
        return _bookshelf(rng)
    if name == "bed":
        w, n = u(1.4, 1.9), u(1.9, 2.1)
        y = (-n / 2, n / 2)
        return [
            [_box(4, (-w / 2, w / 2), y, (0, 0.55)), _box(4, (-w / 2, w / 2), (-n / 2, -n / 2 + 0.06), (0.55, 1.0))]
        ]
    if name == "sofa":
        w, d = u(1.6, 2.4), u(0.8, 0.95)
        y = (-d / 2, d / 2)
        seat = _box(6, (-w / 2, w / 2), y, (0, 0.42), _FRONTS)
        back = _box(6, (-w / 2, w / 2), (-d / 2, -d / 2 + 0.2), (0.42, 0.85), _FRONTS)
        return [[seat, back, *(_box(6, (s, s + 0.18), y, (0.42, 0.62), _FRONTS) for s in (-w / 2, w / 2 - 0.18))]]
    if name == "counter":
        w = u(1.2, 2.4)
        sink = u(-w / 2 + 0.3, w / 2 - 0.3)
        return [[_box(12, (-w / 2, w / 2), (-0.3, 0.3), (0, 0.9), _FRONTS)],
                [_box(34, (sink - 0.25, sink + 0.25), (-0.2, 0.2), (0.86, 0.93), _ALL)]]  # fmt: skip
    if name == "toilet":
        return [[_box(33, (-0.2, 0.2), (-0.3, -0.12), (0.4, 0.8), _FRONTS),
                 (33, 1, (0.0, 0.09, 0.2 - _SINK / 2), (0.19, 0.19, 0.2 + _SINK / 2), _CYL)]]  # fmt: skip
    if name == "other":
        r, h = u(0.15, 0.35), u(0.3, 1.0)
        return [[(39, 1, (0.0, 0.0, (h - _SINK) / 2), (r, r, (h + _SINK) / 2), _CYL)]]
    label, size = _BLOCKS[name]
    w, d, h = u(*np.array(size).T)
    return [[_box(label, (-w / 2, w / 2), (-d / 2, d / 2), (0, h), _FRONTS)]]


# one-box pieces: NYU40 id and (width, depth, height) ranges
_BLOCKS = {
    "cabinet": (3, ((0.5, 1.2), (0.4, 0.6), (0.7, 2.0))),
    "refrigerator": (24, ((0.65, 0.8), (0.65, 0.75), (1.7, 1.9))),
    "bathtub": (36, ((1.5, 1.7), (0.7, 0.8), (0.5, 0.6))),
}


# room type -> (width range, depth range, [(piece, min count, max count, against a wall)])
_ROOMS = {
    "bedroom": ((3.5, 5.5), (3.5, 5.0), [("bed", 1, 1, True), ("cabinet", 1, 2, True), ("desk_set", 0, 1, True),
                                         ("other", 0, 2, False)]),
    "office": ((4.0, 7.0), (3.5, 6.0), [("desk_set", 1, 3, True), ("bookshelf", 1, 2, True),
                                        ("cabinet", 0, 2, True), ("other", 0, 2, False)]),
    "living": ((4.5, 7.0), (4.0, 6.0), [("sofa", 1, 2, True), ("table_set", 1, 1, False),
                                        ("bookshelf", 0, 1, True), ("other", 1, 2, False)]),
    "kitchen": ((3.5, 6.0), (3.0, 5.0), [("counter", 1, 2, True), ("refrigerator", 1, 1, True),
                                         ("cabinet", 0, 2, True), ("table_set", 0, 1, False)]),
    "bathroom": ((2.4, 3.5), (2.0, 3.0), [("toilet", 1, 1, True), ("bathtub", 0, 1, True),
                                          ("counter", 1, 1, True), ("other", 0, 1, False)]),
}  # fmt: skip
ROOM_TYPES = tuple(_ROOMS)
"""Scene ``i`` is a room of type ``ROOM_TYPES[i % 5]``."""


def _extent(objects: list) -> np.ndarray:
    """``[x0, y0, x1, y1]``: the bounds of a group's parts in its frame."""
    lo = np.array([(c[0] - h[0], c[1] - h[1]) for obj in objects for _, _, c, h, _ in obj]).min(0)
    hi = np.array([(c[0] + h[0], c[1] + h[1]) for obj in objects for _, _, c, h, _ in obj]).max(0)
    return np.concatenate([lo, hi])


class _Room:
    """The parts of one room, placed without overlaps: walls ``k`` 0..3 run from ``origin[k]`` along ``tangent[k]``
    with ``inward[k]`` into the room (a group's frame on wall ``k`` is turned by ``yaw = k * 90°``)."""

    def __init__(self, rng: np.random.Generator, w: float, d: float) -> None:
        self.rng, self.w, self.d = rng, w, d
        self.origin = np.array([[0, 0], [w, 0], [w, d], [0, d]], dtype=np.float64)
        self.length = np.array([w, d, w, d])
        self.floor: list[np.ndarray] = []  # occupied [x0, y0, x1, y1]
        self.walls: list[list[tuple[float, float]]] = [[] for _ in range(4)]  # occupied spans on each wall
        self.objects: list[tuple[list, np.ndarray, float]] = []  # (parts, group origin xy, yaw)

    def add(self, objects: list, xy: np.ndarray, yaw: float) -> None:
        self.objects += [(obj, xy, yaw) for obj in objects]

    @staticmethod
    def _footprint(xy: np.ndarray, yaw: float, bounds: np.ndarray) -> np.ndarray:
        """``[x0, y0, x1, y1]`` on the floor of a group with ``bounds`` in its frame, at ``xy`` turned by ``yaw``."""
        corners = bounds[[[0, 1], [2, 1], [2, 3], [0, 3]]]
        c, s = math.cos(yaw), math.sin(yaw)
        world = corners @ np.array([[c, s], [-s, c]]) + xy
        return np.concatenate([world.min(0), world.max(0)])

    def _free(self, box: np.ndarray, gap: float = 0.05) -> bool:
        inside = box[0] >= -_SINK - 1e-9 and box[1] >= -_SINK - 1e-9 and box[2] <= self.w + _SINK + 1e-9
        inside = inside and box[3] <= self.d + _SINK + 1e-9
        return inside and all(
            box[0] >= o[2] + gap or box[2] <= o[0] - gap or box[1] >= o[3] + gap or box[3] <= o[1] - gap
            for o in self.floor
        )

    def on_wall(self, objects: list, *, floor: bool = True, clearance: float = 0.0, tries: int = 30) -> bool:
        """Put a group with its back against a random wall (``floor``: it occupies the floor; else it hangs on
        the wall: the wall's spans must be free)."""
        bounds = _extent(objects)
        x0, y0, x1, y1 = bounds
        for _ in range(tries):
            k = int(self.rng.integers(4))
            if self.length[k] < x1 - x0 + 0.1:
                continue
            s = self.rng.uniform(0.05 - x0, self.length[k] - x1 - 0.05)
            yaw = k * math.pi / 2
            tangent, inward = np.array([math.cos(yaw), math.sin(yaw)]), np.array([-math.sin(yaw), math.cos(yaw)])
            xy = self.origin[k] + s * tangent + (-y0 - _SINK) * inward
            span = (s + x0, s + x1)
            if floor:
                box = self._footprint(xy, yaw, bounds)
                if not self._free(box):
                    continue
                self.floor.append(box)
                if clearance:  # keep the floor in front of it clear (a door's swing)
                    self.floor.append(self._footprint(xy, yaw, np.array([x0, y1, x1, y1 + clearance])))
            elif any(span[0] < b + 0.1 and span[1] > a - 0.1 for a, b in self.walls[k]):
                continue
            self.walls[k].append(span)
            self.add(objects, xy, yaw)
            return True
        return False

    def on_floor(self, objects: list, tries: int = 30) -> bool:
        """Put a group anywhere on the floor, turned by a multiple of 90° and a little more."""
        bounds = _extent(objects)
        for _ in range(tries):
            yaw = int(self.rng.integers(4)) * math.pi / 2 + self.rng.uniform(-0.2, 0.2)
            xy = self.rng.uniform((0.3, 0.3), (self.w - 0.3, self.d - 0.3))
            box = self._footprint(xy, yaw, bounds)
            if self._free(box, gap=0.3):
                self.floor.append(box)
                self.add(objects, xy, yaw)
                return True
        return False


def _layout(rng: np.random.Generator, kind: str) -> tuple[list[tuple[list, np.ndarray, float]], tuple[float, float]]:
    """A random room of type ``kind``: ``(parts, origin xy, yaw)`` of each object, the shell (floor, walls, ceiling)
    first, and the room's width and depth."""
    (w0, w1), (d0, d1), plan = _ROOMS[kind]
    w, d, h = rng.uniform(w0, w1), rng.uniform(d0, d1), rng.uniform(2.5, 3.0)
    room = _Room(rng, w, d)
    room.add([[(2, 0, (w / 2, d / 2, -0.05), (w / 2, d / 2, 0.05), (0, 0, 0, 0, 0, 1))]], np.zeros(2), 0.0)
    for k in range(4):  # in the wall's frame: x along it, y < 0 behind it
        room.add([[_box(1, (0, room.length[k]), (-0.1, 0.0), (0, h), _FRONT)]], room.origin[k], k * math.pi / 2)
    if rng.random() < 0.5:
        room.add([[(22, 0, (w / 2, d / 2, h + 0.05), (w / 2, d / 2, 0.05), (0, 0, 0, 0, 1, 0))]], np.zeros(2), 0.0)
    flat = (-0.02, 0.02)
    room.on_wall([[_box(8, (-0.45, 0.45), flat, (0, 2.05), _FRONT)]], clearance=0.9)
    for _ in range(int(rng.integers(0, 3))):
        ww, z0 = rng.uniform(0.8, 1.6), rng.uniform(0.8, 1.0)
        window = [[_box(9, (-ww / 2, ww / 2), flat, (z0, min(z0 + 1.2, h - 0.2)), _FRONT)]]
        if rng.random() < 0.5:
            window += [
                [_box(16, (s, s + 0.3), (-0.02, 0.08), (0.1, h - 0.1), _FRONTS)] for s in (-ww / 2 - 0.3, ww / 2)
            ]
        room.on_wall(window, floor=False)
    for _ in range(int(rng.integers(0, 3))):
        pw, ph, zc = rng.uniform(0.4, 1.0), rng.uniform(0.3, 0.8), rng.uniform(1.3, 1.7)
        picture = _box(11, (-pw / 2, pw / 2), (-0.02, 0.03), (zc - ph / 2, zc + ph / 2), (1, 1, 0, 1, 1, 1))
        room.on_wall([[picture]], floor=False)
    for name, lo, hi, at_wall in plan:
        for _ in range(int(rng.integers(lo, hi + 1))):
            objects = _furniture(name, rng)
            if at_wall:
                room.on_wall(objects)
            else:
                room.on_floor(objects)
    return room.objects, (w, d)


# ---------------------------------------------------------------------------------------------------
# points on the parts


def _surface(kind: np.ndarray, face: np.ndarray, half: np.ndarray, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Points and normals on face ``face`` of boxes / cylinders (``kind`` 0 / 1) of ``half`` sizes, in their frames,
    from uniform ``u [M, 3]``: ``([M, 3], [M, 3])``."""
    rows = np.arange(len(kind))
    axis, sign = face // 2, np.where(face % 2 == 1, 1.0, -1.0)
    box = (2.0 * u - 1.0) * half
    box[rows, axis] = sign * half[rows, axis]
    box_n = np.zeros_like(box)
    box_n[rows, axis] = sign
    theta = 2.0 * np.pi * u[:, 0]
    side = face == 0
    rho = np.where(side, 1.0, np.sqrt(u[:, 1])) * half[:, 0]
    z = np.where(side, (2.0 * u[:, 2] - 1.0) * half[:, 2], sign * half[:, 2])
    cyl = np.stack([rho * np.cos(theta), rho * np.sin(theta), z], 1)
    cyl_n = np.where(side[:, None], np.stack([np.cos(theta), np.sin(theta), np.zeros_like(z)], 1), 0.0)
    cyl_n[:, 2] = np.where(side, 0.0, sign)
    is_box = (kind == 0)[:, None]
    return np.where(is_box, box, cyl), np.where(is_box, box_n, cyl_n)


def _turn(v: np.ndarray, cos: np.ndarray, sin: np.ndarray) -> np.ndarray:
    """``v [M, 3]`` turned about z by the angle of ``cos``, ``sin`` ``[M]``."""
    return np.stack([cos * v[:, 0] - sin * v[:, 1], sin * v[:, 0] + cos * v[:, 1], v[:, 2]], 1)


def generate_scene(seed: int, index: int, num_points: int) -> dict[str, np.ndarray]:
    """Scene ``index`` of seed ``seed``: a generated room of ``num_points`` points (see the module docstring).

    Returns:
        ``points [N, 3]`` float32 (metres, floor at z = 0, room in x, y >= 0), ``colors [N, 3]`` uint8,
        ``normals [N, 3]`` float32 (unit), ``labels [N]`` int64 NYU40 ids (:data:`CLASSES`), ``instances [N]`` int64
        (one per object: each wall, the floor, a chair).

    Raises:
        UsageError: ``num_points`` < 1.
    """
    if num_points < 1:
        raise UsageError(f"a generated scene needs at least 1 point, got {num_points}")
    rng = np.random.default_rng([int(seed) % (1 << 63), int(index)])
    objects, (w, d) = _layout(rng, ROOM_TYPES[int(index) % len(ROOM_TYPES)])
    rows = [(p, xy, yaw, i) for i, (parts, xy, yaw) in enumerate(objects) for p in parts]
    label = np.array([p[0] for p, *_ in rows])
    kind = np.array([p[1] for p, *_ in rows])
    local = np.array([p[2] for p, *_ in rows], dtype=np.float64)
    half = np.array([p[3] for p, *_ in rows], dtype=np.float64)
    faces = np.array([p[4] for p, *_ in rows], dtype=np.float64)
    yaw = np.array([r[2] for r in rows])
    inst = np.array([r[3] for r in rows])
    cos, sin = np.cos(yaw), np.sin(yaw)
    centre = _turn(local, cos, sin) + np.array([(*r[1], 0.0) for r in rows])

    # surface elements (part, face) in proportion to their visible area
    a, b, c = half.T
    box_area = np.stack([b * c, b * c, a * c, a * c, a * b, a * b], 1) * 4.0
    zero = np.zeros_like(a)
    cyl_area = np.stack([4.0 * np.pi * a * c, zero, zero, zero, np.pi * a * a, np.pi * a * a], 1)
    area = np.where((kind == 0)[:, None], box_area, cyl_area) * faces
    m = int(num_points * 1.6) + 64
    elem = rng.choice(area.size, size=m, p=(area / area.sum()).ravel())
    part, face = np.divmod(elem, 6)
    pts, nrm = _surface(kind[part], face, half[part], rng.random((m, 3)))
    pts = _turn(pts, cos[part], sin[part]) + centre[part]
    nrm = _turn(nrm, cos[part], sin[part])

    hidden = np.zeros(m, dtype=bool)
    for q in range(len(label)):  # one batched test per part: points strictly inside another part are hidden
        rel = pts - centre[q]
        x, y = cos[q] * rel[:, 0] + sin[q] * rel[:, 1], -sin[q] * rel[:, 0] + cos[q] * rel[:, 1]
        e = half[q] - 1e-3
        if kind[q] == 0:
            inside = (np.abs(x) < e[0]) & (np.abs(y) < e[1])
        else:
            inside = x * x + y * y < e[0] * e[0]
        hidden |= inside & (np.abs(rel[:, 2]) < e[2]) & (part != q)

    # a sensor's density falloff: N points by weighted sampling without replacement (Efraimidis-Spirakis)
    sensor = np.array([rng.uniform(0.3, 0.7) * w, rng.uniform(0.3, 0.7) * d, rng.uniform(1.2, 1.8)])
    weight = 1.0 / (1.0 + (np.linalg.norm(pts - sensor, axis=1) / rng.uniform(2.5, 4.0)) ** 2)
    keys = np.where(hidden, -np.inf, np.log(1.0 - rng.random(m)) / weight)
    seen = np.flatnonzero(~hidden)
    if len(seen) >= num_points:
        keep = np.sort(np.argpartition(-keys, num_points - 1)[:num_points])
    else:  # (not in practice: most candidates are visible) repeat visible points
        keep = np.sort(np.concatenate([seen, rng.choice(seen, num_points - len(seen))]))
    part, pts, nrm = part[keep], pts[keep], nrm[keep]
    pts = pts + rng.normal(0.0, rng.uniform(0.002, 0.006), pts.shape)

    # colours: the class palette varied per object (pictures: any colour), shaded by the normal, floor planks
    n_inst = int(inst.max()) + 1
    palette = np.array([_PALETTE[int(k)] for k in label]) + rng.normal(0.0, 0.05, (n_inst, 3))[inst]
    palette = np.where((label == 11)[:, None], rng.uniform(0.1, 0.9, (n_inst, 3))[inst], palette)
    light = np.array([0.3, 0.5, 1.0]) / np.linalg.norm([0.3, 0.5, 1.0])
    shade = 0.7 + 0.3 * np.clip(nrm @ light, 0.0, 1.0)
    planks = np.where(label[part] == 2, 0.92 + 0.08 * np.sin(2.0 * np.pi * pts[:, 1] / 0.2), 1.0)
    rgb = palette[part] * (shade * planks)[:, None] + rng.normal(0.0, 0.015, (num_points, 3))
    return {
        "points": pts.astype(np.float32),
        "colors": np.clip(np.rint(rgb * 255.0), 0, 255).astype(np.uint8),
        "normals": nrm.astype(np.float32),
        "labels": label[part].astype(np.int64),
        "instances": inst[part].astype(np.int64),
    }


# ---------------------------------------------------------------------------------------------------
# the dataset: generated once into the cache through prep_scans


def _check(spec: Any) -> None:
    for key, low in (("scenes", 1), ("points", 1)):
        value = getattr(spec, key)
        if not isinstance(value, int) or value < low:
            raise UsageError(f"generated scenes: {key} must be a whole number >= {low}, got {value!r}")


def _options(spec: Any) -> dict[str, Any]:
    return {
        "generator": GENERATOR_VERSION,
        "scenes": spec.scenes,
        "points": spec.points,
        "seed": spec.seed,
        "voxel_size": VOXEL_SIZE,
        "label_map": LABEL_MAP,
    }


def scenes_dir(spec: Any = SceneSpec()) -> Path:
    """The dataset folder of ``spec`` (a :class:`SceneSpec`, or any object with its attributes):
    ``<cache>/scenes-<scenes>x<points>-seed<seed>-<hash of the options and GENERATOR_VERSION>``."""
    from geomask.datasets.cache import cache_root

    _check(spec)
    digest = hashlib.sha256(json.dumps(_options(spec), sort_keys=True).encode()).hexdigest()[:12]
    return cache_root(spec.cache) / f"scenes-{spec.scenes}x{spec.points}-seed{spec.seed}-{digest}"


def _save_npy(path: Path, scene: dict[str, np.ndarray]) -> None:
    """One scene as a structured ``.npy`` (the PLY-like field names :func:`geomask.io.scans.read_npy` reads)."""
    import io

    from geomask.io.atomic import atomic_write_bytes

    fields = [("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("red", "u1"), ("green", "u1"), ("blue", "u1")]
    fields += [("nx", "<f4"), ("ny", "<f4"), ("nz", "<f4"), ("label", "<i8"), ("instance", "<i8")]
    rows = np.empty(len(scene["points"]), dtype=fields)
    for j, name in enumerate("xyz"):
        rows[name] = scene["points"][:, j]
        rows["n" + name] = scene["normals"][:, j]
    for j, name in enumerate(("red", "green", "blue")):
        rows[name] = scene["colors"][:, j]
    rows["label"], rows["instance"] = scene["labels"], scene["instances"]
    buf = io.BytesIO()
    np.save(buf, rows, allow_pickle=False)
    atomic_write_bytes(path, buf.getvalue())


def build_scenes(spec: Any = SceneSpec(), *, progress: bool = True) -> Path:
    """The dataset folder of generated scenes ``spec``, made on first use (one line on stderr) and reused after.

    The scenes are written as ``.npy`` files and prepared by :func:`~geomask.datasets.scans.prep_scans` (voxel size
    :data:`VOXEL_SIZE`, label map :data:`LABEL_MAP`) into ``<folder>.partial``, which is renamed to the folder once
    complete, under a file lock (one builder among processes).  A killed build leaves ``<folder>.partial``: the next
    one resumes it (complete scenes are skipped).

    Args:
        spec: a :class:`SceneSpec` (or an object with its attributes: ``data.scenes``).
        progress: print the one line saying the scenes are being generated.

    Returns:
        the folder, a ``scan`` dataset (``manifest.json`` + shards) with a ``generated.json`` describing it.

    Raises:
        UsageError: a bad ``spec``.
        FormatError: a scene that ``prep_scans`` could not prepare (a bug: the build is left unfinished).
    """
    from geomask.datasets.scans import prep_scans
    from geomask.io.atomic import atomic_write_text, build_once

    def write(partial: Path) -> Path:
        staging = partial / "generated"
        staging.mkdir(parents=True, exist_ok=True)
        sources = []
        for i in range(spec.scenes):
            path = staging / f"scene_{i:04d}.npy"
            _save_npy(path, generate_scene(spec.seed, i, spec.points))
            sources.append(path)
        _, failures = prep_scans(sources, partial, VOXEL_SIZE, label_map=LABEL_MAP, progress=False)
        if failures:
            raise FormatError(failures[0][0], f"could not prepare a generated scene: {failures[0][1]}")
        about = {
            "what": "generated indoor scenes, not real scans (geomask.datasets.generated_scenes)",
            **_options(spec),
            "room_types": [ROOM_TYPES[i % len(ROOM_TYPES)] for i in range(spec.scenes)],
        }
        atomic_write_text(partial / "generated.json", json.dumps(about, indent=1, sort_keys=True) + "\n")
        shutil.rmtree(staging)
        return partial

    out = scenes_dir(spec)
    message = (
        f"generating {spec.scenes} synthetic indoor scenes (generated rooms, not real scans) into {out} (first use) ..."
    )
    return build_once(out, message if progress else None, write, resume=True)
