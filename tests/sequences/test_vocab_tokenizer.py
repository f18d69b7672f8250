"""Vocabularies and tokenizers: ESM's amino-acid order, a WordPiece round trip through a folder, word ids."""

from __future__ import annotations

import pytest
import torch

from geomask.errors import FormatError
from geomask.sequences import ESM_TOKENS, amino_vocab, encode_protein
from geomask.sequences.tokenizer import encode_texts, load_tokenizer, save_tokenizer, tokenizer_vocab, train_tokenizer
from geomask.sequences.vocab import invalid_residues

LINES = [
    "the quick brown fox jumps over the lazy dog",
    "a lazy dog sleeps under the old bridge",
    "unbelievable things happen to unbelievable people",
] * 20


def test_amino_vocab_is_esm_order():
    # ESM-1b / ESM-2's Alphabet: prepend <cls> <pad> <eos> <unk>, the residues, then . - <null_1> <mask>
    assert ESM_TOKENS[:4] == ("<cls>", "<pad>", "<eos>", "<unk>")
    assert "".join(ESM_TOKENS[4:29]) == "LAGVSERTIDPKQNFYMHWCXBUZO"
    assert ESM_TOKENS[29:] == (".", "-", "<null_1>", "<mask>")
    v = amino_vocab()
    assert (v.size, v.pad_id, v.mask_id, v.cls_id, v.sep_id) == (33, 1, 32, 0, 2)
    assert set(v.regular_ids().tolist()) == set(range(4, 29))


def test_encode_protein_and_invalid_letters():
    (ids,) = encode_protein(["MKla"])
    assert ids.tolist() == [20, 15, 4, 5]
    assert invalid_residues("MKJ1*") == ["*", "1", "J"]
    with pytest.raises(ValueError, match="invalid residue"):
        encode_protein(["MKJ"])


@pytest.mark.parametrize("kind", ["wordpiece", "bpe"])
def test_tokenizer_round_trip_through_a_folder(tmp_path, kind):
    tok = train_tokenizer(LINES, vocab_size=120, kind=kind, min_frequency=1)
    save_tokenizer(tok, tmp_path / "tok")
    again = load_tokenizer(tmp_path / "tok")
    text = "the lazy fox sleeps"
    assert again.encode(text).ids == tok.encode(text).ids
    assert again.decode(again.encode(text).ids).replace(" ", "") == text.replace(" ", "")
    v = tokenizer_vocab(again)
    assert v.special_ids == (0, 1, 2, 3, 4) and v.mask_id == 4 and v.pad_id == 0
    assert v == tokenizer_vocab(tok)  # the name hashes the tokenizer: equal tokenizers, equal vocabs


def test_word_ids_group_wordpieces():
    tok = train_tokenizer(LINES, vocab_size=60, min_frequency=1)
    ids, words = encode_texts(tok, ["unbelievable dog"])
    pieces = tok.encode("unbelievable dog", add_special_tokens=False).tokens
    assert len(pieces) > 2  # the small vocabulary splits the long word
    want = (torch.cumsum(torch.tensor([not t.startswith("##") for t in pieces]), 0) - 1).tolist()
    assert words[0].tolist() == want and want[-1] == 1  # continuations share their word's id
    assert len(ids[0]) == len(pieces)


def test_load_tokenizer_missing(tmp_path):
    with pytest.raises(FormatError, match="no tokenizer"):
        load_tokenizer(tmp_path)
