"""Subword tokenizers trained here with the ``tokenizers`` package (WordPiece, BERT's; or byte-level BPE), saved to
and loaded from a folder (``tokenizer.json``; nothing downloads), and whole-word ids for whole-word masking.

Special tokens, in this order (so their ids are 0..4 in every tokenizer trained here): ``[PAD] [UNK] [CLS] [SEP]
[MASK]``.  Text is lower-cased and accents are stripped (BERT-uncased's normaliser); words are split on whitespace
and punctuation.

Word ids: token ``t`` of a sequence belongs to word ``word_ids[t]`` (0-based within the sequence; a WordPiece
continuation ``##x`` shares its word's id, as Hugging Face's ``DataCollatorForWholeWordMask`` groups them); special
tokens get ``-1``.

Reproducibility: training is a pure function of the text and the options, the same in every process and on every
machine.  The ``tokenizers`` package's ``WordPieceTrainer`` is not (huggingface/tokenizers#1794): its BPE core
creates the continuation tokens ``##x`` while iterating a hash map of words, so their ids follow the per-process
hash order, and those ids break ties between equally frequent pairs, so even the learned vocabulary differs from run
to run.  WordPiece is therefore trained here as plain BPE on words whose non-initial characters are re-coded as
unused private-use characters (one per ``##x``): every symbol is then in the trainer's alphabet, which it sorts by
code point, so ids and tie-breaks are fixed; the learned tokens are mapped back (``##`` + the original characters).
The result is one of the vocabularies the package's own trainer can produce (the one whose ``##x`` ids come in
character order).  Byte-level BPE has no continuation tokens (all its symbols are the sorted byte alphabet) and is
already reproducible.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections import Counter
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
        vocab = _train_wordpiece_vocab(tok, lines, vocab_size, min_frequency)
        tok.model = models.WordPiece(vocab, unk_token="[UNK]")
        tok.add_special_tokens(list(SPECIAL_TOKENS))
        return tok
    if kind == "bpe":
        tok = Tokenizer(models.BPE(unk_token="[UNK]"))
        tok.normalizer = normalizers.BertNormalizer(lowercase=True, strip_accents=True)
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size,
            min_frequency=min_frequency,
            special_tokens=list(SPECIAL_TOKENS),
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,  # its bars print blank lines on stdout when it is not a terminal
        )
        tok.train_from_iterator(lines, trainer=trainer)
        return tok
    raise ValueError(f"tokenizer kind must be 'wordpiece' or 'bpe', got {kind!r}")


_PREFIX = "##"
_REPEAT = 4096  # copies of one word per string fed to the trainer
_PRIVATE = 0xF0000  # the first code point of the Supplementary Private Use Areas


def _train_wordpiece_vocab(tok, lines: Iterable[str], vocab_size: int, min_frequency: int) -> dict[str, int]:
    """WordPiece ``{token: id}`` learned on ``lines`` by ``tok``'s normaliser and pre-tokeniser, reproducibly
    (module docstring): ids are the specials, the alphabet (characters, then ``##`` + character, each in code-point
    order), then merged tokens in the order they were learned."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    norm, pre = tok.normalizer, tok.pre_tokenizer
    words: Counter[str] = Counter()
    for line in lines:  # what Tokenizer.train_from_iterator counts: normalised, pre-tokenised words
        words.update(w for w, _ in pre.pre_tokenize_str(norm.normalize_str(line)))
    chars = set("".join(words))
    later = sorted({c for w in words for c in w[1:]})
    code = max(_PRIVATE, max(map(ord, chars), default=0) + 1)  # above every character, if there is room
    if code + len(later) > 0x110000:
        code = _PRIVATE
    free = (chr(c) for c in range(code, 0x110000) if chr(c) not in chars and not 0xD800 <= c < 0xE000)
    recode = {c: next(free) for c in later}  # order-preserving: ##x ids follow x's code point
    if len(recode) < len(later):  # pragma: no cover - needs ~1M distinct characters
        raise ValueError("too many distinct characters to train a WordPiece tokenizer")
    back = {v: k for k, v in recode.items()}
    table = str.maketrans(recode)

    def feed():
        for w, n in words.items():
            coded = w[0] + w[1:].translate(table) + " "
            for k in range(0, n, _REPEAT):
                yield coded * min(_REPEAT, n - k)

    bpe = Tokenizer(models.BPE(unk_token="[UNK]"))
    bpe.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=sorted(chars),  # the package's WordPiece alphabet: every character seen, anywhere
        show_progress=False,
    )
    bpe.train_from_iterator(feed(), trainer=trainer)
    out = {}
    for t, i in bpe.get_vocab().items():
        if t not in SPECIAL_TOKENS and t[0] in back:
            t = _PREFIX + "".join(back[c] for c in t)
        elif t not in SPECIAL_TOKENS:
            t = t[0] + "".join(back[c] for c in t[1:])
        out[t] = i
    return out


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
