"""``geomask eval ripp``: masked-LM peptide embeddings for two labelled peptide tasks, and transfer from one to the
other (task A → task B).

**What this reproduces, and what not.**  Clark, Mi, Mitchell & Shukla, *Substrate prediction for RiPP biosynthetic
enzymes via masked language modeling and transfer learning*, Digital Discovery 4, 343 (2025), arXiv:2402.15181:
masked language modelling on the peptides of one labelled set gives mean-pooled embeddings that improve downstream
classifiers of that set and of a second, related set, and a model fine-tuned on one set transfers to the other.
Their data (LazBF / LazDEF substrate libraries of the lactazole pathway) are not available here, and they continue
masked-LM training of a large pretrained protein language model (ESM-2); this reproduces the *protocol* on two
public tasks that the ``modlamp`` package bundles (:mod:`geomask.datasets.peptide_tasks`; default A = antimicrobial
vs UniProt proteins, B = anticancer vs random peptides of AMP composition) with a small masked LM trained from
scratch on a CPU (the registered method's ``configs/<name>_cpu.yaml`` network, ESM's alphabet).  Not reproduced:
the ESM-2 initialisation, their choice of downstream classifiers (one logistic regression here), their data-scarce
subsampling curves and their interpretation of the fine-tuned models.

**Splits.**  Per seed each task is split stratified 80 / 20 (``sklearn``'s ``train_test_split`` with the seed).
Every peptide of B's test split is removed from A (both splits; the modlamp sets share sequences), and the
pretraining corpus is the unique training peptides of A and B (``pretrain_on="both"``; ``"a"``: A's only, the paper's
setting of masked LM on one set probed on both), no label, no test peptide, optionally the pepnn peptides of
``pepnn``.

**Methods** (rows; per seed, per method, one network):

- ``kmer``: 1- and 2-mer composition and log length (:func:`~geomask.eval.sequences.kmer_features`), linear probe.
- ``scratch``: the first selected method's network with random weights (the same probes and fine-tunes).
- a registered ``sequences`` method (``mlm``, ...): pretrained ``steps`` steps
  (:func:`~geomask.eval.sequences.pretrain`) on the corpus.

**Metrics** (columns; accuracy and ROC AUC on the task's test split):

- ``accuracy``, ``auc``: logistic regression on standardised frozen mean-pooled features (``method.features``).
- ``finetune_*``: the encoder and a linear head on its mean-pooled features trained on the task
  (``finetune_steps`` steps, AdamW, lr 3e-4 encoder / 1e-3 head, batch 32).
- task B only — ``transfer_linear_*``: a linear probe on the features of the network fine-tuned on A;
  ``transfer_*``: that network fine-tuned again on B (a new head).  Compare with B's ``finetune_*`` (from the
  pretrained weights) and ``scratch``'s (from random weights).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from geomask.datasets.peptide_tasks import PeptideTask, load_peptide_task
from geomask.errors import UsageError
from geomask.eval.sequences import (
    build_sequence_method,
    cpu_config,
    finetune_head,
    kmer_features,
    logistic_probe,
    pooled_features,
    pretrain,
    sequence_methods,
    summarise_runs,
)
from geomask.sequences.batch import SequenceItem, collate_sequences
from geomask.sequences.vocab import Vocab, amino_vocab

__all__ = ["BASELINES", "evaluate_ripp", "results_table", "split_task"]

BASELINES = ("kmer", "scratch")
_TABLE = (
    "accuracy",
    "auc",
    "finetune_accuracy",
    "finetune_auc",
    "transfer_linear_accuracy",
    "transfer_linear_auc",
    "transfer_accuracy",
    "transfer_auc",
)


def split_task(task: PeptideTask, seed: int, test_size: float = 0.2) -> tuple[Tensor, Tensor]:
    """``(train_index, test_index)`` int64: a stratified split of ``task`` (``test_size`` of each class held out)."""
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(task))
    tr, te = train_test_split(idx, test_size=test_size, stratify=task.labels.numpy(), random_state=seed)
    return torch.from_numpy(np.sort(tr)), torch.from_numpy(np.sort(te))


def _items(task: PeptideTask, vocab: Vocab, max_len: int) -> list[SequenceItem]:
    return [SequenceItem(t[: max_len - 2], None, vocab) for t in task.ids]


def _scores(p: np.ndarray, y: np.ndarray, prefix: str) -> dict[str, float]:
    from sklearn.metrics import roc_auc_score

    return {f"{prefix}accuracy": float(((p > 0.5) == y).mean()), f"{prefix}auc": float(roc_auc_score(y, p))}


@torch.no_grad()
def _predict(model: nn.Module, head: nn.Module, items: Sequence[SequenceItem]) -> np.ndarray:
    return head(pooled_features(model, items)).softmax(-1)[:, 1].numpy()


def _probe(xtr: Tensor, ytr: Tensor, xte: Tensor, yte: Tensor, seed: int, prefix: str = "") -> dict[str, float]:
    r = logistic_probe(xtr.numpy(), ytr.numpy(), xte.numpy(), yte.numpy(), seed)
    return {f"{prefix}accuracy": r["linear_accuracy"], f"{prefix}auc": r["linear_auc"]}


def _check_methods(methods: Sequence[str] | None) -> list[str]:
    found = sequence_methods("sequences")
    if methods is None:
        return ["kmer", "scratch", "mlm" if "mlm" in found else found[0]]
    valid = (*BASELINES, *found)
    bad = [m for m in methods if m not in valid]
    if bad:
        raise UsageError(f"--methods: unknown or not a sequences method: {', '.join(bad)} (valid: {', '.join(valid)})")
    return list(dict.fromkeys(methods))


def _task(t: str | PeptideTask) -> PeptideTask:
    return t if isinstance(t, PeptideTask) else load_peptide_task(t)


def evaluate_ripp(
    source: str | PeptideTask = "amp_uniprot",
    target: str | PeptideTask = "acp_random",
    *,
    methods: Sequence[str] | None = None,
    seeds: Sequence[int] = (0,),
    steps: int = 300,
    finetune_steps: int = 200,
    max_len: int = 64,
    pepnn: str | None = None,
    pretrain_on: str = "both",
    progress: bool = True,
) -> dict[str, Any]:
    """``{"methods": {NAME: {TASK: {"accuracy", "auc", ...}}}, "data": ..., "config": ...}`` for task A =
    ``source`` → task B = ``target`` (module docstring); a metric averaged over ``seeds`` with ``*_std`` beside it
    when there are several.  ``max_len``: tokens per peptide with its two specials (longer ones are cut)."""
    names = _check_methods(methods)
    if pretrain_on not in ("both", "a", "b"):
        raise UsageError(f"pretrain_on must be 'both', 'a' or 'b', got {pretrain_on!r}")
    if max_len < 3:
        raise UsageError(f"--max-len must be at least 3 (two specials and a residue), got {max_len}")
    same = [t if isinstance(t, str) else t.name for t in (source, target)]
    if same[0] == same[1]:  # before loading: refused without modlamp too
        raise UsageError(f"task A and task B are both {same[0]!r}: transfer needs two tasks")
    a, b = _task(source), _task(target)
    nets = [m for m in names if m not in BASELINES]
    base = nets[0] if nets else ("mlm" if "mlm" in sequence_methods("sequences") else sequence_methods("sequences")[0])
    vocab = amino_vocab()
    extra: list[SequenceItem] = []
    if pepnn is not None:
        from geomask.eval.sequences import read_peptides

        extra = [SequenceItem(t[: max_len - 2], None, vocab) for t in read_peptides(pepnn).peptides]
    runs: dict[str, list[dict[str, dict[str, float]]]] = {m: [] for m in names}
    secs = {m: 0.0 for m in names}
    sizes: dict[str, Any] = {}
    for seed in seeds:
        btr, bte = split_task(b, seed)
        held = {b.sequences[i] for i in bte.tolist()}
        a_keep = torch.tensor([s not in held for s in a.sequences])
        a_seed = a.take(torch.nonzero(a_keep).squeeze(1))
        atr, ate = split_task(a_seed, seed)
        parts = {
            "A_train": a_seed.take(atr),
            "A_test": a_seed.take(ate),
            "B_train": b.take(btr),
            "B_test": b.take(bte),
        }
        items = {k: _items(v, vocab, max_len) for k, v in parts.items()}
        ys = {k: v.labels for k, v in parts.items()}
        test_seqs = set(parts["A_test"].sequences) | held
        corpus_seqs: dict[str, SequenceItem] = {}
        for k in {"both": ("A_train", "B_train"), "a": ("A_train",), "b": ("B_train",)}[pretrain_on]:
            for s, it in zip(parts[k].sequences, items[k]):
                if s not in test_seqs:
                    corpus_seqs.setdefault(s, it)
        corpus = list(corpus_seqs.values()) + extra
        sizes = {k: len(v) for k, v in parts.items()} | {
            "A_removed_as_in_B_test": int((~a_keep).sum()),
            "pretraining_peptides": len(corpus),
        }
        for name in names:
            t0 = time.perf_counter()
            if name == "kmer":
                f = {k: kmer_features(collate_sequences(v), vocab.size) for k, v in items.items()}
                r = {
                    a.name: _probe(f["A_train"], ys["A_train"], f["A_test"], ys["A_test"], seed),
                    b.name: _probe(f["B_train"], ys["B_train"], f["B_test"], ys["B_test"], seed),
                }
            else:
                net = base if name == "scratch" else name
                cfg = cpu_config(net)
                cfg.setdefault("method", {})["max_len"] = max(max_len, int(cfg["method"].get("max_len", max_len)))
                model = build_sequence_method(net, cfg, vocab, seed)
                if name != "scratch":
                    with torch.enable_grad():
                        pretrain(model, corpus, steps, cfg, seed)
                model.eval()
                f = {k: pooled_features(model, v) for k, v in items.items()}
                ra = _probe(f["A_train"], ys["A_train"], f["A_test"], ys["A_test"], seed)
                rb = _probe(f["B_train"], ys["B_train"], f["B_test"], ys["B_test"], seed)
                yte_a, yte_b = ys["A_test"].numpy(), ys["B_test"].numpy()
                fb, hb = finetune_head(model, items["B_train"], ys["B_train"], finetune_steps, seed)
                rb |= _scores(_predict(fb, hb, items["B_test"]), yte_b, "finetune_")
                fa, ha = finetune_head(model, items["A_train"], ys["A_train"], finetune_steps, seed)
                ra |= _scores(_predict(fa, ha, items["A_test"]), yte_a, "finetune_")
                ga = {k: pooled_features(fa, items[k]) for k in ("B_train", "B_test")}
                rb |= _probe(ga["B_train"], ys["B_train"], ga["B_test"], ys["B_test"], seed, "transfer_linear_")
                fab, hab = finetune_head(fa, items["B_train"], ys["B_train"], finetune_steps, seed)
                rb |= _scores(_predict(fab, hab, items["B_test"]), yte_b, "transfer_")
                r = {a.name: ra, b.name: rb}
            runs[name].append(r)
            secs[name] += time.perf_counter() - t0
            if progress:
                print(
                    f"  {name} seed {seed}: {b.name} auc {r[b.name]['auc']:.3f} ({time.perf_counter() - t0:.0f} s)",
                    file=sys.stderr,
                    flush=True,
                )
    data = {
        "task_a": {"name": a.name, "source": a.source, "classes": list(a.class_names), "peptides": len(a)},
        "task_b": {"name": b.name, "source": b.source, "classes": list(b.class_names), "peptides": len(b)},
        "split": "stratified 80/20 per task and seed; B's test peptides removed from A",
        "sizes_last_seed": sizes,
        "pepnn": pepnn,
        "pretrained_on": {"both": "A and B training peptides", "a": "A training peptides", "b": "B training peptides"}[
            pretrain_on
        ],
    }
    cfg = {
        "seeds": list(seeds),
        "steps": steps,
        "finetune_steps": finetune_steps,
        "max_len": max_len,
        "scratch_network": base,
        **{f"{m}_seconds": round(s, 1) for m, s in secs.items()},
    }
    return {"methods": summarise_runs(runs), "data": data, "config": cfg}


def results_table(result: dict[str, Any]) -> str:
    """One row per (method, task): the metric columns present (``mean ± std`` with several seeds; ``-`` where a
    metric does not apply)."""
    per = [(n, t, m) for n, tasks in result["methods"].items() for t, m in tasks.items()]
    cols = [k for k in _TABLE if any(k in m for _, _, m in per)]
    rows = [("method", "task", *cols)]
    for n, t, m in per:
        cells = [
            (f"{m[k]:.3f}" + (f" ± {m[k + '_std']:.3f}" if k + "_std" in m else "")) if k in m else "-" for k in cols
        ]
        rows.append((n, t, *cells))
    width = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, width)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in width))
    return "\n".join(lines)
