"""geomask eval ripp: modlamp task loaders against modlamp's own loaders, stratified splits, B's test peptides kept
out of A and of pretraining, the transfer path and JSON shape on tiny synthetic tasks, a fine-tune that must beat
its untrained start, and a missing modlamp / bad rows as one line."""

from __future__ import annotations

import argparse
import importlib.util
import json

import pytest
import torch

from geomask.cli import main
from geomask.datasets import peptide_tasks
from geomask.datasets.peptide_tasks import TASKS, PeptideTask, load_peptide_task, read_task_csv
from geomask.errors import FormatError
from geomask.eval import ripp
from geomask.eval.ripp import evaluate_ripp, results_table, split_task
from geomask.eval.ripp_command import _TASKS, add_ripp_eval_parser, cmd_eval_ripp
from geomask.eval.sequences import finetune_head
from geomask.sequences.batch import SequenceItem
from geomask.sequences.vocab import amino_vocab, encode_protein

pytestmark = pytest.mark.usefixtures("one_thread")
HAVE_MODLAMP = importlib.util.find_spec("modlamp") is not None
needs_modlamp = pytest.mark.skipif(not HAVE_MODLAMP, reason="modlamp is not installed (pip install 'geomask[ripp]')")


def _synthetic(name: str, n: int, seed: int, motif: str, shared: list[str] = ()) -> PeptideTask:
    """Class 1 holds ``motif`` at a random place in random peptides; class 0 does not (plus ``shared`` as class 1)."""
    g = torch.Generator().manual_seed(seed)
    letters = "ADEFGHILMNPQSTVWY"  # no K / R: the motifs below are the only K and R
    seqs, labels = [], []
    for i in range(n):
        body = "".join(
            letters[j]
            for j in torch.randint(len(letters), (int(torch.randint(8, 16, (1,), generator=g)),), generator=g).tolist()
        )
        if i % 2:
            at = int(torch.randint(len(body), (1,), generator=g))
            body = body[:at] + motif + body[at:]
        seqs.append(body)
        labels.append(i % 2)
    seqs += list(shared)
    labels += [1] * len(shared)
    return PeptideTask(name, seqs, encode_protein(seqs), torch.tensor(labels), ("neg", "pos"), f"<{name}>")


def test_cli_task_names_match_the_loader():
    assert set(_TASKS) == set(TASKS)


@needs_modlamp
@pytest.mark.parametrize("name,loader", [("amp_tm", "load_AMPvsTM"), ("acp_random", "load_ACPvsRandom")])
def test_loader_matches_modlamps_own(name, loader):
    import modlamp.datasets

    task = load_peptide_task(name)
    theirs = getattr(modlamp.datasets, loader)()
    assert sorted(zip(task.sequences, task.labels.tolist())) == sorted(
        zip(theirs.sequences.tolist(), theirs.target.tolist())
    )
    assert set(task.labels.tolist()) == {0, 1}
    assert task.class_names == tuple(theirs.target_names)
    t = task.to_tensors()
    assert t["schema"] == peptide_tasks.SCHEMA and t["offsets"][-1] == t["tokens"].numel()
    k = 7
    assert torch.equal(t["tokens"][t["offsets"][k] : t["offsets"][k + 1]], task.ids[k])


@needs_modlamp
def test_duplicates_kept_once():
    import modlamp.datasets

    task = load_peptide_task("amp_uniprot")
    assert len(set(task.sequences)) == len(task) < len(modlamp.datasets.load_AMPvsUniProt().sequences)


def test_bad_rows_one_line_each_and_conflicts_left_out(tmp_path, capsys):
    path = tmp_path / "task.csv"
    path.write_text("5,1,neg,pos\nACDE,0\nKKLL,1\nAC1DE,1\nKKLL,1\nMMMM,0\nMMMM,1\nGGG\n")
    task = read_task_csv(path)
    assert task.sequences == ["ACDE", "KKLL"] and task.labels.tolist() == [0, 1]
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2 and f"{path}:4" in err[0] and f"{path}:8" in err[1]
    path.write_text("not a header\nACDE,0\n")
    with pytest.raises(FormatError, match="line 1"):
        read_task_csv(path)


def test_missing_modlamp_is_one_line(tmp_path, monkeypatch, capsys):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n == "modlamp" else real(n, *a))
    assert main(["eval", "ripp", "--json", str(tmp_path / "r.json"), "--methods", "kmer"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "modlamp" in err[0] and "Traceback" not in err[0]
    assert not (tmp_path / "r.json").exists()


def test_split_is_stratified_and_seeded():
    task = _synthetic("a", 50, 0, "KK")
    tr, te = split_task(task, 3)
    assert sorted(tr.tolist() + te.tolist()) == list(range(50)) and len(te) == 10
    assert task.labels[te].sum() == 5  # 20 % of each class
    assert torch.equal(split_task(task, 3)[1], te) and not torch.equal(split_task(task, 4)[1], te)


def test_finetune_beats_its_untrained_start():
    from sklearn.metrics import roc_auc_score

    from geomask.methods import build_method

    task = _synthetic("a", 96, 1, "RKR")
    vocab = amino_vocab()
    items = [SequenceItem(t, None, vocab) for t in task.ids]
    torch.manual_seed(0)
    net = build_method("mlm", vocab_size=vocab.size, dim=32, depth=1, heads=2, max_len=32)
    model, head = finetune_head(net, items[:64], task.labels[:64], 150, 0)
    untrained = torch.nn.Linear(32, 2)
    with torch.no_grad():
        p = ripp._predict(model, head, items[64:])
        p0 = ripp._predict(net, untrained, items[64:])
    y = task.labels[64:].numpy()
    assert roc_auc_score(y, p) > 0.9 > roc_auc_score(y, p0) + 0.15
    assert any(not torch.equal(a, b) for a, b in zip(net.parameters(), model.parameters()))  # a copy was trained


def test_transfer_path_and_json_shape(tmp_path, monkeypatch, capsys):
    b = _synthetic("b", 40, 2, "KR")
    a = _synthetic("a", 60, 3, "KR", shared=b.sequences[1::2])  # A repeats B's positives: kept out of A by B's test
    monkeypatch.setattr(ripp, "load_peptide_task", {"a": a, "b": b}.__getitem__)
    out = tmp_path / "r.json"
    parser = argparse.ArgumentParser()
    add_ripp_eval_parser(parser.add_subparsers())
    argv = "ripp --json {} --methods kmer scratch mlm --seeds 0 1 --steps 2 --finetune-steps 2 --max-len 32 --quiet"
    ns = parser.parse_args(argv.format(out).split())
    ns.tasks = ["a", "b"]  # the parser only accepts modlamp's task names
    assert cmd_eval_ripp(ns) == 0
    r = json.loads(out.read_text())
    assert list(r["methods"]) == ["kmer", "scratch", "mlm"]
    for name, tasks in r["methods"].items():
        assert list(tasks) == ["a", "b"]
        assert {"accuracy", "auc", "accuracy_std", "auc_std"} <= set(tasks["a"])
        if name != "kmer":
            assert {"finetune_auc", "transfer_linear_auc", "transfer_auc", "transfer_accuracy"} <= set(tasks["b"])
            assert "transfer_auc" not in tasks["a"]
        assert all(0.0 <= v <= 1.0 for m in tasks.values() for k, v in m.items() if not k.endswith("_std"))
    sizes = r["data"]["sizes_last_seed"]
    assert sizes["B_test"] == 8 and sizes["A_removed_as_in_B_test"] == 4  # B's 4 positive test peptides
    assert sizes["A_train"] + sizes["A_test"] == 60 + 20 - 4
    assert sizes["pretraining_peptides"] <= sizes["A_train"] + sizes["B_train"]
    text = capsys.readouterr().out
    assert "transfer_auc" in text and "wrote" in text
    assert results_table(r).count("\n") == 2 + 6 - 1


def test_same_task_twice_is_refused():
    a = _synthetic("a", 20, 0, "KK")
    with pytest.raises(ValueError, match="two tasks"):
        evaluate_ripp(a, a, methods=["kmer"], progress=False)


def test_pretraining_corpus_follows_pretrain_on():
    b = _synthetic("b", 40, 2, "KR")
    a = _synthetic("a", 60, 3, "KR", shared=b.sequences[:6])  # 6 of B's peptides (either split) repeated in A
    got = {}
    for on in ("both", "a", "b"):
        r = evaluate_ripp(a, b, methods=["kmer"], pretrain_on=on, progress=False)
        got[on] = r["data"]["sizes_last_seed"]
    s = got["both"]
    assert got["a"]["pretraining_peptides"] == s["A_train"]
    assert got["b"]["pretraining_peptides"] <= s["B_train"]  # less the repeated peptides that are in A's test split
    # each repeated peptide left in A is once in the corpus (A and B train) or not at all (in A's test split)
    assert s["pretraining_peptides"] == s["A_train"] + s["B_train"] - (6 - s["A_removed_as_in_B_test"])
