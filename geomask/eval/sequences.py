"""``geomask eval text|sequences``: masked-token accuracy and pseudo-perplexity on held-out text and peptides, and
peptide probes, for every registered sequence method against ``scratch`` and ``unigram``.

**Data.**  Text: the non-empty lines of ``--train`` (:func:`~geomask.datasets.text.read_lines`), a WordPiece
tokenizer of ``vocab_size`` trained on them, every line cut into pieces of ``max_len - 2`` tokens.  Without
``--test`` the last :data:`TEST_FRACTION` of the lines (contiguous, so mostly other articles) are held out.
Peptides: the pepnn CSV columns ``Sequence`` (peptide), ``Receptor Sequence`` and ``Buried surface area``, ESM's
alphabet; a row with a bad residue letter or number is one ``FILE:LINE`` line and is left out.  Without ``--test``
the rows whose receptor ``Cluster`` is divisible by :data:`CLUSTER_MODULUS` are held out (whole receptor clusters,
so no receptor is on both sides).  Pretraining reads the training peptides and receptors (receptors cut into pieces).

**Pretraining.**  Per method and seed: ``configs/<name>_cpu.yaml``'s ``method`` (``vocab_size`` set to the data's)
and ``optim`` sections and ``data.batch_size``, ``steps`` steps of the method's own loss (warm-up and schedule as the
engine's), random batches of the training items, the seed's generator.

**Masked-token metrics** (:func:`pseudo_perplexity`): on at most ``max_test`` held-out items, every scored position
is masked alone (one copy of its sequence each, many copies per forward); ``accuracy`` is the share of positions
whose argmax is the true token, ``pseudo_perplexity`` ``exp`` of the mean negative log-likelihood over all scored
positions.  A sequence longer than ``max_positions`` maskable tokens is scored on a uniform sample of that many
(generator seeded 0: the same positions for every method and seed).

**Baselines.**  ``scratch``: the first method's network as built with the seed, no pretraining (its masked-token
metrics are the untrained network's; its probes are a linear probe on its random frozen features and the same
fine-tune from random weights).  ``unigram``: token frequencies of the training items (add-one smoothed over the
regular ids): accuracy = always the most frequent token, pseudo-perplexity = ``exp`` of the unigram cross-entropy,
on the same positions; its peptide probe reads k-mer features (k = 1, 2 composition and log length).

**Peptide probe task** (the CSV has no classes): does the peptide bury more surface area at the interface than the
training rows' median (``Buried surface area > median``), from the peptide sequence alone.  ``linear``: a logistic
regression on standardised frozen mean-pooled features; ``finetune``: the encoder and a linear head on its
mean-pooled features trained ``finetune_steps`` steps (AdamW, lr 1e-3 head / 3e-4 encoder, batch 32).  Accuracy
and ROC AUC on the held-out rows.

A method whose ``logits(inputs, attention_mask) -> [B, L, V]`` is not a masked-token prediction (a class attribute
``masked_lm = False``) or that has no ``logits`` gets probes only. A causal LM (class attribute ``lm_scoring =
"causal"`` and ``causal_logits(ids, attention_mask) -> [B, L, V]``: CLM) is scored at the same positions by what it
was trained to do, ``log p(x_t | x_<t)`` from position ``t - 1`` of the unmasked sequence: its ``accuracy`` and
``pseudo_perplexity`` are then next-token accuracy and perplexity over those positions (a masked copy read by a
causal encoder would ask it a question it never learned).
"""

from __future__ import annotations

import copy
import csv
import io
import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from geomask.errors import FormatError, MissingFileError, UsageError
from geomask.sequences.batch import SequenceBatch, SequenceItem, collate_sequences
from geomask.sequences.vocab import Vocab

__all__ = [
    "CLUSTER_MODULUS",
    "TEST_FRACTION",
    "Peptides",
    "build_sequence_method",
    "cpu_config",
    "evaluate_sequences",
    "evaluate_text",
    "finetune_head",
    "finetune_probe",
    "held_out_batch",
    "kmer_features",
    "logistic_probe",
    "pooled_features",
    "pretrain",
    "pseudo_perplexity",
    "read_peptides",
    "results_table",
    "score_positions",
    "select_positions",
    "sequence_methods",
    "split_pieces",
    "summarise_runs",
    "unigram_scores",
]

TEST_FRACTION = 0.1
"""Text without ``--test``: the last 10 % of the lines are held out."""
CLUSTER_MODULUS = 5
"""Peptides without ``--test``: rows with ``Cluster % 5 == 0`` are held out (about 20 %)."""
CONFIGS = Path(__file__).resolve().parents[2] / "configs"
_BATCH_ELEMENTS = 1 << 24  # [copies, L, V] logits (or [copies, L, 4E] MLP states) per forward: 64 MB


def sequence_methods(kind: str) -> tuple[str, ...]:
    """Registered methods whose ``data_kinds`` hold ``kind`` (``"text"`` or ``"sequences"``) and that ship
    ``configs/<name>_cpu.yaml``, sorted."""
    from geomask.methods.registry import METHODS, method_data_kinds

    return tuple(
        n for n in sorted(METHODS) if kind in (method_data_kinds(n) or ()) and (CONFIGS / f"{n}_cpu.yaml").is_file()
    )


def _has_mlm(method: nn.Module) -> bool:
    return callable(getattr(method, "logits", None)) and getattr(method, "masked_lm", True)


def select_positions(batch: SequenceBatch, max_positions: int | None = None, generator: torch.Generator | None = None):
    """``[B, L]`` bool: the maskable positions of every sequence, or a uniform sample of ``max_positions`` of them
    (without replacement, from ``generator``) where a sequence has more."""
    keep = batch.maskable
    if max_positions is None or keep.size(1) <= max_positions:
        return keep
    noise = torch.rand(keep.shape, generator=generator).to(keep.device)
    noise = noise.masked_fill(~keep, 2.0)  # non-maskable positions sort last
    rank = noise.argsort(1).argsort(1)
    return keep & (rank < max_positions)


def _mlm_head(method: nn.Module) -> bool:
    """True when ``method.logits`` is MLM's ``head(encoder(...))``: then only the scored rows reach the head."""
    from geomask.methods.mlm import MLM

    return isinstance(method, MLM) and type(method).logits is MLM.logits


@torch.no_grad()
def score_positions(method: nn.Module, batch: SequenceBatch, positions: Tensor) -> tuple[Tensor, Tensor]:
    """Mask every selected position alone and score it: ``(log p(true token) [K], argmax == true [K])`` over the
    ``K`` positions of ``positions [B, L]`` in row-major order.

    One masked copy of its sequence per position, as many copies per forward as keep ``[copies, L, V]`` logits
    (MLM and its subclasses: ``[copies, L, E]`` hidden states, only the scored rows reach the head) under 16 M
    elements; ``method.logits(inputs, attention_mask) -> [B, L, V]``.
    """
    if not callable(getattr(method, "logits", None)):
        raise UsageError(f"{type(method).__name__} has no logits(inputs, attention_mask): no masked-token scores")
    rows, cols = torch.nonzero(positions, as_tuple=True)
    truth = batch.ids[rows, cols]
    logp, hit = torch.empty(rows.numel()), torch.empty(rows.numel(), dtype=torch.bool)
    if rows.numel() == 0:
        return logp, hit
    if getattr(method, "lm_scoring", "masked") == "causal":
        return _score_causal(method, batch, rows, cols, truth)
    was = method.training
    method.eval()
    fast = _mlm_head(method)
    per_copy = batch.ids.size(1) * (4 * method.encoder.dim if fast else batch.vocab.size)
    chunk = max(1, _BATCH_ELEMENTS // per_copy)
    for s in range(0, rows.numel(), chunk):
        r, c = rows[s : s + chunk], cols[s : s + chunk]
        inputs = batch.ids[r].clone()
        k = torch.arange(r.numel())
        inputs[k, c] = batch.vocab.mask_id
        attn = batch.attention_mask[r]
        logits = method.head(method.encoder(inputs, attn)[k, c]) if fast else method.logits(inputs, attn)[k, c]
        logits = logits.float().log_softmax(-1)
        logp[s : s + chunk] = logits.gather(1, truth[s : s + chunk, None]).squeeze(1).cpu()
        hit[s : s + chunk] = (logits.argmax(-1) == truth[s : s + chunk]).cpu()
    method.train(was)
    return logp, hit


@torch.no_grad()
def _score_causal(method: nn.Module, batch: SequenceBatch, rows: Tensor, cols: Tensor, truth: Tensor):
    """``(log p(x_t | x_<t) [K], argmax == x_t [K])`` at ``(rows, cols)`` from ``method.causal_logits`` of the
    unmasked sequences (position ``t - 1`` predicts token ``t``; scored positions are never the first)."""
    was = method.training
    method.eval()
    logp, hit = torch.empty(rows.numel()), torch.empty(rows.numel(), dtype=torch.bool)
    chunk = max(1, _BATCH_ELEMENTS // (batch.ids.size(1) * batch.vocab.size))
    for s in range(0, batch.ids.size(0), chunk):
        sel = (rows >= s) & (rows < s + chunk)
        if not bool(sel.any()):
            continue
        logits = method.causal_logits(batch.ids[s : s + chunk], batch.attention_mask[s : s + chunk])
        out = logits[rows[sel] - s, (cols[sel] - 1).clamp(min=0)].float().log_softmax(-1)
        logp[sel] = out.gather(1, truth[sel, None]).squeeze(1).cpu()
        hit[sel] = (out.argmax(-1) == truth[sel]).cpu()
    method.train(was)
    return logp, hit


def pseudo_perplexity(
    method: nn.Module,
    batch: SequenceBatch,
    positions: Tensor | None = None,
    *,
    max_positions: int | None = None,
    generator: torch.Generator | None = None,
    per_sequence: bool = False,
) -> Tensor:
    r"""Pseudo-perplexity (Salazar et al. 2020) of a masked LM on a batch: each position masked once, alone.

    .. math::
        \mathrm{PPPL} = \exp\Big(-\frac{1}{|P|} \sum_{(b, t) \in P} \log p(x_{b,t} \mid x_{b,\setminus t})\Big)

    Args:
        method: a method with ``logits(inputs [B, L], attention_mask [B, L]) -> [B, L, V]`` (MLM's).
        batch: the sequences.
        positions: ``[B, L]`` bool, the positions ``P`` to score (e.g. only the peptide after a receptor); default
            every maskable (real, non-special) token, or a sample of ``max_positions`` per sequence
            (:func:`select_positions` with ``generator``).
        per_sequence: ``[B]`` one value per sequence over its own positions (``nan`` where it has none) instead of
            one over all positions.

    Returns:
        a scalar tensor, or ``[B]`` with ``per_sequence``.

    Batched: many masked copies per forward (:func:`score_positions`), no loop over tokens.
    """
    if positions is None:
        positions = select_positions(batch, max_positions, generator)
    logp, _ = score_positions(method, batch, positions)
    if not per_sequence:
        return torch.exp(-logp.mean()) if logp.numel() else torch.tensor(float("nan"))
    rows = torch.nonzero(positions, as_tuple=True)[0].cpu()
    n = torch.zeros(len(batch)).index_add_(0, rows, torch.ones_like(logp))
    total = torch.zeros(len(batch)).index_add_(0, rows, logp)
    return torch.exp(-total / n)  # nan where n == 0


def unigram_scores(train: Sequence[SequenceItem], test: SequenceBatch, positions: Tensor) -> dict[str, float]:
    """The unigram baseline on ``positions`` of ``test``: add-one smoothed frequencies of the training items'
    regular tokens; ``accuracy`` of always guessing the most frequent, ``pseudo_perplexity`` = exp(cross-entropy)."""
    vocab = test.vocab
    counts = torch.bincount(torch.cat([it.ids for it in train]), minlength=vocab.size).double()
    special = vocab.special_table()
    counts = (counts + 1).masked_fill(special, 0)
    logp = (counts / counts.sum()).log()
    truth = test.ids[positions]
    return {
        "accuracy": float((truth == counts.argmax()).double().mean()),
        "pseudo_perplexity": float(torch.exp(-logp[truth].mean())),
    }


def _mlm_metrics(method: nn.Module, test: SequenceBatch, positions: Tensor) -> dict[str, float]:
    logp, hit = score_positions(method, test, positions)
    return {"accuracy": float(hit.float().mean()), "pseudo_perplexity": float(torch.exp(-logp.mean()))}


# ----------------------------------------------------------------------------------------------- pretraining


def cpu_config(name: str) -> dict[str, Any]:
    """The resolved ``configs/<name>_cpu.yaml`` as a plain dict (the settings a short evaluation run takes).

    Raises:
        UsageError: no such shipped CPU config.
    """
    from omegaconf import OmegaConf

    path = CONFIGS / f"{name}_cpu.yaml"
    if not path.is_file():
        raise UsageError(f"method {name!r}: no {path.name} in {CONFIGS} to take its settings from")
    return OmegaConf.to_container(OmegaConf.load(path), resolve=True)  # type: ignore[return-value]


def build_sequence_method(
    name: str, cfg: dict[str, Any], vocab: Vocab, seed: int, corpus: Sequence[SequenceItem] | None = None
) -> nn.Module:
    """Method ``name`` built from ``cfg``'s ``method`` section with ``vocab_size = vocab.size``, its weights
    initialised under ``torch.manual_seed(seed)``.

    A method that takes an n-gram ``lexicon`` (ERNIE-Gram) gets one mined from ``corpus`` (the evaluation's
    training items, in this vocabulary) with its config's ``lexicon_size`` / ``min_count`` / ``measure``: a
    lexicon named in a CPU config belongs to another vocabulary (the GENERATED text's) and would mean nothing here.
    """
    from geomask.methods import build_method
    from geomask.methods.registry import method_defaults, method_keywords

    kw = {k: v for k, v in cfg.get("method", {}).items() if k != "name"}
    kw["vocab_size"] = vocab.size
    if corpus is not None and "lexicon" in method_keywords(name):
        from geomask.sequences.ngrams import mine_lexicon

        opts = {**method_defaults(name), **kw}
        ids = torch.cat([it.ids for it in corpus]) if corpus else torch.zeros(0, dtype=torch.long)
        offsets = torch.tensor([0] + [len(it.ids) for it in corpus]).cumsum(0)
        lex = mine_lexicon(
            ids,
            offsets,
            vocab_size=vocab.size,
            top_k=int(opts["lexicon_size"]),
            min_count=int(opts["min_count"]),
            measure=str(opts["measure"]),
        )
        kw["lexicon"] = [row[:n].tolist() for row, n in zip(lex.grams, lex.lengths)]
    torch.manual_seed(seed)
    return build_method(name, **kw)


def _lr_factor(o: dict[str, Any], steps: int) -> Callable[[int], float]:
    warmup = min(int(o.get("warmup_steps", 0)), steps // 10)  # a short run keeps most of its steps at full rate
    sched, floor = o.get("scheduler", "none"), float(o.get("min_lr", 0.0)) / float(o.get("lr", 1e-3))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        if sched == "none":
            return 1.0
        t = min(1.0, (step - warmup) / max(1, steps - warmup))
        return floor + (1 - floor) * (0.5 * (1 + math.cos(math.pi * t)) if sched == "cosine" else 1 - t)

    return factor


def pretrain(method: nn.Module, items: Sequence[SequenceItem], steps: int, cfg: dict[str, Any], seed: int) -> None:
    """``steps`` optimiser steps of ``method``'s loss on random batches of ``items`` (``cfg``'s ``optim`` section
    and ``data.batch_size``; warm-up capped at a tenth of the run)."""
    o = cfg.get("optim", {})
    bs = int(cfg.get("data", {}).get("batch_size", 32))
    cls = torch.optim.Adam if o.get("name") == "adam" else torch.optim.AdamW
    params = [p for p in method.parameters() if p.requires_grad]
    opt = cls(params, lr=float(o.get("lr", 1e-3)), weight_decay=float(o.get("weight_decay", 0.0)))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _lr_factor(o, steps))
    gen = torch.Generator().manual_seed(seed)
    clip = float(o.get("grad_clip", 0.0))
    method.train()
    order = torch.randperm(len(items), generator=gen)
    at = 0
    for step in range(steps):
        if at + bs > len(order):
            order, at = torch.randperm(len(items), generator=gen), 0
        batch = collate_sequences([items[i] for i in order[at : at + bs].tolist()])
        at += bs
        loss = method(batch, gen)["loss"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if clip > 0:
            nn.utils.clip_grad_norm_(params, clip)
        opt.step()
        sched.step()
        method.on_train_step_end(step)
    method.eval()


# ----------------------------------------------------------------------------------------------------- data


def split_pieces(
    ids: Sequence[Tensor], vocab: Vocab, max_len: int, words: Sequence[Tensor] | None = None
) -> list[SequenceItem]:
    """Records cut into consecutive pieces that fit ``max_len`` with the vocabulary's ``[CLS]``/``[SEP]``.

    Args:
        ids: ``[n_i]`` token ids per record.
        vocab: the records' vocabulary.
        max_len: the model's longest sequence, special tokens included.
        words: ``[n_i]`` word index of every token per record (renumbered from 0 in each piece); ``None``: none.
    """
    n = max_len - int(vocab.cls_id is not None) - int(vocab.sep_id is not None)
    out = []
    for i, t in enumerate(ids):  # one slice per piece (records, not tokens)
        for s in range(0, len(t), n):
            w = None if words is None else words[i][s : s + n] - words[i][s]
            out.append(SequenceItem(t[s : s + n], w, vocab))
    return out


def _read_text(path: str | Path) -> list[str]:
    from geomask.datasets.text import read_lines

    path = Path(path)
    if not path.is_file():
        raise MissingFileError(path)
    failures: list = []
    lines = read_lines(path, failures, [])
    for _, msg in failures:
        print(f"error: {msg}", file=sys.stderr)
    if not lines:
        raise FormatError(path, "no text lines")
    return lines


@dataclass(frozen=True)
class Peptides:
    """Rows of a pepnn CSV: ``peptides`` and ``receptors`` (residue ids ``[n]`` each), ``area`` buried surface
    area ``[R]`` float64, ``cluster`` ``[R]`` int64."""

    peptides: list[Tensor]
    receptors: list[Tensor]
    area: Tensor
    cluster: Tensor

    def take(self, keep: Tensor) -> Peptides:
        idx = torch.nonzero(keep).squeeze(1).tolist()
        return Peptides(
            [self.peptides[i] for i in idx], [self.receptors[i] for i in idx], self.area[keep], self.cluster[keep]
        )


def read_peptides(path: str | Path) -> Peptides:
    """The rows of a pepnn CSV (module docstring); a bad row is one ``error: FILE:LINE: ...`` line and left out.

    Raises:
        MissingFileError: no such file.  FormatError: not UTF-8, a column missing, or no good row.
    """
    from geomask.sequences.vocab import encode_protein, invalid_residues

    path = Path(path)
    if not path.is_file():
        raise MissingFileError(path)
    try:
        reader = csv.DictReader(io.StringIO(path.read_text(encoding="utf-8")))
    except UnicodeDecodeError as e:
        raise FormatError(path, f"not UTF-8 text (byte {e.start})") from None
    need = ("Sequence", "Receptor Sequence", "Buried surface area", "Cluster")
    missing = [c for c in need if c not in (reader.fieldnames or [])]
    if missing:
        raise FormatError(path, f"no column(s) {', '.join(map(repr, missing))} (a pepnn CSV has {', '.join(need)})")
    pep, rec, area, cluster = [], [], [], []
    for k, row in enumerate(reader):
        seqs = [(row.get(c) or "").strip() for c in need[:2]]
        bad = [
            f"{c} {''.join(invalid_residues(s)) or '(empty)'}"
            for c, s in zip(need[:2], seqs)
            if not s or invalid_residues(s)
        ]
        try:
            a, c = float(row.get(need[2]) or "nan"), int(row.get(need[3]) or "")
        except ValueError:
            a, c = math.nan, -1
        if bad or not math.isfinite(a):
            why = f"invalid residues: {'; '.join(bad)}" if bad else "no number in Buried surface area / Cluster"
            print(f"error: {path}:{k + 2}: {why}; row left out", file=sys.stderr)
            continue
        p, r = encode_protein(seqs)
        pep.append(p), rec.append(r), area.append(a), cluster.append(c)
    if not pep:
        raise FormatError(path, "no usable row")
    return Peptides(pep, rec, torch.tensor(area, dtype=torch.float64), torch.tensor(cluster))


def kmer_features(batch: SequenceBatch, alphabet: int = 33) -> Tensor:
    """``[B, A + A² + 1]`` float: 1-mer and 2-mer composition (counts / length) of the maskable tokens and the log
    length, one scatter each (ids index ``A = alphabet`` bins)."""
    keep = batch.maskable
    b, n = keep.shape
    ones = keep.float()
    one = torch.zeros(b, alphabet).scatter_add_(1, batch.ids, ones)
    pair_ok = keep[:, 1:] & keep[:, :-1]
    two = torch.zeros(b, alphabet * alphabet).scatter_add_(
        1, batch.ids[:, :-1] * alphabet + batch.ids[:, 1:], pair_ok.float()
    )
    length = ones.sum(1, keepdim=True).clamp_min(1)
    return torch.cat([one / length, two / (length - 1).clamp_min(1), length.log()], 1)


# --------------------------------------------------------------------------------------------------- probes


def logistic_probe(xtr: np.ndarray, ytr: np.ndarray, xte: np.ndarray, yte: np.ndarray, seed: int) -> dict[str, float]:
    """Standardised logistic regression (scikit-learn) on ``[N, F]`` features with binary labels.

    Returns:
        ``linear_accuracy`` and ``linear_auc`` (ROC AUC) on the test rows.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, random_state=seed))
    clf.fit(xtr, ytr)
    return {
        "linear_accuracy": float((clf.predict(xte) == yte).mean()),
        "linear_auc": float(roc_auc_score(yte, clf.predict_proba(xte)[:, 1])),
    }


@torch.no_grad()
def pooled_features(method: nn.Module, items: Sequence[SequenceItem], bs: int = 256) -> Tensor:
    """``method.features`` of ``items`` in eval mode without gradients, ``bs`` items per batch, ``[N, E]``."""
    method.eval()
    return torch.cat([method.features(collate_sequences(items[i : i + bs])) for i in range(0, len(items), bs)])


def finetune_head(method: nn.Module, items: Sequence[SequenceItem], labels: Tensor, steps: int, seed: int):
    """A copy of ``method`` and a new linear head on its mean-pooled features, trained ``steps`` steps of
    cross-entropy on random batches of 32 (AdamW, lr 3e-4 encoder / 1e-3 head; the seed's generator).

    Returns:
        ``(model, head)``, both in eval mode.
    """
    model = copy.deepcopy(method)
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    head = nn.Linear(pooled_features(model, items[:2]).shape[1], 2)
    opt = torch.optim.AdamW([{"params": model.parameters(), "lr": 3e-4}, {"params": head.parameters(), "lr": 1e-3}])
    model.train()
    with torch.enable_grad():
        for _ in range(steps):
            idx = torch.randint(len(items), (32,), generator=gen)
            logits = head(model.features(collate_sequences([items[i] for i in idx.tolist()])))
            loss = nn.functional.cross_entropy(logits, labels[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    model.eval()
    head.eval()
    return model, head


def finetune_probe(
    method: nn.Module,
    train: Sequence[SequenceItem],
    ytr: Tensor,
    test: Sequence[SequenceItem],
    yte: np.ndarray,
    steps: int,
    seed: int,
) -> dict[str, float]:
    """Fine-tune a copy of ``method``'s encoder with a linear head on its mean-pooled features.

    ``steps`` AdamW steps (encoder lr 3e-4, head 1e-3) on random batches of 32 ``train`` items with labels ``ytr``
    ``[N]`` int64; ``method`` itself is left unchanged.

    Returns:
        ``finetune_accuracy`` and ``finetune_auc`` on ``test`` with labels ``yte``.
    """
    from sklearn.metrics import roc_auc_score

    model, head = finetune_head(method, train, ytr, steps, seed)
    with torch.no_grad():
        p = head(pooled_features(model, test)).softmax(-1)[:, 1].numpy()
    return {"finetune_accuracy": float(((p > 0.5) == yte).mean()), "finetune_auc": float(roc_auc_score(yte, p))}


# ------------------------------------------------------------------------------------------------ the runs


def _check_methods(methods: Sequence[str] | None, kind: str) -> list[str]:
    found = sequence_methods(kind)
    if methods is None:
        return ["scratch", "unigram", *found]
    valid = ("scratch", "unigram", *found)
    bad = [m for m in methods if m not in valid]
    if bad:
        raise UsageError(f"--methods: unknown or not a {kind} method: {', '.join(bad)} (valid: {', '.join(valid)})")
    return list(dict.fromkeys(methods))


def summarise_runs(runs: dict[str, list[dict[str, dict[str, float]]]]) -> dict[str, Any]:
    """Mean over seeds of every metric, ``runs[method][seed][part][metric]`` → ``out[method][part][metric]``
    (plus ``<metric>_std`` where there are several seeds)."""
    out: dict[str, Any] = {}
    for name, per_seed in runs.items():
        out[name] = {}
        for part in per_seed[0]:
            vals = {k: np.array([r[part][k] for r in per_seed]) for k in per_seed[0][part]}
            out[name][part] = {k: float(v.mean()) for k, v in vals.items()}
            if len(per_seed) > 1:
                out[name][part].update({f"{k}_std": float(v.std()) for k, v in vals.items()})
    return out


def _run(
    kind: str,
    methods: list[str],
    seeds: Sequence[int],
    steps: int,
    train_items: list[SequenceItem],
    test: SequenceBatch,
    positions: Tensor,
    probe: Callable[[nn.Module | None, int], dict[str, float]] | None,
    progress: bool,
) -> tuple[dict[str, Any], dict[str, float]]:
    vocab = test.vocab
    pretrained = [m for m in methods if m not in ("scratch", "unigram")]
    base = pretrained[0] if pretrained else sequence_methods(kind)[0]
    runs: dict[str, list[dict[str, dict[str, float]]]] = {m: [] for m in methods}
    secs = {m: 0.0 for m in methods}
    for seed in seeds:
        for name in methods:
            t0 = time.perf_counter()
            if name == "unigram":
                r = {"mlm": unigram_scores(train_items, test, positions)}
                if probe is not None:
                    r["probe"] = probe(None, seed)
            else:
                cfg = cpu_config(base if name == "scratch" else name)
                model = build_sequence_method(base if name == "scratch" else name, cfg, vocab, seed, train_items)
                if name != "scratch":
                    with torch.enable_grad():
                        pretrain(model, train_items, steps, cfg, seed)
                r = {"mlm": _mlm_metrics(model, test, positions)} if _has_mlm(model) else {}
                if probe is not None:
                    with torch.enable_grad():
                        r["probe"] = probe(model, seed)
            runs[name].append(r)
            secs[name] += time.perf_counter() - t0
            if progress:
                mlm = r.get("mlm", {})
                print(
                    f"  {name} seed {seed}: accuracy {mlm.get('accuracy', float('nan')):.4f}, "
                    f"PPPL {mlm.get('pseudo_perplexity', float('nan')):.4g} ({time.perf_counter() - t0:.0f} s)",
                    file=sys.stderr,
                    flush=True,
                )
    return summarise_runs(runs), {"scratch_network": base, **{f"{m}_seconds": round(s, 1) for m, s in secs.items()}}


def held_out_batch(items: list[SequenceItem], max_test: int, max_positions: int) -> tuple[SequenceBatch, Tensor]:
    """At most ``max_test`` items spread evenly over ``items``, collated, and the positions scored in them
    (:func:`select_positions`, at most ``max_positions`` per sequence, seed 0)."""
    if len(items) > max_test:  # an even spread over the held-out items
        idx = torch.linspace(0, len(items) - 1, max_test).round().long().unique().tolist()
        items = [items[i] for i in idx]
    batch = collate_sequences(items)
    return batch, select_positions(batch, max_positions, torch.Generator().manual_seed(0))


def evaluate_text(
    train: str | Path,
    test: str | Path | None = None,
    *,
    methods: Sequence[str] | None = None,
    seeds: Sequence[int] = (0,),
    steps: int = 1000,
    vocab_size: int = 4000,
    max_len: int = 128,
    max_test: int = 256,
    max_positions: int = 32,
    progress: bool = True,
) -> dict[str, Any]:
    """``{"methods": {NAME: {"mlm": {"accuracy", "pseudo_perplexity"}}}, "data": ..., "config": ...}`` on held-out
    text (module docstring)."""
    from geomask.sequences.tokenizer import encode_texts, tokenizer_vocab, train_tokenizer

    names = _check_methods(methods, "text")
    lines = _read_text(train)
    if test is None:
        cut = len(lines) - max(1, math.ceil(TEST_FRACTION * len(lines)))
        if cut < 1:
            raise FormatError(train, f"{len(lines)} line(s): too few to hold out {TEST_FRACTION:.0%}; give --test")
        lines, held = lines[:cut], lines[cut:]
    else:
        held = _read_text(test)
    tok = train_tokenizer(lines, vocab_size, "wordpiece")
    vocab = tokenizer_vocab(tok)
    ids, words = encode_texts(tok, lines)
    tr_items = [it for it in split_pieces(ids, vocab, max_len, words) if len(it.ids)]
    ids, words = encode_texts(tok, held)
    te_items = [it for it in split_pieces(ids, vocab, max_len, words) if len(it.ids)]
    batch, positions = held_out_batch(te_items, max_test, max_positions)
    result, extra = _run("text", names, seeds, steps, tr_items, batch, positions, None, progress)
    data = {
        "train": str(train),
        "test": str(test) if test else f"the last {TEST_FRACTION:.0%} of {train}'s lines",
        "train_lines": len(lines),
        "test_lines": len(held),
        "vocab_size": vocab.size,
        "scored_sequences": len(batch),
        "scored_positions": int(positions.sum()),
    }
    cfg = {"seeds": list(seeds), "steps": steps, "max_positions": max_positions, **extra}
    return {"methods": result, "data": data, "config": cfg}


def evaluate_sequences(
    train: str | Path,
    test: str | Path | None = None,
    *,
    methods: Sequence[str] | None = None,
    seeds: Sequence[int] = (0,),
    steps: int = 1000,
    finetune_steps: int = 200,
    max_len: int = 128,
    max_test: int = 512,
    max_positions: int = 32,
    receptors: bool = True,
    progress: bool = True,
) -> dict[str, Any]:
    """``{"methods": {NAME: {"mlm": {...}, "probe": {"linear_accuracy", "linear_auc", "finetune_accuracy",
    "finetune_auc"}}}, "data": ..., "config": ...}`` on held-out peptides (module docstring); ``receptors``: the
    training receptors join the pretraining corpus."""
    from geomask.sequences.vocab import amino_vocab

    names = _check_methods(methods, "sequences")
    rows = read_peptides(train)
    if test is None:
        held = rows.cluster % CLUSTER_MODULUS == 0
        if bool(held.all()) or not bool(held.any()):
            raise FormatError(train, f"no split: every row or no row has Cluster % {CLUSTER_MODULUS} == 0; give --test")
        rows, test_rows = rows.take(~held), rows.take(held)
    else:
        test_rows = read_peptides(test)
    vocab = amino_vocab()
    pep_tr = split_pieces(rows.peptides, vocab, max_len)
    pep_te = split_pieces(test_rows.peptides, vocab, max_len)
    corpus = pep_tr + (
        split_pieces(list({tuple(r.tolist()): r for r in rows.receptors}.values()), vocab, max_len) if receptors else []
    )
    median = float(rows.area.median())
    ytr = (rows.area > median).long()
    yte = (test_rows.area > median).numpy().astype(np.int64)
    batch, positions = held_out_batch(pep_te, max_test, max_positions)

    def probe(model: nn.Module | None, seed: int) -> dict[str, float]:
        if model is None:  # the k-mer baseline
            f = [kmer_features(collate_sequences(x), vocab.size).numpy() for x in (pep_tr, pep_te)]
            return logistic_probe(f[0], ytr.numpy(), f[1], yte, seed)
        out = logistic_probe(
            pooled_features(model, pep_tr).numpy(), ytr.numpy(), pooled_features(model, pep_te).numpy(), yte, seed
        )
        return {**out, **finetune_probe(model, pep_tr, ytr, pep_te, yte, finetune_steps, seed)}

    result, extra = _run("sequences", names, seeds, steps, corpus, batch, positions, probe, progress)
    data = {
        "train": str(train),
        "test": str(test) if test else f"rows of {train} with Cluster % {CLUSTER_MODULUS} == 0",
        "train_rows": len(rows.peptides),
        "test_rows": len(test_rows.peptides),
        "pretraining_items": len(corpus),
        "probe_task": f"Buried surface area > {median:.1f} (the training rows' median), from the peptide alone",
        "probe_test_positive_share": float(yte.mean()),
        "scored_sequences": len(batch),
        "scored_positions": int(positions.sum()),
    }
    cfg = {"seeds": list(seeds), "steps": steps, "finetune_steps": finetune_steps, "max_positions": max_positions}
    return {"methods": result, "data": data, "config": {**cfg, "receptors_in_pretraining": receptors, **extra}}


def results_table(result: dict[str, Any]) -> str:
    """One row per method: masked-token accuracy and pseudo-perplexity, and the probe columns where present
    (``mean ± std`` with several seeds)."""
    cols = [("mlm", "accuracy"), ("mlm", "pseudo_perplexity")]
    cols += [("probe", k) for k in ("linear_accuracy", "linear_auc", "finetune_accuracy", "finetune_auc")]
    cols = [c for c in cols if any(c[1] in r.get(c[0], {}) for r in result["methods"].values())]
    rows = [("method", *(k for _, k in cols))]
    for name, r in result["methods"].items():
        cells = []
        for part, k in cols:
            m = r.get(part, {})
            v = f"{m[k]:.4g}" if k in m else "-"
            cells.append(v + (f" ± {m[k + '_std']:.2g}" if k + "_std" in m else ""))
        rows.append((name, *cells))
    width = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, width)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in width))
    return "\n".join(lines)
