"""The n-gram lexicon: PMI by hand on a tiny corpus, record boundaries, the per-length split, plain-tensor files,
and the vectorised matcher against a Python loop."""

from __future__ import annotations

import math

import pytest
import torch

from geomask.errors import FormatError, UsageError
from geomask.sequences.ngrams import Lexicon, load_lexicon, match_lexicon, mine_lexicon

pytestmark = pytest.mark.usefixtures("one_thread")


def test_pmi_by_hand():
    # one record: a b a b c a b  (a=0, b=1, c=2); 7 tokens, 6 bigram windows
    ids = torch.tensor([0, 1, 0, 1, 2, 0, 1])
    lex = mine_lexicon(ids, vocab_size=3, max_n=2, top_k=10, min_count=1)
    got = {tuple(g[:2].tolist()): float(s) for g, s in zip(lex.grams, lex.scores)}
    # c(ab)=3, c(a)=3, c(b)=3 -> log((3/6) / ((3/7)(3/7)))
    assert got[(0, 1)] == pytest.approx(math.log((3 / 6) / ((3 / 7) * (3 / 7))))
    # c(bc)=1, c(c)=1 -> log((1/6) / ((3/7)(1/7)))
    assert got[(1, 2)] == pytest.approx(math.log((1 / 6) / ((3 / 7) * (1 / 7))))
    assert set(got) == {(0, 1), (1, 0), (1, 2), (2, 0)}
    # ranked by PMI: bc (1.86) and ca (1.86) above ab (1.00) above ba
    assert [tuple(g[:2].tolist()) for g in lex.grams][-1] == (1, 0)
    assert lex.counts[[tuple(g[:2].tolist()) for g in lex.grams].index((0, 1))] == 3
    # min_count drops the rare ones; frequency ranks by count
    assert {tuple(g[:2].tolist()) for g in mine_lexicon(ids, vocab_size=3, max_n=2, min_count=2).grams} == {(0, 1)}
    freq = mine_lexicon(ids, vocab_size=3, max_n=2, min_count=1, measure="frequency")
    assert freq.grams[0, :2].tolist() == [0, 1] and freq.scores[0] == 3


def test_windows_stay_inside_records_and_lengths_share_top_k():
    ids = torch.tensor([0, 1, 2, 3, 0, 1, 2, 3])
    lex = mine_lexicon(ids, torch.tensor([0, 4, 8]), vocab_size=4, top_k=100, min_count=1)
    pairs = {tuple(g[:n].tolist()) for g, n in zip(lex.grams, lex.lengths)}
    assert (3, 0) not in pairs and (2, 3, 0) not in pairs  # across the record boundary
    assert {(0, 1), (1, 2), (2, 3), (0, 1, 2), (1, 2, 3)} == pairs
    g = torch.Generator().manual_seed(0)
    big = mine_lexicon(torch.randint(0, 6, (3000,), generator=g), vocab_size=6, top_k=21, min_count=1)
    assert big.lengths.bincount(minlength=4)[2:].tolist() == [11, 10]  # an even split, remainder to the shorter
    with pytest.raises(UsageError, match="measure"):
        mine_lexicon(ids, vocab_size=4, measure="ttest")


def test_save_load_plain_tensors(tmp_path):
    lex = mine_lexicon(torch.tensor([0, 1, 0, 1, 2, 0, 1]), vocab_size=3, min_count=1)
    lex.save(tmp_path / "lex.pt")
    back = load_lexicon(tmp_path / "lex.pt")  # weights_only=True inside
    assert torch.equal(back.grams, lex.grams) and torch.equal(back.scores, lex.scores) and back.vocab_size == 3
    (tmp_path / "bad.pt").write_bytes(b"not a lexicon")
    with pytest.raises(FormatError, match="bad.pt"):
        load_lexicon(tmp_path / "bad.pt")


def test_matcher_equals_a_python_loop():
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(0, 5, (6, 25), generator=g)
    valid = torch.rand(6, 25, generator=g) > 0.1
    lex = mine_lexicon(ids[valid], vocab_size=5, top_k=30, min_count=2)
    got = match_lexicon(ids, valid, lex)
    table = {tuple(row[:n].tolist()): k for k, (row, n) in enumerate(zip(lex.grams, lex.lengths))}
    want = torch.full_like(got, -1)
    for b in range(6):
        for t in range(25):
            for n in (2, 3):
                win = ids[b, t : t + n]
                if len(win) == n and bool(valid[b, t : t + n].all()):
                    want[b, t, n - 2] = table.get(tuple(win.tolist()), -1)
    assert torch.equal(got, want) and int((got >= 0).sum()) > 20
    inline = Lexicon.from_grams([[1, 2], [3, 4, 0]], vocab_size=5)
    assert match_lexicon(torch.tensor([[1, 2, 3, 4, 0]]), torch.ones(1, 5, dtype=torch.bool), inline)[0].tolist() == [
        [0, -1],
        [-1, -1],
        [-1, 1],
        [-1, -1],
        [-1, -1],
    ]
