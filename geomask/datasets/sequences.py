"""``geomask prep sequences``: protein sequences (FASTA, CSV with a column, plain text) → a ``sequences`` dataset
folder of ESM-alphabet ids (the format of :mod:`geomask.datasets.text`, manifest kind ``sequences``).

Sources by suffix: ``.fasta .fa .faa .fas`` (records ``>header`` then sequence lines), ``.csv`` (the column
``column``, default ``Sequence``), anything else plain text (one sequence per non-empty line).  A record with a
letter outside the 25 residues (:data:`~geomask.sequences.vocab.RESIDUES`; lower case is accepted), an empty
record, or an undecodable line is one error line (``FILE:LINE: ...``) and is skipped; the others are kept.  A
source that cannot be read (or a CSV without the column) is one error line; the others are still prepared.
Resumable: a source already written is skipped.
"""

from __future__ import annotations

import csv
import io
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from geomask.datasets.store import DatasetWriter
from geomask.datasets.text import SCHEMA, _records_shard, source_key
from geomask.sequences.vocab import amino_vocab, encode_protein, invalid_residues

__all__ = ["FASTA_SUFFIXES", "prep_sequences", "read_records"]

FASTA_SUFFIXES = (".fasta", ".fa", ".faa", ".fas")


def read_records(path: Path, column: str = "Sequence") -> tuple[list[tuple[int, str, str]], list[str]]:
    """``([(line, name, sequence)], [error message])`` of one source (module docstring for the formats).

    Raises:
        OSError: unreadable file.  ValueError: a CSV without ``column`` (one message).
    """
    raw = path.read_bytes()
    errors: list[str] = []
    lines: list[tuple[int, str]] = []
    for no, b in enumerate(raw.splitlines(), 1):
        try:
            lines.append((no, b.decode("utf-8")))
        except UnicodeDecodeError as e:
            errors.append(f"{path}:{no}: undecodable bytes at column {e.start + 1} (not UTF-8); record skipped")
    recs: list[tuple[int, str, str]] = []
    suffix = path.suffix.lower()
    if suffix in FASTA_SUFFIXES:
        name, start, parts = None, 0, []
        for no, line in lines + [(len(lines) + 1, ">")]:
            if line.startswith(">"):
                if name is not None:
                    recs.append((start, name, "".join(parts)))
                name, start, parts = line[1:].strip(), no, []
            elif line.strip():
                if name is None:
                    errors.append(f"{path}:{no}: sequence line before any '>' header; skipped")
                    continue
                parts.append(line.strip())
    elif suffix == ".csv":
        reader = csv.DictReader(io.StringIO("\n".join(line for _, line in lines)))
        if reader.fieldnames is None or column not in reader.fieldnames:
            have = ", ".join(reader.fieldnames or [])
            raise ValueError(f"{path}: no column {column!r} (columns: {have}); use --column")
        for k, row in enumerate(reader):
            recs.append((k + 2, f"row {k + 1}", (row.get(column) or "").strip()))
    else:
        recs = [(no, f"line {no}", line.strip()) for no, line in lines]
        recs = [r for r in recs if r[2]]
    return recs, errors


def prep_sequences(
    sources: Sequence[str | Path], out: str | Path, *, column: str = "Sequence", progress: bool = True
) -> tuple[list[dict[str, Any]], list[tuple[str, str]]]:
    """Prepare protein sequence files into a ``sequences`` dataset folder (module docstring).

    Returns:
        ``(rows, failures)``: one row per source written, ``(source, message)`` per skipped record or source.
    """
    out = Path(out)
    vocab = amino_vocab()
    writer = DatasetWriter(out, "sequences", SCHEMA, {"vocab": vocab.to_dict(), "column": column})
    rows, failures = [], []
    for src in map(Path, sources):
        key = source_key(src) if src.exists() else None
        if key is not None and writer.has(key):
            rows.append({"source": src.name, "records": "(written before)"})
            continue
        try:
            recs, errors = read_records(src, column)
        except OSError as e:
            failures.append((str(src), f"{src}: cannot read ({e.strerror or e})"))
            continue
        except ValueError as e:
            failures.append((str(src), str(e)))
            continue
        failures += [(str(src), m) for m in errors]
        good = []
        for no, name, seq in recs:
            if not seq:
                failures.append((str(src), f"{src}:{no}: empty sequence ({name}); skipped"))
                continue
            bad = invalid_residues(seq)
            if bad:
                failures.append((str(src), f"{src}:{no}: invalid residue letter(s) {''.join(bad)} in {name}; skipped"))
                continue
            good.append(seq)
        ids = encode_protein(good)
        shard = _records_shard(ids, None)
        writer.write(key, shard, {"source": str(src), "records": len(ids), "tokens": int(shard["ids"].numel())})
        rows.append({"source": src.name, "records": len(ids), "residues": int(shard["ids"].numel())})
        if progress:
            print(f"  {src}: {len(ids)} sequences", file=sys.stderr)
    writer.finalize()
    return rows, failures
