"""Packed sequence batches: layout, attention restricted to each sequence, positions reset, MLM equal to unpacked."""

from __future__ import annotations

import pytest
import torch

from geomask.errors import UsageError
from geomask.masking.base import mask_counts
from geomask.methods import build_method
from geomask.nn.sequence_encoder import SequenceEncoder
from geomask.sequences import SequenceItem, Vocab, collate_sequences
from geomask.sequences.packing import PackedSequenceBatch, collate_packed, pack_rows

VOCAB = Vocab(40, 0, 4, (0, 1, 2, 3, 4), 2, 3, "t")


def _items(sizes, seed=0):
    g = torch.Generator().manual_seed(seed)
    out = []
    for n in sizes:
        ids = torch.randint(5, 40, (n,), generator=g)
        words = torch.cumsum(torch.rand(n, generator=g) < 0.6, 0) - 1
        out.append(SequenceItem(ids, words.clamp(min=0), VOCAB))
    return out


SIZES = [3, 12, 1, 7, 5, 9, 2, 14, 4, 6, 8, 3]


def test_pack_layout_and_unpacked_view():
    items = _items([3, 1, 2])
    p = collate_packed(items, max_len=8)
    # FFD: the 5-token item opens row 0, the 4-token one row 1 (5 + 4 > 8), the 3-token one fits row 0
    assert p.ids.tolist() == [
        [2, *items[0].ids.tolist(), 3, 2, *items[1].ids.tolist(), 3],
        [2, *items[2].ids.tolist(), 3, 0, 0, 0, 0],
    ]
    assert p.doc_ids.tolist() == [[0] * 5 + [1] * 3, [2] * 4 + [-1] * 4]
    assert p.segment_ids.tolist() == [[0] * 5 + [1] * 3, [0] * 4 + [-1] * 4]
    assert p.positions.tolist() == [[0, 1, 2, 3, 4, 0, 1, 2], [0, 1, 2, 3, 0, 0, 0, 0]]
    assert len(p) == 3 and p.num_rows == 2 and p.padding_fraction == pytest.approx(4 / 16)
    u, ref = p.unpacked(), collate_sequences(items)
    for k in ("ids", "attention_mask", "lengths", "word_ids"):
        assert torch.equal(getattr(u, k), getattr(ref, k)), k
    assert torch.equal(p.pack(u.ids, 0), p.ids)
    e = p.path_edges()
    assert e.shape == (2, 2 * (4 + 2 + 3))  # no edge between the two sequences of row 0
    assert not ((e[0] == 4) & (e[1] == 5)).any()


def test_attention_is_block_diagonal():
    p = collate_packed(_items([3, 1, 2]), max_len=8)
    a = p.attention()[:, 0]
    assert a.shape == (2, 8, 8)
    assert a[0, :5, :5].all() and not a[0, :5, 5:].any() and not a[0, 5:, :5].any()
    assert not a[1, :, 4:].any() and a[1, 4:, :4].all()  # padding queries see real keys only: no NaN rows


def test_packing_deterministic_and_ffd():
    items = _items(SIZES)
    a, b = collate_packed(items, 24), collate_packed(items, 24)
    for k in ("ids", "doc_ids", "segment_ids", "positions", "slots"):
        assert torch.equal(getattr(a, k), getattr(b, k)), k
    rows, offs = pack_rows(torch.tensor([5, 5, 5, 4]), 10)
    assert rows.tolist() == [0, 0, 1, 1] and offs.tolist() == [0, 5, 0, 5]  # ties keep batch order
    assert a.attention_mask.sum().item() == sum(SIZES) + 2 * len(SIZES)  # every token placed once
    assert (a.lengths <= 24).all()


def test_sequence_longer_than_pack_length_is_one_line():
    with pytest.raises(UsageError) as e:
        collate_packed(_items([3, 20, 2]), max_len=16)
    msg = str(e.value)
    assert "\n" not in msg and "sequence 1 has 22 tokens" in msg and "pack length 16" in msg


@pytest.mark.parametrize("positions", ["learned", "rotary"])
def test_encoder_outputs_equal_unpacked(positions):
    torch.manual_seed(0)
    enc = SequenceEncoder(40, dim=16, depth=2, heads=2, max_len=32, positions=positions).eval()
    items = _items(SIZES)
    p, u = collate_packed(items, 24), collate_sequences(items)
    assert p.num_rows < len(items)
    with torch.no_grad():
        hp = enc(p.ids, p.attention_mask, p.doc_ids, p.positions)
        hu = enc(u.ids, u.attention_mask)
        leak = enc(p.ids, p.attention_mask)  # packed rows read as padded rows: attention across sequences
        row_pos = enc(p.ids, p.attention_mask, p.doc_ids)  # attention restricted, positions not reset
    m = u.attention_mask
    torch.testing.assert_close(p.unpack(hp)[m], hu[m], atol=1e-5, rtol=1e-5)
    assert (p.unpack(leak)[m] - hu[m]).abs().max() > 1e-2
    if positions == "learned":  # rotary attention sees relative positions only: equal up to rounding either way
        assert (p.unpack(row_pos)[m] - hu[m]).abs().max() > 1e-2


def test_mlm_packed_loss_and_features_equal_unpacked():
    items = _items(SIZES)
    p, u = collate_packed(items, 24), collate_sequences(items)
    torch.manual_seed(0)
    m = build_method("mlm", vocab_size=40, dim=16, depth=2, heads=2, max_len=32, masker={"name": "mlm", "ratio": 0.3})
    mask_p, _, _ = m.masked(p, torch.Generator().manual_seed(3))
    mask_u, _, _ = m.masked(u, torch.Generator().manual_seed(3))
    assert torch.equal(p.unpack(mask_p, False), mask_u)
    # the budget counts every sequence, not the row
    per_seq = torch.zeros(len(items), dtype=torch.long).index_add_(
        0, p.doc_ids[mask_p], torch.ones_like(p.doc_ids[mask_p])
    )
    assert torch.equal(per_seq, mask_counts(u.maskable.sum(1), 0.3))
    grads = []
    for batch in (p, u):
        m.zero_grad()
        out = m(batch, torch.Generator().manual_seed(5))
        out["loss"].backward()
        grads.append({k: v.grad.clone() for k, v in m.named_parameters() if v.grad is not None})
        grads[-1]["loss"] = out["loss"].detach()
    torch.testing.assert_close(grads[0]["loss"], grads[1]["loss"], atol=1e-6, rtol=1e-6)
    assert grads[0].keys() == grads[1].keys()
    for k in grads[0]:
        torch.testing.assert_close(grads[0][k], grads[1][k], atol=1e-5, rtol=1e-4)
    m.eval()
    with torch.no_grad():
        fp, fu = m.features(p), m.features(u)
    assert fp.shape == (len(items), 16)
    torch.testing.assert_close(fp, fu, atol=1e-5, rtol=1e-5)
    assert isinstance(p, PackedSequenceBatch)


def _pad_fractions(lengths, max_len=128, batch=64):
    pad_u, pad_p = [], []
    for i in range(0, len(lengths) - batch + 1, batch):
        n = lengths[i : i + batch]
        items = [SequenceItem(torch.full((k,), 7), None, VOCAB) for k in n]
        pad_u.append(1.0 - collate_sequences(items).attention_mask.float().mean().item())
        pad_p.append(collate_packed(items, max_len).padding_fraction)
    return sum(pad_u) / len(pad_u), sum(pad_p) / len(pad_p)


def test_padding_falls_on_a_skewed_length_distribution():
    # log-normal lengths (median ~20 tokens, a long tail cut at 126), the shape of sentence / line lengths
    g = torch.Generator().manual_seed(0)
    n = (torch.randn(512, generator=g) * 0.9 + 3.0).exp().round().clamp(1, 126).long().tolist()
    unpacked, packed = _pad_fractions(n)
    assert unpacked > 0.5 and packed < 0.15, (unpacked, packed)


def test_padding_falls_on_wikitext_lines(shared_data):
    path = shared_data / "text" / "wikitext2" / "wiki.valid.txt"
    if not path.is_file():
        pytest.skip(f"{path} absent")
    # word counts of the non-empty lines (fewer than their WordPiece tokens), cut as the reader cuts (126)
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()][:1024]
    words = [len(line.split()) for line in lines]
    n = [min(k, 126) for k in words]
    unpacked, packed = _pad_fractions(n)
    assert packed < unpacked / 3, (unpacked, packed)


def test_data_pack_length_switches_the_text_collate_and_is_refused_for_methods_without_packing():
    from geomask.datasets.kinds import get_data_kind
    from geomask.train.config import ConfigError, load_config
    from geomask.train.engine import check_data_kind

    items = _items([5, 3, 7, 2])
    packed = load_config("mlm_cpu", ["data.pack_length=16"]).data
    plain = load_config("mlm_cpu").data
    for kind in ("text", "sequences", "generated_text"):
        assert isinstance(get_data_kind(kind).collate_fn(packed)(items), PackedSequenceBatch)
        assert not isinstance(get_data_kind(kind).collate_fn(plain)(items), PackedSequenceBatch)
    check_data_kind(load_config("mlm_cpu", ["data.pack_length=128"]))  # mlm takes packed batches
    with pytest.raises(ConfigError, match=r"^data\.pack_length: method 'clm' does not train on packed sequences"):
        check_data_kind(load_config("clm_cpu", ["data.pack_length=128"]))
