"""``prep_scans``: scan files → a versioned dataset of voxelized point clouds (kind ``"scan"``, schema 1).

Each item holds plain tensors (schema 1):

==================  ==================  =====================================================
``points``          ``[N, 3]`` float32  coordinates as read (``origin`` in the meta when shifted)
``colors``          ``[N, 3]`` float32  in ``[0, 1]`` (only when the scan has colours)
``normals``         ``[N, 3]`` float32  (only when the file has normals)
``intensity``       ``[N]`` float32     (only when the file has intensity)
``labels``          ``[N]`` int64       after the label map (only with labels)
``instances``       ``[N]`` int64       (only with instance ids)
``coords``          ``[V, 3]`` int32    voxel coordinates ``floor(points / voxel_size)``, sorted
``inverse``         ``[N]`` int64       voxel of each point: ``voxel_pred[inverse]`` maps back
``counts``          ``[V]`` int32       points per voxel
``voxel_labels``    ``[V]`` int64       majority label per voxel, ignore -1 (only with labels)
==================  ==================  =====================================================

and meta ``source``, ``labels_source``, ``sha256`` (of the scan file), ``labels_sha256``, ``format``,
``points``, ``voxels``, ``classes`` (distinct non-negative labels present), ``origin``.
"""

from __future__ import annotations

import hashlib
import json
import os
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np
import torch

from geomask.datasets.store import DatasetWriter, file_sha256, safe_key
from geomask.errors import FormatError, GeomaskError, UsageError
from geomask.io.scans import read_scan
from geomask.points.labelmaps import load_label_map, map_labels
from geomask.points.voxelize import voxel_majority, voxelize
from geomask.progress import progress_bar

__all__ = ["SCHEMA_VERSION", "ScanItem", "load_scan_item", "parse_source", "prep_scans"]

SCHEMA_VERSION = 1
_REQUIRED = ("points", "coords", "inverse", "counts")


def parse_source(source: str | Path) -> tuple[Path, Path | None]:
    """Split ``POINTS:LABELS`` at the last colon when the right side is an existing file.

    Returns:
        ``(points path, labels path or None)``.
    """
    text = str(source)
    head, sep, tail = text.rpartition(":")
    if sep and head and tail and Path(tail).is_file() and not Path(text).exists():
        return Path(head), Path(tail)
    return Path(text), None


def _keys(points: list[Path]) -> list[str]:
    """One file-name-safe key per source: the stem, made unique with a hash of the path if needed."""
    keys = [safe_key(p.stem) for p in points]
    seen: dict[str, int] = {}
    for k in keys:
        seen[k] = seen.get(k, 0) + 1
    return [k if seen[k] == 1 else f"{k}-{hashlib.sha1(str(p).encode()).hexdigest()[:8]}" for k, p in zip(keys, points)]


@dataclass(frozen=True)
class _Job:
    key: str
    points: Path
    labels: Path | None
    voxel_size: float
    label_map: str | None


def _prep_one(job: _Job, writer: DatasetWriter) -> dict[str, Any]:
    """Read, label-map, voxelize and write one scan; returns its manifest row."""
    for path in (job.points, job.labels):
        if path is not None and not path.is_file():
            raise FormatError(path, "no such file")
    sha = file_sha256(job.points)
    labels_sha = None if job.labels is None else file_sha256(job.labels)
    if writer.has(job.key):
        row = json.loads((writer.shards / f"{job.key}.json").read_text())
        if row.get("sha256") == sha and row.get("labels_sha256") == labels_sha:
            return {**row, "status": "skipped"}
    scan = read_scan(job.points, labels=job.labels)
    labels = scan.labels
    if labels is not None and job.label_map is not None:
        try:
            labels = map_labels(labels, job.label_map)
        except ValueError as e:
            raise FormatError(job.labels or job.points, str(e)) from None
    vox = voxelize(torch.from_numpy(scan.points), job.voxel_size)
    tensors: dict[str, torch.Tensor] = {"points": torch.from_numpy(scan.points)}
    for name in ("colors", "normals", "intensity", "instances"):
        value = getattr(scan, name)
        if value is not None:
            tensors[name] = torch.from_numpy(value)
    tensors["coords"] = vox.coords[:, 1:].to(torch.int32)
    tensors["inverse"] = vox.inverse
    tensors["counts"] = vox.counts.to(torch.int32)
    classes = None
    if labels is not None:
        tensors["labels"] = torch.from_numpy(labels)
        tensors["voxel_labels"] = voxel_majority(tensors["labels"], vox.inverse, len(vox.coords))
        classes = int(len(np.unique(labels[labels >= 0])))
    meta = {
        "source": str(job.points),
        "labels_source": None if job.labels is None else str(job.labels),
        "sha256": sha,
        "labels_sha256": labels_sha,
        "format": scan.format,
        "points": scan.num_points,
        "voxels": len(vox.coords),
        "classes": classes,
        "origin": None if scan.origin is None else [float(v) for v in scan.origin],
    }
    writer.write(job.key, tensors, meta)
    return {"key": job.key, **meta, "status": "written"}


def _worker(job: _Job, writer: DatasetWriter) -> tuple[str, dict[str, Any] | None, str | None]:
    torch.set_num_threads(1)
    return _run(job, writer)


def _run(job: _Job, writer: DatasetWriter) -> tuple[str, dict[str, Any] | None, str | None]:
    """One job, its failure turned into one line naming the file."""
    try:
        return job.key, _prep_one(job, writer), None
    except (GeomaskError, OSError) as e:
        return job.key, None, " ".join(str(e).split())
    except Exception as e:  # a bug or an unforeseen file: record it, keep going with the rest
        return job.key, None, f"{job.points}: {type(e).__name__}: {' '.join(str(e).split())}"


def prep_scans(
    sources: list[Path | str],
    out: Path | str,
    voxel_size: float,
    labels: list[Path | str | None] | None = None,
    label_map: str | None = None,
    jobs: int = 1,
    progress: bool = True,
) -> tuple[list[dict[str, Any]], list[tuple[str, str]]]:
    """Prepare scans into a ``"scan"`` dataset at ``out`` (resumable: complete items are skipped).

    Args:
        sources: scan files, or ``POINTS:LABELS`` pairs (split at the last colon when the right side is
            an existing file).
        out: the dataset folder.
        voxel_size: voxel edge length in the scans' units.
        labels: one label file (or ``None``) per source; overrides a ``POINTS:LABELS`` pair.
        label_map: a label map name (``geomask.points.labelmaps``) applied to the labels.
        jobs: worker processes (1: in this process).
        progress: show a progress bar (plain lines when stderr is not a terminal).

    Returns:
        ``(rows, failures)``: one row per prepared or skipped scan (its manifest record plus ``status``
        ``"written"`` or ``"skipped"``), and ``(source, one-line message)`` per scan that failed.

    Raises:
        UsageError: bad arguments (voxel size, jobs, label list length, unknown label map); a ``ValueError``.
        FormatError: ``out`` holds a dataset made with other options.
    """
    if not (voxel_size > 0 and np.isfinite(voxel_size)):
        raise UsageError(f"--voxel-size must be a number above 0, got {voxel_size}")
    if jobs < 1:
        raise UsageError(f"--jobs must be at least 1, got {jobs}")
    if labels is not None and len(labels) != len(sources):
        raise UsageError(f"got {len(labels)} label files (--labels) for {len(sources)} scans: give one per scan")
    if label_map is not None:
        load_label_map(label_map)  # fail early on an unknown name
    pairs = [parse_source(s) for s in sources]
    if labels is not None:
        pairs = [(p, q if lab is None else Path(lab)) for (p, q), lab in zip(pairs, labels)]
    keys = _keys([p for p, _ in pairs])
    options = {"voxel_size": float(voxel_size), "label_map": label_map}
    writer = DatasetWriter(out, "scan", schema_version=SCHEMA_VERSION, options=options)
    work = [_Job(k, p, q, float(voxel_size), label_map) for k, (p, q) in zip(keys, pairs)]
    results: dict[str, tuple[dict[str, Any] | None, str | None]] = {}
    bar = progress_bar(total=len(work), desc="prep scans", unit="scan", disable=not progress)
    if jobs <= 1 or len(work) <= 1:
        for job in work:
            key, row, err = _run(job, writer)
            results[key] = (row, err)
            bar.update(1)
    else:
        with ProcessPoolExecutor(
            max_workers=min(jobs, len(work), os.cpu_count() or 1), mp_context=get_context("spawn")
        ) as pool:
            futures = [pool.submit(_worker, job, writer) for job in work]
            for fut in as_completed(futures):
                key, row, err = fut.result()
                results[key] = (row, err)
                bar.update(1)
    bar.close()
    writer.finalize()
    rows, failures = [], []
    for job in work:
        row, err = results[job.key]
        if err is None:
            rows.append(row)
        else:
            failures.append((str(job.points), err))
    return rows, failures


@dataclass
class ScanItem:
    """One prepared scan as tensors (see the module doc for the fields and shapes)."""

    points: torch.Tensor
    coords: torch.Tensor
    inverse: torch.Tensor
    counts: torch.Tensor
    colors: torch.Tensor | None = None
    normals: torch.Tensor | None = None
    intensity: torch.Tensor | None = None
    labels: torch.Tensor | None = None
    instances: torch.Tensor | None = None
    voxel_labels: torch.Tensor | None = None

    def voxel_features(self, name: str = "colors") -> torch.Tensor:
        """Mean of a per-point field over each voxel: ``[V, C]`` (``"points"`` gives voxel centroids)."""
        value = getattr(self, name)
        if value is None:
            raise ValueError(f"this scan has no {name}")
        value = value.to(torch.float32).reshape(len(value), -1)
        total = torch.zeros(len(self.coords), value.shape[1]).index_add_(0, self.inverse, value)
        return total / self.counts.to(torch.float32)[:, None]


def load_scan_item(tensors: dict[str, torch.Tensor], path: str | Path | None = None) -> ScanItem:
    """Check a shard's tensors against schema 1 and wrap them as a :class:`ScanItem`.

    Raises:
        FormatError: a missing field or one whose length disagrees with the points or voxels.
    """
    missing = [k for k in _REQUIRED if k not in tensors]
    if missing:
        raise FormatError(path, f"scan item lacks {', '.join(missing)} (not a schema-1 scan item)")
    n, v = len(tensors["points"]), len(tensors["coords"])
    per_point = ("points", "inverse", "colors", "normals", "intensity", "labels", "instances")
    for name in per_point:
        if name in tensors and len(tensors[name]) != n:
            raise FormatError(path, f"scan item field {name} has {len(tensors[name])} rows for {n} points")
    for name in ("coords", "counts", "voxel_labels"):
        if name in tensors and len(tensors[name]) != v:
            raise FormatError(path, f"scan item field {name} has {len(tensors[name])} rows for {v} voxels")
    if n and (int(tensors["inverse"].min()) < 0 or int(tensors["inverse"].max()) >= v):
        raise FormatError(path, "scan item's inverse map points outside its voxels")
    return ScanItem(**{k: t for k, t in tensors.items() if k in ScanItem.__dataclass_fields__})
