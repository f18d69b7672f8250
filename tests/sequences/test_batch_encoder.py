"""The sequence batch (padding, specials, grid and path-graph views) and the sequence encoder (padding-invariant)."""

from __future__ import annotations

import torch

from geomask.nn.sequence_encoder import SequenceEncoder
from geomask.sequences import SequenceItem, Vocab, collate_sequences

VOCAB = Vocab(30, 0, 4, (0, 1, 2, 3, 4), 2, 3, "t")


def _items():
    return [
        SequenceItem(torch.tensor([7, 8, 9]), torch.tensor([0, 0, 1]), VOCAB),
        SequenceItem(torch.tensor([5]), torch.tensor([0]), VOCAB),
    ]


def test_collate_pads_and_adds_specials():
    b = collate_sequences(_items())
    assert b.ids.tolist() == [[2, 7, 8, 9, 3], [2, 5, 3, 0, 0]]
    assert b.attention_mask.tolist() == [[True] * 5, [True] * 3 + [False] * 2]
    assert b.lengths.tolist() == [5, 3]
    assert b.word_ids.tolist() == [[-1, 0, 0, 1, -1], [-1, 0, -1, -1, -1]]
    assert b.maskable.tolist() == [[False, True, True, True, False], [False, True, False, False, False]]
    cut = collate_sequences(_items(), max_len=4)
    assert cut.ids.tolist()[0] == [2, 7, 8, 3]


def test_grid_and_path_views():
    b = collate_sequences(_items())
    assert b.grid_coords().tolist() == [[0, 0], [0, 1], [0, 2], [0, 3], [0, 4], [1, 0], [1, 1], [1, 2]]
    e = b.path_edges()
    assert e.shape == (2, 12)  # 4 + 2 consecutive pairs, both directions
    assert not ((e[0] == 4) & (e[1] == 5)).any()  # no edge between sequences


def test_encoder_ignores_padding():
    torch.manual_seed(0)
    enc = SequenceEncoder(30, dim=16, depth=2, heads=2, max_len=16).eval()
    b = collate_sequences(_items())
    out = enc(b.ids, b.attention_mask)
    alone = enc(b.ids[1:, :3], b.attention_mask[1:, :3])
    assert torch.allclose(out[1, :3], alone[0], atol=1e-5)


def test_rotary_encoder_is_relative_and_ignores_padding():
    torch.manual_seed(0)
    enc = SequenceEncoder(30, dim=16, depth=1, heads=2, max_len=16, positions="rotary").eval()
    assert enc.positions is None
    b = collate_sequences(_items())
    out = enc(b.ids, b.attention_mask)
    alone = enc(b.ids[1:, :3], b.attention_mask[1:, :3])
    assert torch.allclose(out[1, :3], alone[0], atol=1e-5)
    # relative: a rotated query-key product depends only on the offset of their positions
    from geomask.nn.sequence_encoder import _rotate, rotary_tables

    cos, sin = rotary_tables(12, 8, torch.device("cpu"), torch.float32)
    q, k = torch.randn(8), torch.randn(8)

    def score(m, n):
        return (_rotate(q, cos[m], sin[m]) * _rotate(k, cos[n], sin[n])).sum()

    assert torch.allclose(score(2, 5), score(6, 9), atol=1e-5)
    assert not torch.allclose(score(2, 5), score(2, 6), atol=1e-3)
    rev = enc(torch.tensor([[10, 9, 8, 7]]))[0].flip(0)
    assert not torch.allclose(rev, enc(torch.tensor([[7, 8, 9, 10]]))[0], atol=1e-4)  # order matters
