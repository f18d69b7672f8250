"""Subword tokenizers trained here with the ``tokenizers`` package (WordPiece, BERT's; or byte-level BPE), saved to
and loaded from a folder (``tokenizer.json``; nothing downloads), and whole-word ids for whole-word masking.

Special tokens, in this order (so their ids are 0..4 in every tokenizer trained here): ``[PAD] [UNK] [CLS] [SEP]
[MASK]``.  Text is lower-cased and accents are stripped (BERT-uncased's normaliser); words are split on whitespace
and punctuation.

Word ids: token ``t`` of a sequence belongs to word ``word_ids[t]`` (0-based within the sequence; a WordPiece
continuation ``##x`` shares its word's id, as Hugging Face's ``DataCollatorForWholeWordMask`` groups them); special
tokens get ``-1``.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

import torch
from torch import Tensor

from geomask.errors import FormatError
from geomask.sequences.vocab import Vocab

__all__ = ["SPECIAL_TOKENS", "encode_texts", "load_tokenizer", "save_tokenizer", "tokenizer_vocab", "train_tokenizer"]

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
FILE = "tokenizer.json"


def train_tokenizer(lines: Iterable[str], vocab_size: int = 8000, kind: str = "wordpiece", min_frequency: int = 2):
    """A ``tokenizers.Tokenizer`` trained on ``lines`` (module docstring for the normaliser and specials).

    Args:
        lines: training text, one string per line or paragraph.
        vocab_size: target vocabulary size (specials included).
        kind: ``"wordpiece"`` (BERT) or ``"bpe"`` (GPT-2/RoBERTa style byte-level BPE).
        min_frequency: pairs seen fewer times are not merged.
    """
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

    if kind == "wordpiece":
        tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
        tok.normalizer = normalizers.BertNormalizer(lowercase=True, strip_accents=True)
        tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        tok.decoder = decoders.WordPiece()
        trainer = trainers.WordPieceTrainer(
            vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=list(SPECIAL_TOKENS)
        )
    elif kind == "bpe":
        tok = Tokenizer(models.BPE(unk_token="[UNK]"))
        tok.normalizer = normalizers.BertNormalizer(lowercase=True, strip_accents=True)
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size,
            min_frequency=min_frequency,
            special_tokens=list(SPECIAL_TOKENS),
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        )
    else:
        raise ValueError(f"tokenizer kind must be 'wordpiece' or 'bpe', got {kind!r}")
    tok.train_from_iterator(lines, trainer=trainer)
    return tok


def save_tokenizer(tok, folder: str | Path) -> Path:
    """Write ``folder/tokenizer.json`` atomically (a temporary folder renamed into place; an existing folder is
    replaced only by a complete one)."""
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    tok.save(str(tmp / FILE))
    if folder.exists():
        shutil.rmtree(folder)
    os.replace(tmp, folder)
    return folder


def load_tokenizer(folder: str | Path):
    """The tokenizer saved in ``folder`` (``tokenizer.json``; a path to the file itself works too).

    Raises:
        FormatError: no such file, or not a tokenizer.
    """
    from tokenizers import Tokenizer

    path = Path(folder)
    path = path / FILE if path.is_dir() else path
    if not path.is_file():
        raise FormatError(
            path, "no tokenizer here (a folder written by geomask prep text holds tokenizer/tokenizer.json)"
        )
    try:
        return Tokenizer.from_file(str(path))
    except Exception as e:  # the package raises a bare Exception on bad JSON
        raise FormatError(path, f"not a tokenizer file ({e})") from None


def tokenizer_vocab(tok) -> Vocab:
    """The :class:`Vocab` of a tokenizer with the specials of :data:`SPECIAL_TOKENS`; its name hashes the
    tokenizer's JSON, so two datasets tokenized alike have the same vocab name."""
    ids = {t: tok.token_to_id(t) for t in SPECIAL_TOKENS}
    missing = [t for t, i in ids.items() if i is None]
    if missing:
        raise ValueError(f"tokenizer lacks the special token(s) {', '.join(missing)}")
    digest = hashlib.sha256(tok.to_str().encode()).hexdigest()[:12]
    return Vocab(
        tok.get_vocab_size(),
        ids["[PAD]"],
        ids["[MASK]"],
        tuple(ids.values()),
        ids["[CLS]"],
        ids["[SEP]"],
        f"tokenizer-{digest}",
    )


def encode_texts(tok, texts: Sequence[str]) -> tuple[list[Tensor], list[Tensor]]:
    """Token ids and word ids (module docstring) of every text, without specials: two lists of ``[n_i]`` int64.

    Batched through the tokenizer's Rust ``encode_batch`` (parallel over texts)."""
    encs = tok.encode_batch(list(texts), add_special_tokens=False)
    ids = [torch.tensor(e.ids, dtype=torch.long) for e in encs]
    words = [torch.tensor([-1 if w is None else w for w in e.word_ids], dtype=torch.long) for e in encs]
    return ids, words
