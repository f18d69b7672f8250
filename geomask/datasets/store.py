"""On-disk datasets: a folder of plain-tensor shards and a versioned ``manifest.json``.

Layout of a dataset folder ``ROOT``::

    ROOT/manifest.json        {"format": "geomask-dataset", "kind", "schema_version", "geomask_version",
                               "options", "items": [{"key", "shard", "source", "sha256", ...meta}]}
    ROOT/shards/KEY.pt        one dict of plain tensors per item (``torch.save``; loads with
                              ``weights_only=True``; never a pickled PyG object)
    ROOT/shards/KEY.json      that item's metadata, written after the shard: its presence marks the
                              item complete, so an interrupted run resumes where it stopped

Every file is written to a temporary name in the same folder and renamed into place, so a killed run
leaves either a complete file or none.  ``manifest.json`` is (re)written from the per-item metadata at
:meth:`DatasetWriter.finalize`, sorted by key, so a resumed run and an uninterrupted one produce the same
manifest.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import torch

from geomask.errors import FormatError
from geomask.io.atomic import atomic_write_bytes, atomic_write_text, sweep_temporaries

__all__ = [
    "DatasetReader",
    "DatasetWriter",
    "atomic_write_bytes",
    "atomic_write_text",
    "file_sha256",
    "safe_key",
]

FORMAT = "geomask-dataset"


def _atomic_torch_save(path: Path, obj: Any) -> None:
    # Through memory: torch.save names the archive after the file, and the temporary name must not leak in.
    buf = io.BytesIO()
    torch.save(obj, buf)
    atomic_write_bytes(path, buf.getvalue())


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file, or of all files under a folder (sorted relative paths and contents)."""
    path = Path(path)
    h = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for p in files:
        if path.is_dir():
            h.update(str(p.relative_to(path)).encode())
        with open(p, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


_KEY_RE = re.compile(r"[^A-Za-z0-9_.+-]")


def safe_key(name: str) -> str:
    """A file-name-safe item key derived from ``name``."""
    key = _KEY_RE.sub("_", name).strip(".")
    return key or "item"


def _check_tensors(key: str, tensors: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out = {}
    for name, t in tensors.items():
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"item {key!r}: field {name!r} is {type(t).__name__}, expected a torch.Tensor")
        out[name] = t.detach().cpu().contiguous()
    return out


class DatasetWriter:
    """Writes a dataset item by item; resumable and atomic.

    Args:
        root: the dataset folder (created if missing).
        kind: what the items are, e.g. ``"aig"`` or ``"scan"``.
        schema_version: version of the item schema (the field names and their meaning).
        options: the options that produced the items; a resumed run must pass the same options.

    Raises:
        FormatError: ``root`` holds a dataset of another kind, schema or options.
    """

    def __init__(self, root: str | Path, kind: str, schema_version: int, options: Mapping[str, Any]) -> None:
        from geomask import __version__

        self.root = Path(root)
        self.kind = kind
        self.schema_version = int(schema_version)
        self.options = json.loads(json.dumps(dict(options), sort_keys=True))
        self.version = __version__
        self.shards = self.root / "shards"
        self.shards.mkdir(parents=True, exist_ok=True)
        for folder in (self.root, self.shards):  # what a killed run was writing
            sweep_temporaries(folder)
        header = self.root / "header.json"
        want = {"format": FORMAT, "kind": kind, "schema_version": self.schema_version, "options": self.options}
        if header.exists():
            have = json.loads(header.read_text())
            if have != want:
                raise FormatError(
                    self.root,
                    f"already holds a dataset made with other settings ({have.get('kind')}, schema "
                    f"{have.get('schema_version')}, options {have.get('options')}); use another --out",
                )
        else:
            atomic_write_text(header, json.dumps(want, indent=1, sort_keys=True))

    def has(self, key: str) -> bool:
        """True when item ``key`` is complete on disk (a resumed run skips it)."""
        return (self.shards / f"{key}.json").exists()

    def write(self, key: str, tensors: Mapping[str, torch.Tensor], meta: Mapping[str, Any]) -> None:
        """Write one item: its tensors, then its metadata (which marks it complete)."""
        if safe_key(key) != key:
            raise ValueError(f"item key {key!r} is not file-name safe; use safe_key()")
        _atomic_torch_save(self.shards / f"{key}.pt", _check_tensors(key, tensors))
        record = {"key": key, "shard": f"shards/{key}.pt", **json.loads(json.dumps(dict(meta)))}
        atomic_write_text(self.shards / f"{key}.json", json.dumps(record, sort_keys=True))

    def finalize(self) -> dict[str, Any]:
        """Write ``manifest.json`` from the complete items; returns the manifest."""
        items = [json.loads(p.read_text()) for p in sorted(self.shards.glob("*.json"))]
        items.sort(key=lambda r: r["key"])
        manifest = {
            "format": FORMAT,
            "kind": self.kind,
            "schema_version": self.schema_version,
            "geomask_version": self.version,
            "options": self.options,
            "num_items": len(items),
            "items": items,
        }
        atomic_write_text(self.root / "manifest.json", json.dumps(manifest, indent=1, sort_keys=True) + "\n")
        return manifest


class DatasetReader:
    """Reads a dataset folder written by :class:`DatasetWriter`.

    Indexing yields ``(tensors, meta)`` for an item: a dict of plain tensors and its manifest record.

    Args:
        root: the dataset folder.
        kind: the expected kind (checked when given).
        max_schema: the newest schema version this reader understands.

    Raises:
        FormatError: no manifest, another format or kind, or a schema newer than ``max_schema``.
    """

    def __init__(self, root: str | Path, kind: str | None = None, max_schema: int | None = None) -> None:
        self.root = Path(root)
        path = self.root / "manifest.json"
        if not path.exists():
            raise FormatError(self.root, "no manifest.json: not a geomask dataset (or its preparation never finished)")
        try:
            self.manifest = json.loads(path.read_text())
        except json.JSONDecodeError as e:
            raise FormatError(path, f"manifest is not valid JSON ({e.msg})", line=e.lineno) from None
        if self.manifest.get("format") != FORMAT:
            raise FormatError(path, "not a geomask dataset manifest")
        if kind is not None and self.manifest.get("kind") != kind:
            raise FormatError(path, f"holds {self.manifest.get('kind')!r} items, expected {kind!r}")
        if max_schema is not None and int(self.manifest["schema_version"]) > max_schema:
            raise FormatError(
                path,
                f"schema version {self.manifest['schema_version']} is newer than this geomask reads ({max_schema})",
            )
        self.items: list[dict[str, Any]] = self.manifest["items"]

    @property
    def options(self) -> dict[str, Any]:
        return self.manifest["options"]

    def __len__(self) -> int:
        return len(self.items)

    def keys(self) -> list[str]:
        return [r["key"] for r in self.items]

    def load(self, i: int) -> dict[str, torch.Tensor]:
        rec = self.items[i]
        path = self.root / rec["shard"]
        try:
            return torch.load(path, weights_only=True, map_location="cpu")
        except FileNotFoundError:
            raise FormatError(path, "shard listed in the manifest is missing") from None
        except Exception as e:  # a corrupt shard
            raise FormatError(path, f"cannot load shard ({type(e).__name__}: {e})") from None

    def __getitem__(self, i: int) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        return self.load(i), self.items[i]

    def __iter__(self) -> Iterator[tuple[dict[str, torch.Tensor], dict[str, Any]]]:
        for i in range(len(self)):
            yield self[i]
