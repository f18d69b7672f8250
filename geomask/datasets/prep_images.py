"""``prep_images``: image files → a versioned dataset of uint8 image shards (manifest kind ``images``, schema 1).

Sources, each one job (the reading rules are in :mod:`geomask.datasets.image_sources`, the schema in
:mod:`geomask.datasets.images`): folders of PNG / JPEG images (subfolders = classes), single image files, ``.npz``
(``images``, ``labels``, ``classes``) and ``.npy`` arrays.  A source that cannot be read fails with one line naming
it; an image of a folder that cannot be decoded (a truncated PNG) fails alone, the folder's other images are kept.

**One size per dataset.**  Every image of a folder has the same ``C × H × W``: without ``size`` it is the size of
the images already in the folder, else of the first source (in the given order) that prepares; a source or file of
another size fails with one line suggesting ``--size``.  With ``size = (H, W)`` every image is resized to it
(bilinear, antialiased, aspect not kept), and the dataset remembers it: a later run with another size is refused.
Channels never change: a grey ``npz`` does not join an RGB dataset.

A large source is cut into shards of at most ~128 MiB (``KEY``, ``KEY+001``, ...).  A source whose shards are all
written and whose content (SHA-256) is unchanged is skipped; every file is written to a temporary name and renamed,
so a killed run leaves whole shards or none.
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

from geomask.datasets.image_sources import (
    read_folder,
    read_image_array,
    read_picture,
    resize_images,
    size_error,
    source_format,
)
from geomask.datasets.store import DatasetWriter, file_sha256, safe_key
from geomask.errors import GeomaskError, UsageError
from geomask.progress import progress_bar

__all__ = ["KIND", "SCHEMA_VERSION", "SHARD_BYTES", "prep_images"]

KIND = "images"
"""The manifest kind of an image dataset folder."""
SCHEMA_VERSION = 1
"""The item schema (:mod:`geomask.datasets.images` documents it)."""

SHARD_BYTES = 1 << 27
"""At most this many pixel bytes per shard (a larger source is cut into parts)."""

Shape = tuple[int, int, int]


# ---------------------------------------------------------------------------------------------------
# one source → shards


@dataclass(frozen=True)
class _Job:
    key: str
    path: Path
    expected: Shape | None
    size: tuple[int, int] | None


def _pixel_sums(images: np.ndarray) -> tuple[list[int], list[int]]:
    """Per channel: the exact sums of the 0..255 values and of their squares (from a histogram)."""
    v = np.arange(256, dtype=np.int64)
    sums, squares = [], []
    for c in range(images.shape[1]):
        hist = np.bincount(images[:, c].reshape(-1), minlength=256).astype(np.int64)
        sums.append(int(hist @ v))
        squares.append(int(hist @ (v * v)))
    return sums, squares


def _part_key(key: str, part: int) -> str:
    return key if part == 0 else f"{key}+{part:03d}"


def _existing(writer: DatasetWriter, key: str) -> dict[str, Any] | None:
    path = writer.shards / f"{key}.json"
    return json.loads(path.read_text()) if path.is_file() else None


def _drop_stale(writer: DatasetWriter, key: str, keep: int) -> None:
    """Remove parts ``keep, keep + 1, ...`` of ``key`` left by an earlier, larger version of the source."""
    for meta in sorted(writer.shards.glob(f"{key}+*.json")):
        part = meta.stem[len(key) + 1 :]
        if part.isdigit() and int(part) >= keep:
            meta.unlink(missing_ok=True)
            meta.with_suffix(".pt").unlink(missing_ok=True)


def _prep_one(job: _Job, writer: DatasetWriter) -> dict[str, Any]:
    """Read, check and write one source; its row (with ``status``, ``shape_`` and ``failed``)."""
    fmt = source_format(job.path)
    sha = file_sha256(job.path)
    first = _existing(writer, job.key)
    if first is not None and first.get("sha256") == sha:
        parts = int(first.get("parts", 1))
        if all(writer.has(_part_key(job.key, p)) for p in range(parts)):
            shape = tuple(first["shape"])
            if job.expected is None or shape == job.expected:
                total = int(first.get("source_images", first["images"]))
                return _row(first, total, "skipped")
    failed: list[tuple[str, str]] = []
    if fmt == "folder":
        images, labels, classes, failed = read_folder(job.path, job.expected, job.size)
        fmt = "folder"
    elif fmt == "image":
        images = read_picture(job.path, job.size)[None]
        labels, classes = np.full(1, -1, dtype=np.int64), []
        fmt = job.path.suffix.lower().lstrip(".").replace("jpg", "jpeg")
    else:
        images, labels, classes = read_image_array(job.path)
        if job.size is not None:
            images = resize_images(images, job.size)
    shape = tuple(int(s) for s in images.shape[1:])
    if job.expected is not None and shape != job.expected:
        raise size_error(job.path, shape, job.expected, job.size is not None)
    per_shard = max(1, SHARD_BYTES // int(np.prod(shape)))
    parts = -(-len(images) // per_shard)
    _drop_stale(writer, job.key, parts)
    base = {"source": str(job.path), "sha256": sha, "format": fmt, "shape": list(shape), "classes": classes}
    base |= {"parts": parts, "source_images": len(images), "failed": [list(f) for f in failed]}
    for p in reversed(range(parts)):  # part 0 last: its metadata marks the whole source complete
        chunk = np.ascontiguousarray(images[p * per_shard : (p + 1) * per_shard])
        sums, squares = _pixel_sums(chunk)
        meta = {**base, "part": p, "images": len(chunk), "pixel_sum": sums, "pixel_sumsq": squares}
        tensors = {
            "images": torch.from_numpy(chunk),
            "labels": torch.from_numpy(labels[p * per_shard : (p + 1) * per_shard].copy()),
        }
        writer.write(_part_key(job.key, p), tensors, meta)
    return _row(base, len(images), "written")


def _row(meta: dict[str, Any], total: int, status: str) -> dict[str, Any]:
    c, h, w = meta["shape"]
    return {
        "source": meta["source"],
        "format": meta["format"],
        "images": total,
        "shape": f"{c}x{h}x{w}",
        "classes": len(meta["classes"]),
        "status": status,
        "shape_": (c, h, w),
        "failed": [tuple(f) for f in meta.get("failed", [])],
    }


def _run(job: _Job, writer: DatasetWriter) -> tuple[str, dict[str, Any] | None, str | None]:
    """One job, its failure turned into one line naming the file."""
    try:
        return job.key, _prep_one(job, writer), None
    except (GeomaskError, OSError) as e:
        return job.key, None, " ".join(str(e).split())
    except Exception as e:  # a bug or an unforeseen file: record it, keep going with the rest
        return job.key, None, f"{job.path}: {type(e).__name__}: {' '.join(str(e).split())}"


def _worker(job: _Job, writer: DatasetWriter) -> tuple[str, dict[str, Any] | None, str | None]:
    torch.set_num_threads(1)
    return _run(job, writer)


def _keys(paths: list[Path]) -> list[str]:
    """One file-name-safe key per source: its name (a folder's) or stem, made unique with a hash of the path."""
    keys = [safe_key(p.name if p.is_dir() else p.stem) for p in paths]
    counts = {k: keys.count(k) for k in keys}
    return [
        k if counts[k] == 1 else f"{k}-{hashlib.sha1(str(p).encode()).hexdigest()[:8]}" for k, p in zip(keys, paths)
    ]


def _dataset_shape(writer: DatasetWriter) -> Shape | None:
    """The image shape of the items already in the folder (``None``: none yet)."""
    for meta in sorted(writer.shards.glob("*.json")):
        shape = json.loads(meta.read_text()).get("shape")
        if shape:
            return tuple(int(s) for s in shape)  # type: ignore[return-value]
    return None


def prep_images(
    sources: list[Path | str],
    out: Path | str,
    size: tuple[int, int] | None = None,
    jobs: int = 1,
    progress: bool = True,
) -> tuple[list[dict[str, Any]], list[tuple[str, str]]]:
    """Prepare image sources into an ``images`` dataset at ``out`` (module docstring; resumable).

    Args:
        sources: folders of images (subfolders = classes), image files, ``.npz`` or ``.npy`` files.
        out: the dataset folder (created, resumed or added to).
        size: ``(H, W)`` to resize every image to; ``None``: every image must have the dataset's size.
        jobs: worker processes (1: in this process).
        progress: show a progress bar (plain lines when stderr is not a terminal).

    Returns:
        ``(rows, failures)``: one row per prepared or skipped source (``source``, ``format``, ``images``,
        ``shape`` ``"CxHxW"``, ``classes``, ``status`` ``"written"`` or ``"skipped"``), and ``(file, one-line
        message)`` per source or image file that failed (a folder's bad files listed again when it is skipped).

    Raises:
        UsageError: a bad ``size`` or ``jobs``.
        FormatError: ``out`` holds a dataset of another kind or made with another ``size``.
    """
    if size is not None:
        if len(size) != 2 or not all(isinstance(s, (int, np.integer)) and s >= 1 for s in size):
            raise UsageError(f"--size must be two whole numbers of at least 1 (H W), got {list(size)}")
        size = (int(size[0]), int(size[1]))
    if jobs < 1:
        raise UsageError(f"--jobs must be at least 1, got {jobs}")
    paths = [Path(s) for s in sources]
    keys = _keys(paths)
    writer = DatasetWriter(
        out, KIND, schema_version=SCHEMA_VERSION, options={"size": None if size is None else list(size)}
    )
    expected = _dataset_shape(writer)
    results: dict[str, tuple[dict[str, Any] | None, str | None]] = {}
    bar = progress_bar(total=len(paths), desc="prep images", unit="source", disable=not progress)
    todo = [(k, p) for k, p in zip(keys, paths)]
    # until the dataset has a shape, sources run one by one in order: the first that prepares sets it
    while todo and (expected is None or jobs <= 1 or len(todo) == 1):
        key, path = todo.pop(0)
        key, row, err = _run(_Job(key, path, expected, size), writer)
        results[key] = (row, err)
        if row is not None and expected is None:
            expected = row["shape_"]
        bar.update(1)
    if todo:
        with ProcessPoolExecutor(
            max_workers=min(jobs, len(todo), os.cpu_count() or 1), mp_context=get_context("spawn")
        ) as pool:
            futures = [pool.submit(_worker, _Job(k, p, expected, size), writer) for k, p in todo]
            for fut in as_completed(futures):
                key, row, err = fut.result()
                results[key] = (row, err)
                bar.update(1)
    bar.close()
    writer.finalize()
    rows, failures = [], []
    for key, path in zip(keys, paths):
        row, err = results[key]
        if err is not None:
            failures.append((str(path), err))
            continue
        failures.extend(row.pop("failed"))
        row.pop("shape_")
        rows.append(row)
    return rows, failures
