"""The on-disk Verilog embedding cache: keys, hits and misses, corrupt entries, atomic writes."""

from __future__ import annotations

import shutil

import pytest
import torch

from geomask.datasets.embedding_cache import EmbeddingCache, embed_design
from geomask.nn.text_encoder import HashingTextEncoder

pytestmark = pytest.mark.skipif(shutil.which("iverilog") is None, reason="iverilog (pyverilog's preprocessor) missing")

SRC = "module m(input a, b, output y, z);\n  assign y = a & b;\n  assign z = a | b;\nendmodule\n"


class Counting(HashingTextEncoder):
    """A hashing encoder that counts the texts it embeds."""

    def __init__(self, dim: int = 32) -> None:
        super().__init__(dim)
        self.calls = 0

    def encode(self, texts, batch_size=32):
        self.calls += 1
        return super().encode(texts, batch_size)


@pytest.fixture
def design(tmp_path):
    p = tmp_path / "m.v"
    p.write_text(SRC)
    return p


def test_embed_design_rows_and_vector(design):
    enc = HashingTextEncoder(32)
    d = embed_design(design, enc, "statement")
    assert d.emb.shape == (3, 32) and d.vec.shape == (1, 32)  # header, two assigns
    torch.testing.assert_close(d.emb[1], enc.encode(["  assign y = a & b;"])[0])
    torch.testing.assert_close(d.vec[0], torch.nn.functional.normalize(d.emb.mean(0), dim=0))
    assert d.lines.tolist() == [[1, 1], [2, 2], [3, 3]]
    whole = embed_design(design, enc, "module", vector="text")
    torch.testing.assert_close(whole.vec, enc.encode([SRC.rstrip("\n")]))


def test_hit_miss_and_keys(tmp_path, design):
    cache = EmbeddingCache(tmp_path / "cache")
    enc = Counting()
    first = cache.embed(design, enc)
    assert not first.hit and enc.calls == 1
    again = cache.embed(design, enc)
    assert again.hit and enc.calls == 1
    assert torch.equal(first.emb, again.emb) and torch.equal(first.vec, again.vec)
    cache.embed(design, enc, level="module")  # another chunking: a miss
    assert enc.calls == 2
    cache.embed(design, Counting(dim=16))  # another encoder: a miss, under its own name
    assert len(list((tmp_path / "cache").iterdir())) == 2
    design.write_text(SRC.replace("a | b", "a ^ b"))  # edited source: a miss
    edited = cache.embed(design, enc)
    assert not edited.hit and enc.calls == 3 and not torch.equal(edited.emb, first.emb)
    path = cache.path(enc.name, "0" * 64, "statement")
    assert path != cache.path(enc.name, "0" * 64, "module") != cache.path(enc.name, "0" * 64, "statement", 100)


def test_entries_are_plain_tensors_and_corrupt_ones_are_recomputed(tmp_path, design):
    cache = EmbeddingCache(tmp_path / "cache")
    enc = Counting()
    cache.embed(design, enc)
    (entry,) = (tmp_path / "cache").rglob("*.pt")
    stored = torch.load(entry, weights_only=True)
    assert set(stored) == {"emb", "vec", "lines"} and all(isinstance(t, torch.Tensor) for t in stored.values())
    entry.write_bytes(b"not a torch file")
    again = cache.embed(design, enc)
    assert not again.hit and enc.calls == 2
    assert cache.embed(design, enc).hit  # rewritten


def test_a_killed_write_leaves_no_entry(tmp_path, design, monkeypatch):
    cache = EmbeddingCache(tmp_path / "cache")

    def killed(src, dst):
        raise KeyboardInterrupt

    monkeypatch.setattr("geomask.io.atomic.os.replace", killed)
    with pytest.raises(KeyboardInterrupt):
        cache.embed(design, HashingTextEncoder(32))
    monkeypatch.undo()
    assert [p for p in (tmp_path / "cache").rglob("*") if p.is_file()] == []  # no entry, no temporary file
    assert not cache.embed(design, HashingTextEncoder(32)).hit
