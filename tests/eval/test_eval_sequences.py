"""geomask eval text|sequences: pseudo-perplexity against a hand loop, the unigram baseline by hand, position
sampling, the JSON shape of both subcommands on tiny written data, bad input as one line, and a small seeded run
where pretraining must beat scratch and unigram."""

from __future__ import annotations

import json
import math

import pytest
import torch

from geomask.cli import main
from geomask.datasets.text import generate_text
from geomask.eval.sequences import (
    evaluate_text,
    kmer_features,
    logistic_probe,
    pooled_features,
    pseudo_perplexity,
    read_peptides,
    select_positions,
    split_pieces,
    summarise_runs,
    unigram_scores,
)
from geomask.methods import build_method
from geomask.sequences.batch import SequenceItem, collate_sequences
from geomask.sequences.vocab import AMINO_ACIDS, amino_vocab, encode_protein

pytestmark = pytest.mark.usefixtures("one_thread")


def _batch(lengths=(5, 9, 3), seed=0):
    vocab = amino_vocab()
    g = torch.Generator().manual_seed(seed)
    items = [SequenceItem(torch.randint(4, 24, (n,), generator=g), None, vocab) for n in lengths]
    return collate_sequences(items), items


def _tiny_mlm(seed=0):
    torch.manual_seed(seed)
    return build_method("mlm", vocab_size=33, dim=16, depth=1, heads=2, max_len=32).eval()


def test_pseudo_perplexity_equals_a_hand_loop():
    batch, _ = _batch()
    model = _tiny_mlm()
    logps, per = [], []
    with torch.no_grad():
        for b in range(len(batch)):
            mine = []
            for t in torch.nonzero(batch.maskable[b]).squeeze(1).tolist():
                ids = batch.ids[b : b + 1].clone()
                ids[0, t] = batch.vocab.mask_id
                lp = model.logits(ids, batch.attention_mask[b : b + 1])[0, t].log_softmax(-1)[batch.ids[b, t]]
                mine.append(float(lp))
            logps += mine
            per.append(math.exp(-sum(mine) / len(mine)))
    want = math.exp(-sum(logps) / len(logps))
    assert float(pseudo_perplexity(model, batch)) == pytest.approx(want, rel=1e-5)
    assert pseudo_perplexity(model, batch, per_sequence=True).tolist() == pytest.approx(per, rel=1e-5)

    class LogitsOnly(torch.nn.Module):  # the generic path (any method with logits), not MLM's head shortcut
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def logits(self, ids, attn):
            return self.inner.logits(ids, attn)

    assert float(pseudo_perplexity(LogitsOnly(model), batch)) == pytest.approx(want, rel=1e-5)
    only_first = torch.zeros_like(batch.maskable)
    only_first[:, 1] = True  # e.g. a peptide's positions only
    assert float(pseudo_perplexity(model, batch, only_first)) != pytest.approx(want, rel=1e-5)


def test_select_positions_caps_and_is_seeded():
    batch, _ = _batch((20, 4, 11))
    sel = select_positions(batch, 6, torch.Generator().manual_seed(0))
    assert sel.sum(1).tolist() == [6, 4, 6]
    assert not (sel & ~batch.maskable).any()
    assert torch.equal(sel, select_positions(batch, 6, torch.Generator().manual_seed(0)))
    assert torch.equal(select_positions(batch), batch.maskable)


def test_unigram_by_hand():
    vocab = amino_vocab()
    train = [SequenceItem(t, None, vocab) for t in encode_protein(["LLLA", "LAG"])]  # L: 4, A: 2, G: 1
    test = collate_sequences([SequenceItem(t, None, vocab) for t in encode_protein(["LAV"])])
    got = unigram_scores(train, test, test.maskable)
    regular = vocab.size - len(vocab.special_ids)  # 25 residues, add-one smoothed
    total = 7 + regular
    p = [(4 + 1) / total, (2 + 1) / total, 1 / total]
    assert got["accuracy"] == pytest.approx(1 / 3)
    assert got["pseudo_perplexity"] == pytest.approx(math.exp(-sum(map(math.log, p)) / 3))


def test_kmer_features_count_pairs_inside_sequences():
    vocab = amino_vocab()
    batch = collate_sequences([SequenceItem(t, None, vocab) for t in encode_protein(["LLA", "A"])])
    f = kmer_features(batch, vocab.size)
    L, A = 4 + AMINO_ACIDS.index("L"), 4 + AMINO_ACIDS.index("A")
    v = vocab.size
    assert f[0, L] == pytest.approx(2 / 3) and f[0, A] == pytest.approx(1 / 3)
    assert f[0, v + L * v + L] == pytest.approx(0.5) and f[0, v + L * v + A] == pytest.approx(0.5)
    assert f[1, v : v + v * v].sum() == 0 and f[1, -1] == pytest.approx(0.0)


def _write_pepnn(path, rows=48, bad=True):
    g = torch.Generator().manual_seed(0)
    lines = ["PDB,Receptor,Peptide,Buried surface area,Sequence,Interface score,Receptor Sequence,Cluster"]
    for i in range(rows):
        pep = "".join(
            AMINO_ACIDS[j] for j in torch.randint(0, 20, (int(torch.randint(5, 15, (1,), generator=g)),), generator=g)
        )
        rec = "".join(AMINO_ACIDS[j] for j in torch.randint(0, 20, (40,), generator=g))
        lines.append(f"X{i},A,B,{300 + 40 * len(pep) + i},{pep},-1.0,{rec},{i % 10}")
    if bad:
        lines.append("BAD,A,B,500,PEP1DE,-1.0,LLLL,3")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_read_peptides_reports_a_bad_row_and_keeps_the_rest(tmp_path, capsys):
    rows = read_peptides(_write_pepnn(tmp_path / "p.csv"))
    err = capsys.readouterr().err.strip().splitlines()
    assert len(rows.peptides) == 48 and len(err) == 1
    assert "p.csv:50" in err[0] and "1" in err[0]


def test_json_shape_of_both_subcommands(tmp_path, capsys):
    text = tmp_path / "t.txt"
    text.write_text("\n".join(" ".join(generate_text(2, i)) for i in range(40)) + "\n")
    out = tmp_path / "t.json"
    argv = ["eval", "text", "--train", str(text), "--json", str(out), "--steps", "2", "--quiet", "--methods", "scratch"]
    assert main([*argv, "unigram", "mlm", "--vocab-size", "80", "--max-test", "3", "--max-positions", "4"]) == 0
    res = json.loads(out.read_text())
    assert set(res["methods"]) == {"scratch", "unigram", "mlm"}
    for r in res["methods"].values():
        assert set(r["mlm"]) == {"accuracy", "pseudo_perplexity"}
    assert res["data"]["scored_positions"] <= 12 and res["data"]["test_lines"] == 4
    assert "pseudo_perplexity" in capsys.readouterr().out

    csv = _write_pepnn(tmp_path / "p.csv", bad=False)
    out = tmp_path / "p.json"
    argv = ["eval", "sequences", "--train", str(csv), "--json", str(out), "--steps", "2", "--finetune-steps", "2"]
    assert main([*argv, "--methods", "unigram", "mlm", "--seeds", "0", "1", "--quiet", "--max-positions", "3"]) == 0
    res = json.loads(out.read_text())
    assert list(res["methods"]) == ["unigram", "mlm"]
    probe = res["methods"]["mlm"]["probe"]
    assert {"linear_accuracy", "linear_auc", "finetune_accuracy", "finetune_auc", "linear_auc_std"} <= set(probe)
    assert set(res["methods"]["unigram"]["probe"]) == {
        "linear_accuracy",
        "linear_auc",
        "linear_accuracy_std",
        "linear_auc_std",
    }
    assert res["data"]["test_rows"] == 10  # clusters 0 and 5 held out


@pytest.mark.parametrize("task", ["text", "sequences"])
def test_missing_train_file_is_one_line(tmp_path, capsys, task):
    missing = tmp_path / "nope.txt"
    assert main(["eval", task, "--train", str(missing), "--json", str(tmp_path / "o.json")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(missing) in err[0] and "Traceback" not in err[0]
    assert main(["eval", task, "--train", str(missing), "--json", "o.json", "--methods", "bogus"]) == 2
    assert "bogus" in capsys.readouterr().err


def test_pretraining_beats_scratch_and_unigram_on_held_out_text(tmp_path):
    text = tmp_path / "t.txt"
    text.write_text("\n".join(generate_text(400, 0)) + "\n")  # GENERATED sentences, one a line
    res = evaluate_text(
        text,
        methods=["scratch", "unigram", "mlm"],
        steps=200,
        vocab_size=120,
        max_test=8,
        max_positions=8,
        progress=False,
    )["methods"]
    mlm = res["mlm"]["mlm"]["pseudo_perplexity"]
    assert mlm < res["unigram"]["mlm"]["pseudo_perplexity"] and mlm < res["scratch"]["mlm"]["pseudo_perplexity"]


def test_public_helpers_pieces_probe_features_and_summary():
    """The helpers geomask.eval.ripp and benchmarks/compare_mlm_clm.py import (issue 13: public, documented)."""
    vocab = amino_vocab()
    pieces = split_pieces([torch.arange(4, 14), torch.arange(4, 7)], vocab, max_len=6)
    room = 6 - int(vocab.cls_id is not None) - int(vocab.sep_id is not None)
    assert [len(p.ids) for p in pieces] == [room] * (10 // room) + ([10 % room] if 10 % room else []) + [3]
    assert torch.equal(torch.cat([p.ids for p in pieces]), torch.cat([torch.arange(4, 14), torch.arange(4, 7)]))
    g = torch.Generator().manual_seed(0)
    x = torch.randn(80, 3, generator=g).numpy()
    y = (x[:, 0] > 0).astype(int)
    sep = logistic_probe(x[:60], y[:60], x[60:], y[60:], seed=0)
    noise = logistic_probe(x[:60, 1:], y[:60], x[60:, 1:], y[60:], seed=0)
    assert sep["linear_accuracy"] >= 0.9 and sep["linear_auc"] > noise["linear_auc"]
    _, items = _batch((5, 9, 3, 7))
    f = pooled_features(_tiny_mlm(), items, bs=3)
    assert f.shape == (4, 16) and torch.isfinite(f).all()
    runs = {"a": [{"p": {"x": 1.0}}, {"p": {"x": 3.0}}], "b": [{"p": {"x": 2.0}}]}
    assert summarise_runs(runs) == {"a": {"p": {"x": 2.0, "x_std": 1.0}}, "b": {"p": {"x": 2.0}}}


def test_ngram_lexicon_is_mined_from_the_evaluation_corpus():
    """ERNIE-Gram's CPU config names the GENERATED text's lexicon (another vocabulary): evaluated on peptides
    (33 amino-acid ids) it must get a lexicon mined from the evaluation's own training items — ids inside this
    vocabulary, n-grams that occur in the corpus — instead of failing or silently reading foreign ids."""
    from geomask.eval.sequences import build_sequence_method, cpu_config

    vocab = amino_vocab()
    motif = [5, 9, 12]
    g = torch.Generator().manual_seed(0)
    items = [
        SequenceItem(torch.cat([torch.randint(4, 24, (6,), generator=g), torch.tensor(motif)]), None, vocab)
        for _ in range(40)
    ]
    cfg = cpu_config("ernie_gram")
    model = build_sequence_method("ernie_gram", cfg, vocab, 0, items)
    grams = [row[:n].tolist() for row, n in zip(model.grams, model.gram_lengths)]
    assert grams and all(0 <= t < vocab.size for gram in grams for t in gram)
    assert motif in grams or motif[:2] in grams  # the repeated motif is the corpus's strongest n-gram


def test_causal_lm_is_scored_left_to_right_by_a_prefix_loop():
    """CLM (``lm_scoring = "causal"``) gets log p(x_t | x_<t): equal to running it on each prefix x_<t alone and
    reading the last position; biphasic (which ends as an MLM) keeps the masked scoring."""
    from geomask.eval.sequences import score_positions

    batch, items = _batch(lengths=(6, 9, 4))
    torch.manual_seed(0)
    clm = build_method("clm", vocab_size=33, dim=16, depth=1, heads=2, max_len=32).eval()
    positions = batch.maskable
    logp, hit = score_positions(clm, batch, positions)
    expected, expected_hit = [], []
    for b, t in zip(*torch.nonzero(positions, as_tuple=True)):
        prefix = batch.ids[b : b + 1, :t]
        with torch.no_grad():
            row = clm.causal_logits(prefix, torch.ones_like(prefix, dtype=torch.bool))[0, -1].log_softmax(-1)
        expected.append(float(row[batch.ids[b, t]]))
        expected_hit.append(bool(row.argmax() == batch.ids[b, t]))
    torch.testing.assert_close(logp, torch.tensor(expected), atol=1e-5, rtol=1e-5)
    assert hit.tolist() == expected_hit
    assert build_method("biphasic", vocab_size=33, dim=16, depth=1, heads=2, max_len=32).lm_scoring == "masked"
