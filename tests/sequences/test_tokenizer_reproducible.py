"""Tokenizer training is reproducible across processes (huggingface/tokenizers#1794) and learns what the package's
own WordPiece trainer learns where that one is stable."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from geomask.datasets.text import generate_text
from geomask.sequences.tokenizer import SPECIAL_TOKENS, train_tokenizer

LINES = [
    "the quick brown fox jumps over the lazy dog",
    "a lazy dog sleeps under the old bridge",
    "unbelievable things happen to unbelievable people",
] * 20

# Each child trains on the same GENERATED text and prints the tokenizers' JSON.  Several WordPiece sizes: with the
# package's trainer each of them differs between processes (ids, and at these sizes the vocabulary set too).
CHILD = """
import json, sys
from geomask.sequences.tokenizer import train_tokenizer
lines = json.load(open(sys.argv[1]))
out = {f"wordpiece-{v}": train_tokenizer(lines, v).to_str() for v in (120, 160, 200)}
out["bpe-300"] = train_tokenizer(lines, 300, "bpe").to_str()
print(json.dumps(out))
"""


def _package_wordpiece(lines, vocab_size, min_frequency):
    """The package's own WordPiece trainer with train_tokenizer's options (the code this module replaced)."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True, strip_accents=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    trainer = trainers.WordPieceTrainer(
        vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=list(SPECIAL_TOKENS), show_progress=False
    )
    tok.train_from_iterator(lines, trainer=trainer)
    return tok


def test_training_is_identical_in_separate_processes(tmp_path):
    sents = generate_text(1800, seed=3)
    src = tmp_path / "lines.json"
    src.write_text(json.dumps([" ".join(sents[i : i + 3]) for i in range(0, len(sents), 3)]))
    runs = []
    for hash_seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed, "RAYON_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
        done = subprocess.run(
            [sys.executable, "-c", CHILD, str(src)], env=env, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stderr[-2000:]
        runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
    assert runs[0].keys() == runs[1].keys()
    for name in runs[0]:
        assert runs[0][name] == runs[1][name], f"{name}: the tokenizer differs between processes"
    vocab = json.loads(runs[0]["wordpiece-200"])["model"]["vocab"]
    assert len(vocab) == 200 and [vocab[t] for t in SPECIAL_TOKENS] == [0, 1, 2, 3, 4]


@pytest.mark.parametrize("vocab_size", [40, 60])
def test_wordpiece_learns_the_package_trainers_vocabulary(vocab_size):
    # at these sizes the package's trainer picks the same vocabulary set in every process (only ids move), so the
    # set (hence every tokenization: WordPiece matches longest pieces, ids play no part) must be the same here
    ours = train_tokenizer(LINES, vocab_size, min_frequency=1)
    theirs = _package_wordpiece(LINES, vocab_size, min_frequency=1)
    mine, ref = ours.get_vocab(), theirs.get_vocab()
    assert set(mine) == set(ref)
    text = "the unbelievable fox sleeps under a quick bridge"
    assert ours.encode(text).tokens == theirs.encode(text).tokens
    # specials, then the characters in code-point order get the same ids as the package's; the ##x tokens follow,
    # in code-point order here (hash order there)
    chars = sorted({c for line in LINES for c in line if c != " "})
    assert [mine[t] for t in SPECIAL_TOKENS + tuple(chars)] == list(range(5 + len(chars)))
    assert [ref[t] for t in SPECIAL_TOKENS + tuple(chars)] == list(range(5 + len(chars)))
    cont = sorted((t for t in mine if t.startswith("##") and len(t) == 3), key=lambda t: mine[t])
    assert cont == sorted(cont) and mine[cont[0]] == 5 + len(chars)
    # the saved file has the package's layout (normaliser, pre-tokeniser, decoder, model options, added tokens)
    a, b = json.loads(ours.to_str()), json.loads(theirs.to_str())
    a["model"]["vocab"] = b["model"]["vocab"] = None
    assert a == b


def test_wordpiece_other_scripts_round_trip():
    # characters outside ASCII (accents are stripped; CJK characters are words of their own; a character beyond
    # the BMP inside a word) map back to themselves: every token is "c..." or "##c..." over seen characters
    lines = ["naïve café über straße", "zürich 東京 mathe𝔘x ωmega", "ωmega mathe𝔘x café"] * 5
    tok = train_tokenizer(lines, 80, min_frequency=1)
    seen = {
        c
        for line in lines
        for w in tok.pre_tokenizer.pre_tokenize_str(tok.normalizer.normalize_str(line))
        for c in w[0]
    }
    for t in tok.get_vocab():
        if t not in SPECIAL_TOKENS:
            assert set(t.removeprefix("##")) <= seen, t
    enc = tok.encode("mathe𝔘x ωmega café", add_special_tokens=False)
    assert "[UNK]" not in enc.tokens
    assert tok.decode(enc.ids) == "mathe𝔘x ωmega cafe"
    assert "##𝔘" in tok.get_vocab() and "𝔘" in tok.get_vocab()  # the package's alphabet: every character seen


def test_wordpiece_empty_text():
    tok = train_tokenizer([], 50)
    assert tok.get_vocab() == {t: i for i, t in enumerate(SPECIAL_TOKENS)}
