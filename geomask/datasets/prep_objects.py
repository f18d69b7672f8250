"""``geomask prep objects``: real objects cut out of labelled scans by instance id (kind ``"scan_objects"``).

An object is the set of points of one scan that share an instance id and a semantic label (SemanticKITTI's
instance ids are counted per class, so both make the key); instance id 0 means "no instance" and is never an
object.  Every object with at least ``min_points`` points is resampled to ``num_points`` points (farthest point
sampling from a seeded random start when it has more, every point once plus seeded repeats when it has fewer),
centred on its mean and scaled so that its farthest point lies on the unit sphere.

Each source scan is one item of the dataset (resumable per source), holding plain tensors (schema 1):

===============  =====================  ==========================================================
``points``       ``[M, P, 3]`` float32  the ``M`` objects, centred, in the unit sphere
``colors``       ``[M, P, 3]`` float32  in ``[0, 1]`` (only when the scan has colours)
``labels``       ``[M]`` int64          the semantic id (the source's own ids: NYU40 for ScanNet)
``instances``    ``[M]`` int64          the instance id in the source scan
``counts``       ``[M]`` int64          points of the object in the scan (before resampling)
``centers``      ``[M, 3]`` float32     the subtracted mean, in scan coordinates
``scales``       ``[M]`` float32        the divisor: ``scan = points * scale + center``
===============  =====================  ==========================================================

and meta ``source``, ``labels_source``, ``instances_source``, ``sha256`` (of the three files), ``objects``,
``skipped_small`` (instances under ``min_points``), ``skipped_classes`` (instances of skipped classes).

Stuff classes skipped by default (``skip_classes=None``): NYU40 0 unannotated, 1 wall, 2 floor, 22 ceiling
(:data:`NYU40_STUFF`) for every source but SemanticKITTI ``.label`` files, whose raw ids 0 unlabeled, 1 outlier,
40-49 road/parking/sidewalk/other-ground, 50-52 building/fence/other-structure, 60 lane-marking, 70-72
vegetation/trunk/terrain, 80-81 pole/traffic-sign, 99 other-object are skipped (:data:`KITTI_STUFF`).  ``classes``
keeps only the ids given (then nothing else is skipped by class).

Sources:

* ScanNet as mmdetection3d exports it: ``*_vert_all.npy`` with ``*_sem_label_all.npy`` and
  ``*_ins_label_all.npy`` beside it (found by name), or a folder of them;
* ``POINTS:LABELS`` with a SemanticKITTI ``.label`` file (instance ids in its upper 16 bits);
* ``POINTS:LABELS:INSTANCES`` (any scan and label formats :func:`geomask.io.scans.read_scan` reads), or an
  ``.npz`` holding ``points``, ``labels`` and ``instances``.
"""

from __future__ import annotations

import hashlib
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from geomask.datasets.store import DatasetReader, DatasetWriter, safe_key
from geomask.errors import FormatError, GeomaskError, UsageError

__all__ = [
    "KITTI_STUFF",
    "MANIFEST_KIND",
    "NYU40_STUFF",
    "SCHEMA_VERSION",
    "ScanObjectDataset",
    "cut_objects",
    "find_sources",
    "open_scan_objects",
    "prep_objects",
]

SCHEMA_VERSION = 1
MANIFEST_KIND = "scan_objects"
NYU40_STUFF = (0, 1, 2, 22)
"""NYU40 ids that are no objects: unannotated, wall, floor, ceiling."""
KITTI_STUFF = (0, 1, 40, 44, 48, 49, 50, 51, 52, 60, 70, 71, 72, 80, 81, 99)
"""Raw SemanticKITTI ids that are no objects (ground, structure, vegetation, poles, signs, unlabelled)."""
_SCANNET = "_vert_all.npy"


@dataclass(frozen=True)
class _Source:
    key: str
    points: Path
    labels: Path | None
    instances: Path | None


def _scannet_source(path: Path) -> _Source:
    stem = path.name[: -len(_SCANNET)]
    return _Source(
        safe_key(stem),
        path,
        path.with_name(f"{stem}_sem_label_all.npy"),
        path.with_name(f"{stem}_ins_label_all.npy"),
    )


def find_sources(sources: list[str | Path]) -> list[_Source]:
    """Sources as :class:`_Source` (points, labels, instances files); folders give their ``*_vert_all.npy``.

    ``A:B`` and ``A:B:C`` split at colons only where every part names an existing file; keys (the item names)
    are the stems, made unique with a hash of the path where two collide.
    """
    out: list[_Source] = []
    for s in sources:
        text = str(s)
        path = Path(text)
        if path.is_dir():
            found = sorted(path.glob(f"*{_SCANNET}"))
            out += [_scannet_source(p) for p in found] or [_Source(safe_key(path.name), path, None, None)]
            continue
        parts = text.split(":")
        if not path.exists() and len(parts) in (2, 3) and all(Path(p).is_file() for p in parts):
            out.append(_Source(safe_key(Path(parts[0]).stem), *(Path(p) for p in parts), *([None] * (3 - len(parts)))))
        elif path.name.endswith(_SCANNET):
            out.append(_scannet_source(path))
        else:
            out.append(_Source(safe_key(path.stem), path, None, None))
    seen: dict[str, int] = {}
    for src in out:
        seen[src.key] = seen.get(src.key, 0) + 1
    return [
        src
        if seen[src.key] == 1
        else _Source(
            f"{src.key}-{hashlib.sha1(str(src.points).encode()).hexdigest()[:8]}", src.points, src.labels, src.instances
        )
        for src in out
    ]


def _normalise(pos: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``[M, P, 3]`` → centred on the mean, farthest point at radius 1; returns (points, centers, scales)."""
    center = pos.mean(1, keepdim=True)
    pos = pos - center
    scale = pos.norm(dim=-1).amax(1).clamp(min=1e-12)
    return pos / scale[:, None, None], center[:, 0], scale


def cut_objects(
    points: np.ndarray,
    labels: np.ndarray,
    instances: np.ndarray,
    *,
    min_points: int = 50,
    num_points: int = 1024,
    keep: np.ndarray | None = None,
    skip: np.ndarray | None = None,
    colors: np.ndarray | None = None,
    generator: torch.Generator | None = None,
) -> tuple[dict[str, torch.Tensor], dict[str, int]]:
    """Cut one scan's objects (see the module doc), resampled and normalised, all at once.

    Args:
        points: ``[N, 3]``; labels, instances: ``[N]`` int; colors: ``[N, 3]`` or ``None``.
        min_points: objects with fewer points are dropped.
        num_points: P, points per object.
        keep: semantic ids to keep (``None``: all but ``skip``).
        skip: semantic ids to drop (ignored when ``keep`` is given).
        generator: FPS starts and repeat draws.

    Returns:
        ``(tensors, counts)``: the item's tensors (module doc) and ``{"objects", "skipped_small",
        "skipped_classes"}``.

    Shapes:
        points ``[N, 3]`` → ``points [M, P, 3]``, ``labels``/``instances``/``counts`` ``[M]``.
    """
    from geomask.ops.fps import farthest_point_sampling

    pos = torch.from_numpy(np.ascontiguousarray(points, dtype=np.float32))
    lab = torch.from_numpy(np.asarray(labels, dtype=np.int64))
    ins = torch.from_numpy(np.asarray(instances, dtype=np.int64))
    has = ins > 0
    pairs, inverse, counts = torch.unique(
        torch.stack([ins[has], lab[has]], 1), dim=0, return_inverse=True, return_counts=True
    )
    cls = pairs[:, 1] if len(pairs) else torch.zeros(0, dtype=torch.long)
    if keep is not None:
        ok_class = torch.isin(cls, torch.as_tensor(keep, dtype=torch.long))
    elif skip is not None:
        ok_class = ~torch.isin(cls, torch.as_tensor(skip, dtype=torch.long))
    else:
        ok_class = torch.ones(len(pairs), dtype=torch.bool)
    big = counts >= min_points
    chosen = torch.nonzero(ok_class & big).flatten()
    stats = {
        "objects": len(chosen),
        "skipped_small": int((ok_class & ~big).sum()),
        "skipped_classes": int((~ok_class).sum()),
    }
    m, p = len(chosen), num_points
    out = {
        "points": torch.zeros(m, p, 3),
        "labels": cls[chosen].clone(),
        "instances": pairs[chosen, 0].clone(),
        "counts": counts[chosen].clone(),
    }
    col = None if colors is None else torch.from_numpy(np.ascontiguousarray(colors, dtype=np.float32))
    if col is not None:
        out["colors"] = torch.zeros(m, p, 3)
    if m == 0:
        out["centers"], out["scales"] = torch.zeros(0, 3), torch.zeros(0)
        return out, stats
    # the points of every chosen object, grouped: object j's points are rows start[j]:start[j]+n[j] of `order`
    slot = torch.full((len(pairs),), -1, dtype=torch.long)
    slot[chosen] = torch.arange(m)
    obj = slot[inverse]
    rows = torch.nonzero(has).flatten()[obj >= 0]
    obj = obj[obj >= 0]
    order = rows[torch.argsort(obj, stable=True)]
    n = counts[chosen]
    start = torch.cumsum(n, 0) - n
    u = torch.rand(m, p + 1, generator=generator)
    # fewer than P points: each point once, then seeded repeats; at least P: farthest point sampling
    local = torch.arange(p)[None, :].expand(m, p)
    local = torch.where(local < n[:, None], local, (u[:, :p] * n[:, None]).long().clamp(max=n[:, None] - 1))
    large = torch.nonzero(n > p).flatten()
    if len(large):
        nl = n[large]
        first = (u[large, p] * nl).long().clamp(max=nl - 1)
        width = int(nl.max())
        within = torch.arange(width)[None, :]
        # padded with copies of the start point, which FPS never picks twice: the same picks as unpadded
        idx = torch.where(within < nl[:, None], within, first[:, None])
        cloud = pos[order[start[large, None] + idx]]
        local[large] = torch.gather(idx, 1, farthest_point_sampling(cloud, p, start=first))
    picked = order[start[:, None] + local]
    out["points"], out["centers"], out["scales"] = _normalise(pos[picked])
    if col is not None:
        out["colors"] = col[picked]
    return out, stats


def _read(src: _Source) -> tuple[Any, np.ndarray, np.ndarray]:
    from geomask.io.scans import read_scan

    for path in (src.points, src.labels, src.instances):
        if path is not None and not path.is_file():
            raise FormatError(path, "is a folder, not a scan file" if path.is_dir() else "no such file")
    scan = read_scan(src.points, labels=src.labels, instances=src.instances)
    if scan.labels is None:
        raise FormatError(
            src.points,
            "has no semantic labels (give POINTS:LABELS[:INSTANCES] or a ScanNet "
            "*_vert_all.npy with its *_sem_label_all.npy beside it)",
        )
    if scan.instances is None:
        raise FormatError(
            src.labels or src.points,
            "has no instance ids (need a SemanticKITTI .label file, an "
            "instance file, or ScanNet's *_ins_label_all.npy)",
        )
    return scan, scan.labels, scan.instances


def _sha(src: _Source) -> str:
    from geomask.datasets.store import file_sha256

    h = hashlib.sha256()
    for path in (src.points, src.labels, src.instances):
        h.update((file_sha256(path) if path is not None else "-").encode())
    return h.hexdigest()


def _prep_one(src: _Source, writer: DatasetWriter, opts: dict[str, Any], seed: int) -> dict[str, Any]:
    for path in (src.points, src.labels, src.instances):
        if path is not None and not path.exists():
            raise FormatError(path, "no such file")
    sha = _sha(src)
    if writer.has(src.key):
        row = json.loads((writer.shards / f"{src.key}.json").read_text())
        if row.get("sha256") == sha:
            return {**row, "status": "skipped"}
    scan, labels, instances = _read(src)
    keep = None if opts["classes"] is None else np.asarray(opts["classes"])
    skip = opts["skip_classes"]
    if skip is None:
        kitti = src.labels is not None and src.labels.suffix.lower() == ".label"
        skip = KITTI_STUFF if kitti else NYU40_STUFF
    digest = int.from_bytes(hashlib.sha256(f"{seed}:{src.key}".encode()).digest()[:7], "little")
    tensors, stats = cut_objects(
        scan.points,
        labels,
        instances,
        min_points=opts["min_points"],
        num_points=opts["num_points"],
        keep=keep,
        skip=np.asarray(skip),
        colors=scan.colors,
        generator=torch.Generator().manual_seed(digest),
    )
    meta = {
        "source": str(src.points),
        "labels_source": None if src.labels is None else str(src.labels),
        "instances_source": None if src.instances is None else str(src.instances),
        "sha256": sha,
        **stats,
        "classes": sorted({int(c) for c in tensors["labels"].tolist()}),
    }
    writer.write(src.key, tensors, meta)
    return {"key": src.key, **meta, "status": "written"}


def prep_objects(
    sources: list[str | Path],
    out: str | Path,
    *,
    min_points: int = 50,
    num_points: int = 1024,
    classes: list[int] | None = None,
    skip_classes: list[int] | None = None,
    seed: int = 0,
    progress: bool = True,
) -> tuple[list[dict[str, Any]], list[tuple[str, str]]]:
    """Cut the objects of labelled scans into a ``"scan_objects"`` dataset at ``out`` (resumable per source).

    Args:
        sources: scans (module doc), or folders of ScanNet ``*_vert_all.npy`` files.
        out: the dataset folder.
        min_points: smallest object kept (points in the scan).
        num_points: P, points per object.
        classes: keep only these semantic ids (``None``: all but the skipped ones).
        skip_classes: semantic ids that are no objects (``None``: :data:`NYU40_STUFF`, or :data:`KITTI_STUFF` for a
            ``.label`` source).
        seed: the resampling seed (with the source's key).
        progress: one progress line per source on stderr.

    Returns:
        ``(rows, failures)``: a manifest row (+ ``status`` ``written`` / ``skipped``) per source done, and
        ``(source, one-line message)`` per source that failed; the others are still written.

    Raises:
        UsageError: ``min_points`` or ``num_points`` below 1.
        FormatError: ``out`` holds a dataset made with other options.
    """
    if min_points < 1:
        raise UsageError(f"--min-points must be at least 1, got {min_points}")
    if num_points < 1:
        raise UsageError(f"--num-points must be at least 1, got {num_points}")
    opts = {
        "min_points": int(min_points),
        "num_points": int(num_points),
        "classes": None if classes is None else sorted({int(c) for c in classes}),
        "skip_classes": None if skip_classes is None else sorted({int(c) for c in skip_classes}),
        "seed": int(seed),
    }
    found = find_sources(sources)
    writer = DatasetWriter(out, MANIFEST_KIND, schema_version=SCHEMA_VERSION, options=opts)
    rows, failures = [], []
    for i, src in enumerate(found):
        try:
            row = _prep_one(src, writer, opts, seed)
            rows.append(row)
            if progress:
                print(
                    f"prep objects [{i + 1}/{len(found)}] {src.key}: {row['objects']} objects ({row['status']})",
                    file=sys.stderr,
                    flush=True,
                )
        except (GeomaskError, OSError) as e:
            failures.append((str(src.points), " ".join(str(e).split())))
        except Exception as e:  # an unforeseen file: one line, keep going with the rest
            failures.append((str(src.points), f"{src.points}: {type(e).__name__}: {' '.join(str(e).split())}"))
    writer.finalize()
    return rows, failures


class ScanObjectDataset(torch.utils.data.Dataset):
    """The objects of a ``geomask prep objects`` folder, flattened over its sources.

    Attributes:
        points: ``[M, P, 3]`` float32; labels, instances: ``[M]`` int64; scene: ``[M]`` int64, the source's
            index in :attr:`scenes` (the item keys).

    Raises:
        FormatError: not a ``scan_objects`` folder, a newer schema, or a shard without its fields.
    """

    def __init__(self, root: str | Path) -> None:
        reader = DatasetReader(root, kind=MANIFEST_KIND, max_schema=SCHEMA_VERSION)
        self.root, self.scenes = reader.root, reader.keys()
        pts, lab, ins, scn = [], [], [], []
        for k in range(len(reader)):
            t = reader.load(k)
            missing = [f for f in ("points", "labels", "instances") if f not in t]
            if missing:
                raise FormatError(reader.root / reader.items[k]["shard"], f"object item lacks {', '.join(missing)}")
            pts.append(t["points"].float())
            lab.append(t["labels"].long())
            ins.append(t["instances"].long())
            scn.append(torch.full((len(t["labels"]),), k, dtype=torch.long))
        p = int(reader.options["num_points"])
        self.points = torch.cat(pts) if pts else torch.zeros(0, p, 3)
        self.labels = torch.cat(lab) if lab else torch.zeros(0, dtype=torch.long)
        self.instances = torch.cat(ins) if ins else torch.zeros(0, dtype=torch.long)
        self.scene = torch.cat(scn) if scn else torch.zeros(0, dtype=torch.long)

    def __len__(self) -> int:
        return len(self.points)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.points[i]


def open_scan_objects(root: Path, cfg: Any, seed: int) -> ScanObjectDataset:
    """The ``scan_objects`` reader: items are ``[P, 3]`` clouds (collate: ``collate_dense`` → ``[B, P, 3]``).

    Raises:
        FormatError: the folder holds no objects.
    """
    ds = ScanObjectDataset(root)
    if len(ds) == 0:
        raise FormatError(root, "holds no objects (geomask prep objects kept none: lower --min-points?)")
    return ds
