"""Receptor–peptide pairs (PepMLM): ``geomask prep peptides`` (CSV → a ``peptide_pairs`` dataset folder), its
reader and batch, and GENERATED pairs (the CPU config's default data).

Folder layout (a :mod:`geomask.datasets.store` dataset, manifest kind ``peptide_pairs``, schema 1)::

    ROOT/shards/KEY.pt     one CSV: receptor [T_r] int32, receptor_offsets [R + 1] int64,
                           peptide [T_p] int32, peptide_offsets [R + 1] int64 (ESM-alphabet ids, no specials;
                           pair r is receptor[ro[r]:ro[r+1]], peptide[po[r]:po[r+1]])
    manifest options       {"vocab": amino_vocab().to_dict(), "receptor_column", "peptide_column"}

Bad input: a row whose receptor or peptide is empty or holds a letter outside the 25 residues is one error line
(``FILE:LINE: ...``) and is skipped, the other rows are kept; a file that cannot be read or lacks a column is one
error line and the other files are still prepared.  Resumable: a source already written is skipped.

The batch, :class:`PeptidePairBatch`, is a :class:`~geomask.sequences.batch.SequenceBatch` of
``<cls> receptor <eos> peptide <eos>`` (the peptide at the C-terminus, ``<eos>`` as separator) with
``segment_ids [B, L]`` (0: ``<cls>``, receptor and separator; 1: the peptide and its ``<eos>``; -1: padding), and its
:meth:`~PeptidePairBatch.layout` is the ``terminus`` masker's
:class:`~geomask.masking.sequence_terminus.TerminusLayout`.  A receptor longer than ``max_receptor`` residues
keeps its first ``max_receptor``.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from geomask.datasets.store import DatasetReader, DatasetWriter
from geomask.datasets.text import source_key
from geomask.errors import FormatError
from geomask.io.atomic import build_once
from geomask.masking.sequence_terminus import TerminusLayout
from geomask.sequences.batch import SequenceBatch, SequenceItem, collate_sequences
from geomask.sequences.vocab import AMINO_ACIDS, Vocab, amino_vocab, encode_protein, invalid_residues

__all__ = [
    "SCHEMA",
    "GeneratedPeptidesSpec",
    "PeptidePair",
    "PeptidePairBatch",
    "PeptidePairDataset",
    "build_generated_peptides",
    "collate_peptide_pairs",
    "generate_peptide_pairs",
    "open_generated_peptides",
    "open_peptide_pairs",
    "prep_peptides",
    "read_pairs",
]

SCHEMA = 1
KIND = "peptide_pairs"
DEFAULT_MAX_RECEPTOR = 250


@dataclass(frozen=True)
class PeptidePair:
    """One pair: ``receptor [n_r]`` and ``peptide [n_p]`` int64 residue ids (no specials), their vocab."""

    receptor: Tensor
    peptide: Tensor
    vocab: Vocab


@dataclass(frozen=True)
class PeptidePairBatch(SequenceBatch):
    """``<cls> receptor <eos> peptide <eos>`` padded (module docstring); ``segment_ids [B, L]`` int64."""

    segment_ids: Tensor | None = None

    def to(self, device: torch.device | str) -> PeptidePairBatch:
        moved = super().to(device)
        return replace(moved, segment_ids=None if self.segment_ids is None else self.segment_ids.to(device))

    def layout(self) -> TerminusLayout:
        """The ``terminus`` masker's layout: ``maskable`` and ``segment_ids``."""
        return TerminusLayout(self.maskable, self.word_ids, self.segment_ids)


def collate_peptide_pairs(items: Sequence[PeptidePair], max_receptor: int | None = None) -> PeptidePairBatch:
    """:class:`PeptidePairBatch` of the pairs (receptors cut to their first ``max_receptor`` residues)."""
    if not items:
        raise ValueError("cannot collate no peptide pairs")
    vocab = items[0].vocab
    if vocab.sep_id is None or vocab.cls_id is None:
        raise ValueError(f"peptide pairs need a vocab with cls and sep ids, got {vocab.name!r}")
    rec = [it.receptor if max_receptor is None else it.receptor[:max_receptor] for it in items]
    sep = torch.tensor([vocab.sep_id], dtype=torch.long)
    seq = collate_sequences([SequenceItem(torch.cat([r, sep, it.peptide]), None, vocab) for r, it in zip(rec, items)])
    n_r = torch.tensor([r.numel() for r in rec], dtype=torch.long)
    pos = torch.arange(seq.ids.size(1))[None, :]
    seg = (pos >= n_r[:, None] + 2).long().masked_fill(~seq.attention_mask, -1)
    return PeptidePairBatch(seq.ids, seq.attention_mask, seq.lengths, vocab, None, None, seg)


# ---------------------------------------------------------------------------------------------------
# prep


def read_pairs(
    path: Path, receptor_column: str = "Receptor Sequence", peptide_column: str = "Sequence"
) -> tuple[list[tuple[str, str]], list[str]]:
    """``([(receptor, peptide)], [error line])`` of one CSV (rows with bad residues or an empty sequence are
    error lines; module docstring).

    Raises:
        OSError: unreadable file.  ValueError: not UTF-8, or a column missing (one message).
    """
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(f"{path}: undecodable bytes at offset {e.start} (not UTF-8)") from None
    reader = csv.DictReader(io.StringIO(text))
    have = reader.fieldnames or []
    for col in (receptor_column, peptide_column):
        if col not in have:
            raise ValueError(f"{path}: no column {col!r} (columns: {', '.join(have)})")
    pairs, errors = [], []
    for k, row in enumerate(reader):
        line = k + 2
        r, p = (row.get(receptor_column) or "").strip(), (row.get(peptide_column) or "").strip()
        bad = [
            f"empty {what}" if not s else f"invalid residue letter(s) {''.join(invalid_residues(s))} in the {what}"
            for what, s in (("receptor", r), ("peptide", p))
            if not s or invalid_residues(s)
        ]
        if bad:
            errors.append(f"{path}:{line}: {'; '.join(bad)}; row skipped")
            continue
        pairs.append((r, p))
    return pairs, errors


def _pairs_shard(pairs: Sequence[tuple[str, str]]) -> dict[str, Tensor]:
    out = {}
    for name, col in (("receptor", 0), ("peptide", 1)):
        ids = encode_protein([p[col] for p in pairs])
        lengths = torch.tensor([len(t) for t in ids], dtype=torch.long)
        out[name] = (torch.cat(ids) if ids else torch.zeros(0, dtype=torch.long)).to(torch.int32)
        out[f"{name}_offsets"] = torch.cat([torch.zeros(1, dtype=torch.long), torch.cumsum(lengths, 0)])
    return out


def prep_peptides(
    sources: Sequence[str | Path],
    out: str | Path,
    *,
    receptor_column: str = "Receptor Sequence",
    peptide_column: str = "Sequence",
    progress: bool = True,
) -> tuple[list[dict[str, Any]], list[tuple[str, str]]]:
    """Prepare receptor–peptide CSVs into a ``peptide_pairs`` folder (module docstring).

    Returns:
        ``(rows, failures)``: a summary row per source, ``(source, message)`` per skipped row or source.
    """
    out = Path(out)
    opts = {"vocab": amino_vocab().to_dict(), "receptor_column": receptor_column, "peptide_column": peptide_column}
    writer = DatasetWriter(out, KIND, SCHEMA, opts)
    rows, failures = [], []
    for src in map(Path, sources):
        if not src.is_file():
            failures.append((str(src), f"{src}: no such file"))
            continue
        key = source_key(src)
        if writer.has(key):
            rows.append({"source": src.name, "pairs": "(written before)"})
            continue
        try:
            pairs, errors = read_pairs(src, receptor_column, peptide_column)
        except OSError as e:
            failures.append((str(src), f"{src}: cannot read ({e.strerror or e})"))
            continue
        except ValueError as e:
            failures.append((str(src), str(e)))
            continue
        failures += [(str(src), m) for m in errors]
        shard = _pairs_shard(pairs)
        writer.write(key, shard, {"source": str(src), "pairs": len(pairs)})
        rows.append({"source": src.name, "pairs": len(pairs), "skipped": len(errors)})
        if progress:
            print(f"  {src}: {len(pairs)} pairs", file=sys.stderr)
    writer.finalize()
    return rows, failures


class PeptidePairDataset(torch.utils.data.Dataset):
    """The pairs of a ``peptide_pairs`` folder.

    Shapes:
        item: :class:`PeptidePair` (``receptor [n_r]``, ``peptide [n_p]`` int64).
    """

    def __init__(self, root: str | Path, max_receptor: int = DEFAULT_MAX_RECEPTOR) -> None:
        reader = DatasetReader(root, KIND, SCHEMA)
        try:
            self.vocab = Vocab.from_dict(reader.options["vocab"])
        except (KeyError, TypeError, ValueError) as e:
            raise FormatError(Path(root) / "manifest.json", f"no valid vocab in the options ({e})") from None
        self.max_receptor = max_receptor
        parts: dict[str, list[Tensor]] = {"receptor": [], "peptide": [], "ro": [], "po": []}
        base = {"receptor": 0, "peptide": 0}
        for i in range(len(reader)):
            t = reader.load(i)
            for name, off in (("receptor", "ro"), ("peptide", "po")):
                parts[name].append(t[name].long())
                o = t[f"{name}_offsets"]
                parts[off].append(o[:-1] + base[name])
                base[name] += int(o[-1])
        self.receptor = torch.cat(parts["receptor"]) if parts["receptor"] else torch.zeros(0, dtype=torch.long)
        self.peptide = torch.cat(parts["peptide"]) if parts["peptide"] else torch.zeros(0, dtype=torch.long)
        starts_r = torch.cat(parts["ro"]) if parts["ro"] else torch.zeros(0, dtype=torch.long)
        starts_p = torch.cat(parts["po"]) if parts["po"] else torch.zeros(0, dtype=torch.long)
        self.r_off = torch.cat([starts_r, torch.tensor([self.receptor.numel()])])
        self.p_off = torch.cat([starts_p, torch.tensor([self.peptide.numel()])])

    def __len__(self) -> int:
        return self.r_off.numel() - 1

    def __getitem__(self, i: int) -> PeptidePair:
        r = self.receptor[int(self.r_off[i]) : int(self.r_off[i + 1])][: self.max_receptor]
        return PeptidePair(r, self.peptide[int(self.p_off[i]) : int(self.p_off[i + 1])], self.vocab)


def open_peptide_pairs(root: Path, cfg: Any, seed: int) -> PeptidePairDataset:
    """A ``geomask prep peptides`` folder (receptors cut to 250 residues)."""
    return PeptidePairDataset(root)


# ---------------------------------------------------------------------------------------------------
# GENERATED pairs: not real binders, a rule a small model can learn (the CPU config's default data)

_MOTIFS = ("KLWRFGEDPH", "DEYHWKAGRL", "GPRFLKWHDE", "WHKDGLEFRP")


def generate_peptide_pairs(pairs: int, seed: int = 0) -> list[tuple[str, str]]:
    """``pairs`` GENERATED (receptor, peptide) strings, a pure function of ``(pairs, seed)``: a receptor of 20–40
    random standard residues; its peptide the first 5–10 residues of one of four fixed 10-residue motifs, the
    motif chosen by the receptor's first residue (its index in ESM's order, mod 4).  Not real binders: a rule in
    which the peptide depends on its receptor and its order matters."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(pairs):
        r = rng.integers(0, len(AMINO_ACIDS), int(rng.integers(20, 41)))
        k = int(rng.integers(5, 11))
        rec = "".join(AMINO_ACIDS[i] for i in r)
        out.append((rec, _MOTIFS[int(r[0]) % 4][:k]))
    return out


@dataclass(frozen=True)
class GeneratedPeptidesSpec:
    """Which GENERATED pairs (:func:`generate_peptide_pairs`): ``pairs`` of them from ``seed``, built into ``cache``
    (empty: ``$GEOMASK_CACHE``, else ``<repo>/out/cache``).  The ``data.generated_peptides`` section's fields."""

    pairs: int = 2000
    seed: int = 0
    cache: str = ""


GENERATOR_VERSION = 1


def build_generated_peptides(spec: GeneratedPeptidesSpec = GeneratedPeptidesSpec()) -> Path:
    """The cache folder of the GENERATED pairs of ``spec``, built on first use by :func:`prep_peptides`
    (:func:`geomask.io.atomic.build_once`: under a file lock, renamed into place, the same bytes on every build)."""
    from geomask.datasets.cache import cache_root

    opts = {"pairs": spec.pairs, "seed": spec.seed, "version": GENERATOR_VERSION}
    digest = hashlib.sha256(json.dumps(opts, sort_keys=True).encode()).hexdigest()[:12]
    out = cache_root(spec.cache) / f"generated_peptides-{spec.pairs}-seed{spec.seed}-{digest}"

    def write(work: Path) -> Path:
        src = work / "generated_pairs.csv"
        rows = generate_peptide_pairs(spec.pairs, spec.seed)
        src.write_text("Receptor Sequence,Sequence\n" + "".join(f"{r},{p}\n" for r, p in rows))
        prep_peptides([src], work / "data", progress=False)
        return work / "data"

    message = f"generating {spec.pairs} peptide pairs (GENERATED, not real binders) into {out} (first use) ..."
    return build_once(out, message, write)


def open_generated_peptides(root: None, cfg: Any, seed: int) -> PeptidePairDataset:
    """GENERATED pairs (:func:`generate_peptide_pairs`), built once into the cache (``data.generated_peptides`` if
    the config has that section, else :class:`GeneratedPeptidesSpec`'s defaults)."""
    sec = getattr(cfg, "generated_peptides", None) if cfg is not None else None
    spec = GeneratedPeptidesSpec(sec.pairs, sec.seed, sec.cache) if sec is not None else GeneratedPeptidesSpec()
    return PeptidePairDataset(build_generated_peptides(spec))
