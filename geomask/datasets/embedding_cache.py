"""On-disk cache of Verilog chunk embeddings, keyed by (encoder, source content, chunking).

Layout of a cache folder ``ROOT``::

    ROOT/<encoder name>/<source sha256>-<chunking digest>.pt

Each file is one ``torch.save`` of plain tensors (loads with ``weights_only=True``), written atomically:

==============  ==========  =========================================================================
field           shape       meaning
==============  ==========  =========================================================================
``emb``         ``[C, D]``  float32, one row per chunk (unit L2 norm)
``vec``         ``[1, D]``  float32, the whole design (see ``vector`` in :meth:`EmbeddingCache.embed`)
``lines``       ``[C, 2]``  int64 ``(line_start, line_end)`` of each chunk
==============  ==========  =========================================================================

The source hash is :func:`geomask.datasets.store.file_sha256` of the file or folder, so an edited design
misses the cache and the old entry is simply never read again.  A corrupt entry (a file from another
program, a disk error) is recomputed, never trusted.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from geomask.datasets.store import file_sha256, safe_key
from geomask.io.atomic import atomic_write_bytes
from geomask.io.verilog_chunks import LEVELS, split_verilog

if TYPE_CHECKING:
    from geomask.nn.text_encoder import TextEncoder

__all__ = ["VECTOR_MODES", "DesignEmbedding", "EmbeddingCache", "embed_design"]

#: How the whole-design vector is made: ``"mean"`` (normalised mean of the chunk rows) or ``"text"``
#: (the encoder on all chunk texts joined, i.e. the design's code, truncated by the encoder: the reference MGVGA
#: embeds the whole Verilog into one vector with its LLM).
VECTOR_MODES = ("mean", "text")


@dataclass
class DesignEmbedding:
    """The Verilog embedding of one design.

    Attributes:
        emb: ``[C, D]`` float32 chunk embeddings.
        vec: ``[1, D]`` float32 whole-design vector.
        lines: ``[C, 2]`` int64 ``(line_start, line_end)`` per chunk.
        hit: True when it came from the cache.
    """

    emb: torch.Tensor
    vec: torch.Tensor
    lines: torch.Tensor
    hit: bool = False


def embed_design(
    path: str | Path,
    encoder: TextEncoder,
    level: str = "statement",
    max_chars: int | None = 2000,
    vector: str = "mean",
    batch_size: int = 32,
) -> DesignEmbedding:
    """Chunk a Verilog design and embed it (no cache).

    Args:
        path: a Verilog file or design folder.
        encoder: a :class:`~geomask.nn.text_encoder.TextEncoder`.
        level, max_chars: chunking (:func:`~geomask.io.verilog_chunks.split_verilog`).
        vector: one of :data:`VECTOR_MODES`.
        batch_size: texts per encoder call.

    Raises:
        FormatError: the design cannot be read (see ``split_verilog``).
    """
    if vector not in VECTOR_MODES:
        raise ValueError(f"vector must be one of {VECTOR_MODES}, got {vector!r}")
    chunks = split_verilog(path, level=level, max_chars=max_chars)
    emb = encoder.encode([c.text for c in chunks], batch_size=batch_size).float()
    if vector == "mean":
        vec = torch.nn.functional.normalize(emb.mean(0, keepdim=True), dim=1)
    else:
        vec = encoder.encode(["\n".join(c.text for c in chunks)], batch_size=1).float()
    lines = torch.tensor([[c.line_start, c.line_end] for c in chunks], dtype=torch.int64).view(-1, 2)
    return DesignEmbedding(emb.contiguous(), vec.contiguous(), lines)


class EmbeddingCache:
    """A folder of cached design embeddings (see the module docstring).

    Args:
        root: the cache folder (created on first write).
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def path(
        self, encoder_name: str, source_hash: str, level: str, max_chars: int | None = 2000, vector: str = "mean"
    ) -> Path:
        """The cache file of one (encoder, source, chunking) combination."""
        if level not in LEVELS:
            raise ValueError(f"level must be one of {LEVELS}, got {level!r}")
        chunking = json.dumps({"level": level, "max_chars": max_chars, "vector": vector, "v": 1}, sort_keys=True)
        digest = hashlib.sha256(chunking.encode()).hexdigest()[:12]
        return self.root / safe_key(encoder_name) / f"{safe_key(source_hash)}-{level}-{digest}.pt"

    def get(self, path: Path) -> DesignEmbedding | None:
        """The entry at ``path``, or ``None`` when absent or unreadable."""
        try:
            d = torch.load(path, weights_only=True, map_location="cpu")
            out = DesignEmbedding(d["emb"], d["vec"], d["lines"], hit=True)
        except FileNotFoundError:
            return None
        except Exception:  # noqa: BLE001 - a corrupt entry is a miss, recomputed and overwritten
            return None
        ok = out.emb.dim() == 2 and out.vec.shape == (1, out.emb.shape[1]) and out.lines.shape == (out.emb.shape[0], 2)
        return out if ok else None

    def put(self, path: Path, value: DesignEmbedding) -> None:
        """Write an entry atomically."""
        buf = io.BytesIO()
        torch.save({"emb": value.emb.contiguous(), "vec": value.vec.contiguous(), "lines": value.lines}, buf)
        atomic_write_bytes(path, buf.getvalue())

    def embed(
        self,
        design: str | Path,
        encoder: TextEncoder,
        level: str = "statement",
        max_chars: int | None = 2000,
        vector: str = "mean",
        batch_size: int = 32,
        source_hash: str | None = None,
    ) -> DesignEmbedding:
        """:func:`embed_design` through the cache: a hit loads, a miss computes and stores.

        Args:
            design: a Verilog file or design folder.
            encoder: a :class:`~geomask.nn.text_encoder.TextEncoder` (its ``name`` is part of the key).
            level, max_chars, vector, batch_size: as in :func:`embed_design`.
            source_hash: the design's :func:`~geomask.datasets.store.file_sha256`, if already known.
        """
        if vector not in VECTOR_MODES:
            raise ValueError(f"vector must be one of {VECTOR_MODES}, got {vector!r}")
        src = source_hash or file_sha256(design)
        path = self.path(encoder.name, src, level, max_chars, vector)
        found = self.get(path)
        if found is not None:
            return found
        value = embed_design(design, encoder, level, max_chars, vector, batch_size)
        self.put(path, value)
        return value
