"""Text datasets: ``geomask prep text`` (plain text → a tokenizer trained or loaded → token-id shards), the reader
of those folders and of ``geomask prep sequences`` folders, and the GENERATED default text.

Folder layout (a :mod:`geomask.datasets.store` dataset, manifest kind ``text`` or ``sequences``, schema 1)::

    ROOT/tokenizer/tokenizer.json     (text only) the tokenizer the ids belong to
    ROOT/shards/KEY.pt                one source file: ids [T] int32 (all its records' tokens, no specials),
                                      offsets [R + 1] int64 (record r is ids[offsets[r]:offsets[r+1]]),
                                      word_ids [T] int32 (text only; word within its record)
    manifest options                  {"vocab": Vocab.to_dict(), ...}

A record is one non-empty line (text) or one sequence (sequences).  Reading, a record longer than ``max_len - 2``
tokens is cut into consecutive pieces of that length (nothing is dropped); each piece is one item, ``[CLS] piece
[SEP]`` in the batch.

Bad input: a line that is not UTF-8 is one ``error`` line (``FILE:LINE: ...``) and is skipped; empty lines are
skipped and counted in one ``warning`` line per file (WikiText separates paragraphs by empty lines, so one line
each would be hundreds of lines of noise); every other line is kept.  A source that cannot be read is one error
line and the others are still prepared.  Resumable: a source already written is skipped; the tokenizer is trained
once (on every source's good lines) and saved before any shard, then reused.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
import torch

from geomask.datasets.store import DatasetReader, DatasetWriter, safe_key
from geomask.errors import FormatError
from geomask.io.atomic import build_once
from geomask.sequences.batch import SequenceItem, collate_sequences
from geomask.sequences.vocab import Vocab

__all__ = [
    "SCHEMA",
    "GENERATED_VERBS",
    "GeneratedTextSpec",
    "SequenceDataset",
    "build_generated_text",
    "collate_text",
    "generate_text",
    "open_generated_text",
    "open_sequences",
    "open_text",
    "prep_text",
    "read_lines",
    "source_key",
]

SCHEMA = 1
DEFAULT_MAX_LEN = 128


def source_key(path: Path) -> str:
    """The item key of a source file: its name and a hash of its resolved path."""
    h = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:8]
    return safe_key(f"{path.name}-{h}")


def read_lines(path: Path, failures: list, warnings: list) -> list[str]:
    """The good lines of a text file (module docstring for what is skipped and reported)."""
    out, empty = [], []
    with open(path, "rb") as f:
        for no, raw in enumerate(f, 1):
            try:
                line = raw.decode("utf-8").strip()
            except UnicodeDecodeError as e:
                failures.append(
                    (str(path), f"{path}:{no}: undecodable bytes at column {e.start + 1} (not UTF-8); line skipped")
                )
                continue
            if line:
                out.append(line)
            else:
                empty.append(no)
    if empty:
        first = ", ".join(map(str, empty[:5])) + (", ..." if len(empty) > 5 else "")
        warnings.append((str(path), f"{path}: {len(empty)} empty line(s) skipped (lines {first})"))
    return out


def _records_shard(ids: list[torch.Tensor], words: list[torch.Tensor] | None) -> dict[str, torch.Tensor]:
    lengths = torch.tensor([len(t) for t in ids], dtype=torch.long)
    offsets = torch.cat([torch.zeros(1, dtype=torch.long), torch.cumsum(lengths, 0)])
    cat = torch.cat(ids) if ids else torch.zeros(0, dtype=torch.long)
    out = {"ids": cat.to(torch.int32), "offsets": offsets}
    if words is not None:
        out["word_ids"] = (torch.cat(words) if words else torch.zeros(0, dtype=torch.long)).to(torch.int32)
    return out


def prep_text(
    sources: Sequence[str | Path],
    out: str | Path,
    *,
    tokenizer: str | Path | None = None,
    vocab_size: int = 8000,
    kind: str = "wordpiece",
    progress: bool = True,
) -> tuple[list[dict[str, Any]], list[tuple[str, str]], list[tuple[str, str]]]:
    """Prepare plain-text files into a ``text`` dataset folder ``out`` (module docstring).

    Args:
        sources: text files (one record per non-empty line) or folders of ``*.txt``.
        out: the dataset folder.
        tokenizer: a folder with ``tokenizer.json`` to use; ``None``: ``out/tokenizer`` if it exists (a resumed
            run), else one trained on the sources (``vocab_size``, ``kind``) and saved there.

    Returns:
        ``(rows, failures, warnings)``: one summary row per source written, ``(source, message)`` lines.
    """
    from geomask.sequences.tokenizer import load_tokenizer, save_tokenizer, tokenizer_vocab, train_tokenizer

    out = Path(out)
    files: list[Path] = []
    failures: list[tuple[str, str]] = []
    warnings: list[tuple[str, str]] = []
    for s in map(Path, sources):
        if s.is_dir():
            files += sorted(s.glob("*.txt"))
        elif s.is_file():
            files.append(s)
        else:
            failures.append((str(s), f"{s}: no such file or folder"))
    texts: dict[Path, list[str]] = {}
    for f in files:
        try:
            texts[f] = read_lines(f, failures, warnings)
        except OSError as e:
            failures.append((str(f), f"{f}: cannot read ({e.strerror or e})"))
    tok_dir = out / "tokenizer"
    if tokenizer is not None:
        tok = load_tokenizer(tokenizer)
        if not (tok_dir / "tokenizer.json").is_file():
            save_tokenizer(tok, tok_dir)
    elif (tok_dir / "tokenizer.json").is_file():
        tok = load_tokenizer(tok_dir)
    else:
        if not any(texts.values()):
            return [], failures, warnings
        tok = train_tokenizer((line for lines in texts.values() for line in lines), vocab_size, kind)
        out.mkdir(parents=True, exist_ok=True)
        save_tokenizer(tok, tok_dir)
    vocab = tokenizer_vocab(tok)
    writer = DatasetWriter(out, "text", SCHEMA, {"vocab": vocab.to_dict()})
    rows = []
    for f, lines in texts.items():
        key = source_key(f)
        if not writer.has(key):
            from geomask.sequences.tokenizer import encode_texts

            ids, words = encode_texts(tok, lines)
            keep = [i for i, t in enumerate(ids) if len(t)]
            ids, words = [ids[i] for i in keep], [words[i] for i in keep]
            shard = _records_shard(ids, words)
            writer.write(key, shard, {"source": str(f), "records": len(ids), "tokens": int(shard["ids"].numel())})
            if progress:
                print(f"  {f}: {len(ids)} lines", file=sys.stderr)
        rec = json.loads((out / "shards" / f"{key}.json").read_text())
        rows.append({"source": f.name, "records": rec["records"], "tokens": rec["tokens"]})
    writer.finalize()
    return rows, failures, warnings


class SequenceDataset(torch.utils.data.Dataset):
    """The items of a ``text`` or ``sequences`` folder: records cut into pieces of ``max_len - 2`` tokens.

    Shapes:
        item: :class:`~geomask.sequences.batch.SequenceItem` (``ids [n]`` int64, ``word_ids [n]`` or ``None``).
    """

    def __init__(self, root: str | Path, kind: str, max_len: int = DEFAULT_MAX_LEN) -> None:
        reader = DatasetReader(root, kind, SCHEMA)
        try:
            self.vocab = Vocab.from_dict(reader.options["vocab"])
        except (KeyError, TypeError, ValueError) as e:
            raise FormatError(Path(root) / "manifest.json", f"no valid vocab in the options ({e})") from None
        piece = max_len - int(self.vocab.cls_id is not None) - int(self.vocab.sep_id is not None)
        ids, words, starts, ends = [], [], [], []
        base = 0
        for i in range(len(reader)):
            t = reader.load(i)
            ids.append(t["ids"].long())
            words.append(t["word_ids"].long() if "word_ids" in t else None)
            off = t["offsets"]
            lens = off[1:] - off[:-1]
            pieces = (lens + piece - 1) // piece
            rec = torch.arange(len(lens)).repeat_interleave(pieces)
            first = torch.cumsum(pieces, 0) - pieces
            k = torch.arange(int(pieces.sum())) - first[rec]
            s = off[:-1][rec] + k * piece
            starts.append(s + base)
            ends.append(torch.minimum(s + piece, off[1:][rec]) + base)
            base += int(off[-1])
        self.ids = torch.cat(ids) if ids else torch.zeros(0, dtype=torch.long)
        self.word_ids = torch.cat(words) if ids and all(w is not None for w in words) else None
        self.starts = torch.cat(starts) if starts else torch.zeros(0, dtype=torch.long)
        self.ends = torch.cat(ends) if ends else torch.zeros(0, dtype=torch.long)

    def __len__(self) -> int:
        return self.starts.numel()

    def __getitem__(self, i: int) -> SequenceItem:
        s, e = int(self.starts[i]), int(self.ends[i])
        w = None
        if self.word_ids is not None:
            w = self.word_ids[s:e]
            w = w - w[0] if len(w) else w  # a piece's words count from 0
        return SequenceItem(self.ids[s:e], w, self.vocab)


def open_text(root: Path, cfg: Any, seed: int) -> SequenceDataset:
    """A ``geomask prep text`` folder (``max_len`` 128 tokens per item with specials)."""
    return SequenceDataset(root, "text")


def open_sequences(root: Path, cfg: Any, seed: int) -> SequenceDataset:
    """A ``geomask prep sequences`` folder (ESM's alphabet, 128 tokens per item with ``<cls>``/``<eos>``)."""
    return SequenceDataset(root, "sequences")


def collate_text(items: Sequence[SequenceItem], cfg: Any = None) -> Any:
    """:class:`~geomask.sequences.batch.SequenceBatch` of the items, or with ``cfg.pack_length > 0`` (the run's
    ``data`` section) a :class:`~geomask.sequences.packing.PackedSequenceBatch` of rows of that many tokens."""
    pack = getattr(cfg, "pack_length", 0) if cfg is not None else 0
    if pack:
        from geomask.sequences.packing import collate_packed

        return collate_packed(items, pack)
    return collate_sequences(items)


# ---------------------------------------------------------------------------------------------------
# GENERATED default text: sentences of a small grammar (not real text), the CPU configs' default data

_NOUNS = {
    "animal": ["cat", "dog", "horse", "bird", "fox", "rabbit", "mouse", "goat"],
    "person": ["farmer", "teacher", "doctor", "child", "sailor", "painter", "baker", "king"],
    "thing": ["table", "stone", "letter", "basket", "window", "bridge", "lamp", "river"],
}
GENERATED_VERBS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {"animal": ("eats", "chases", "sees", "follows"), "person": ("reads", "builds", "paints", "carries")}
)
"""The generated grammar's verbs per subject class (read-only; probes that swap a verb's class use it)."""
_ADJ = {
    "animal": ["hungry", "quick", "small", "wild"],
    "person": ["old", "kind", "tired", "clever"],
    "thing": ["heavy", "broken", "bright", "wooden"],
}
_PLACES = ["in the garden", "near the village", "on the hill", "by the sea", "under the bridge", "at the market"]
_TIMES = ["in the morning", "at night", "every day", "after the rain", "before winter"]


def generate_text(sentences: int, seed: int = 0) -> list[str]:
    """``sentences`` GENERATED English-like sentences (a fixed grammar with agreement: adjectives and verbs fit
    their noun's class, a place and a time phrase from fixed lists), a pure function of ``(sentences, seed)``."""
    rng = np.random.default_rng(seed)
    out = []
    classes = list(GENERATED_VERBS)
    for _ in range(sentences):
        c = classes[rng.integers(len(classes))]
        subj = _NOUNS[c][rng.integers(8)]
        adj = _ADJ[c][rng.integers(4)]
        verb = GENERATED_VERBS[c][rng.integers(4)]
        oc = "animal" if c == "animal" and verb in ("chases", "follows", "sees") and rng.random() < 0.7 else "thing"
        if c == "animal" and verb == "eats":
            oc = "thing" if rng.random() < 0.3 else "animal"
        obj = _NOUNS[oc][rng.integers(8)]
        oadj = _ADJ[oc][rng.integers(4)]
        place = _PLACES[rng.integers(len(_PLACES))]
        time = _TIMES[rng.integers(len(_TIMES))]
        out.append(f"the {adj} {subj} {verb} the {oadj} {obj} {place} {time} .")
    return out


@dataclass(frozen=True)
class GeneratedTextSpec:
    """Which GENERATED text: ``lines`` lines of ``sentences_per_line`` sentences from seed ``seed``, a WordPiece
    tokenizer of ``vocab_size`` trained on it, built into ``cache`` (empty: ``$GEOMASK_CACHE``, else
    ``<repo>/out/cache``).  The ``data.generated_text`` config section."""

    lines: int = 2000
    sentences_per_line: int = 3
    seed: int = 0
    vocab_size: int = 200
    cache: str = ""


GENERATOR_VERSION = 2  # 2: the WordPiece tokenizer is trained reproducibly (geomask.sequences.tokenizer)


def build_generated_text(spec: GeneratedTextSpec = GeneratedTextSpec()) -> Path:
    """The cache folder of the GENERATED text of ``spec``, built on first use by prep text's code
    (:func:`geomask.io.atomic.build_once`: under a file lock, renamed into place, the same bytes on every build)."""
    from geomask.datasets.cache import cache_root

    opts = {**spec.__dict__, "version": GENERATOR_VERSION}
    opts.pop("cache")
    digest = hashlib.sha256(json.dumps(opts, sort_keys=True).encode()).hexdigest()[:12]
    out = cache_root(spec.cache) / f"generated_text-{spec.lines}-seed{spec.seed}-{digest}"

    def write(work: Path) -> Path:
        sents = generate_text(spec.lines * spec.sentences_per_line, spec.seed)
        k = spec.sentences_per_line
        src = work / "generated.txt"
        src.write_text("\n".join(" ".join(sents[i : i + k]) for i in range(0, len(sents), k)) + "\n")
        prep_text([src], work / "data", vocab_size=spec.vocab_size, progress=False)
        return work / "data"

    message = f"generating {spec.lines} lines of text (GENERATED, not real text) into {out} (first use) ..."
    return build_once(out, message, write)


def open_generated_text(root: None, cfg: Any, seed: int) -> SequenceDataset:
    """GENERATED text (:func:`generate_text`), built once into the cache; its own seed, not the run's."""
    spec = getattr(cfg, "generated_text", None) or GeneratedTextSpec()
    return SequenceDataset(build_generated_text(spec), "text")
