"""Logic equivalence identification: do two AIG nodes compute the same (or the complementary) function?

Labels (:func:`equivalence_pairs`), per design, over the graph's PI and AND nodes (one per AIG variable):

* simulation classes from :func:`geomask.circuits.simulate.equivalence_candidates`; with at most
  ``exhaustive_limit`` inputs (and latches) the simulation is exhaustive, so every class is a proven
  equivalence (``proven = True``); otherwise the classes of ``num_patterns`` random patterns are
  intersected with those of ``check_patterns`` independent random patterns (a second, larger simulation:
  strong evidence, not a proof);
* positives: each class member paired with the smallest member (equivalent or complementary);
* negatives: uniformly drawn pairs from different classes, ``neg_ratio`` per positive.

Scores (:func:`run_equivalence`), on node embeddings of the frozen encoder (:meth:`embed`):

* ``zero_shot``: cosine similarity of the two embeddings; F1 / precision / recall at the threshold that
  maximises F1 on the training pairs (calibration only, nothing is trained);
* ``trained_head``: an MLP on ``[|a - b|, a * b]`` trained with BCE on the training pairs, threshold 0.5;
  with ``Budget.finetune_encoder`` the encoder trains with the head (:func:`finetune_pairs`) and
  ``zero_shot`` stays the frozen encoder's.

Train/test: with 3 or more designs a seeded third of the designs is test (:func:`holdout_split`); with
fewer, a seeded third of the pairs.  Metrics: ``auc``, ``precision``, ``recall``, ``f1``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch_geometric.data import Batch, Data

from geomask.circuits.graph import NodeType
from geomask.circuits.simulate import equivalence_candidates
from geomask.eval.metrics import auc, best_threshold, precision_recall_f1
from geomask.eval.protocol import Budget, EvalDesign, compare, embed_nodes, fit_mlp, holdout_split, strip_verilog

__all__ = ["EquivalencePairs", "equivalence_pairs", "finetune_pairs", "run_equivalence"]


@dataclass
class EquivalencePairs:
    """Labelled node pairs of one design.

    Attributes:
        nodes: ``[P, 2]`` int64 graph node ids.
        label: ``[P]`` bool, True for equivalent or complementary pairs.
        complement: ``[P]`` bool, True for complementary positives.
        proven: the positives come from exhaustive simulation.
    """

    nodes: np.ndarray
    label: np.ndarray
    complement: np.ndarray
    proven: bool


def _classes(aig, num_patterns: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Class representative and phase (relative to it) of every variable, ``[M + 1]`` each."""
    pairs, comp = equivalence_candidates(aig, num_patterns, seed)
    cls = np.arange(aig.max_var + 1)
    phase = np.zeros(aig.max_var + 1, dtype=bool)
    cls[pairs[:, 1]] = pairs[:, 0]
    phase[pairs[:, 1]] = comp
    return cls, phase


def equivalence_pairs(
    design: EvalDesign,
    num_patterns: int = 2048,
    check_patterns: int = 16384,
    exhaustive_limit: int = 16,
    neg_ratio: float = 1.0,
    seed: int = 0,
) -> EquivalencePairs:
    """Positive and negative node pairs of a design (see the module docstring)."""
    aig, g = design.aig, design.graph
    n_src = aig.num_inputs + aig.num_latches
    proven = n_src <= exhaustive_limit
    cls, phase = _classes(aig, 2**n_src if proven else num_patterns, seed)
    if not proven:
        cls2, _ = _classes(aig, check_patterns, seed + 1)
        _, cls = np.unique(np.stack([cls, cls2], 1), axis=0, return_inverse=True)
        cls = cls.reshape(-1)
    node_type = g.node_type.numpy()
    nodes = np.nonzero((node_type == NodeType.PI) | (node_type == NodeType.AND))[0]
    var = g.var.numpy()[nodes]
    order = np.lexsort((var, cls[var]))
    var, nodes, c = var[order], nodes[order], cls[var[order]]
    first = np.r_[True, c[1:] != c[:-1]]
    rep = np.maximum.accumulate(np.where(first, np.arange(len(c)), 0))  # index of each row's class head
    pos = np.nonzero(~first)[0]
    pos_pairs = np.stack([nodes[rep[pos]], nodes[pos]], 1)
    pos_comp = phase[var[rep[pos]]] != phase[var[pos]]
    rng = np.random.default_rng([seed, 0xE9])
    want = int(np.ceil(neg_ratio * max(len(pos), 1)))
    neg = np.zeros((0, 2), dtype=np.int64)
    if len(nodes) >= 2 and len(np.unique(c)) >= 2:
        for _ in range(8):  # rejection sampling; a few rounds always suffice unless one class dominates
            draw = rng.integers(0, len(nodes), size=(4 * want, 2))
            draw = draw[c[draw[:, 0]] != c[draw[:, 1]]]
            neg = np.concatenate([neg, draw])[:want]
            if len(neg) >= want:
                break
    neg_pairs = nodes[neg]
    return EquivalencePairs(
        nodes=np.concatenate([pos_pairs, neg_pairs]).astype(np.int64),
        label=np.r_[np.ones(len(pos_pairs), bool), np.zeros(len(neg_pairs), bool)],
        complement=np.r_[pos_comp, np.zeros(len(neg_pairs), bool)],
        proven=proven,
    )


def _scores(metrics_scores: np.ndarray, labels: np.ndarray, threshold: float) -> dict[str, float]:
    out = {"auc": auc(metrics_scores, labels) if 0 < labels.sum() < len(labels) else float("nan")}
    out.update(precision_recall_f1(metrics_scores >= threshold, labels))
    return out


def finetune_pairs(
    method: nn.Module,
    graphs: Sequence[Data],
    pairs: Sequence[np.ndarray],
    labels: Sequence[np.ndarray],
    budget: Budget,
    seed: int,
    hidden: int = 64,
) -> nn.Module:
    """Train the method's encoder and a pair head together with BCE (``budget.finetune_steps`` AdamW steps,
    the encoder at ``budget.lr``, the head at ``budget.head_lr``).

    Each step draws graphs that have training pairs, without replacement, up to ``budget.batch_size``
    graphs and ``budget.max_nodes`` nodes, embeds them in one batch (:meth:`embed`, no masking) and scores
    all their pairs: ``head([|a - b|, a * b])`` gives a logit (LayerNorm first, as the frozen path
    standardises its features).

    Args:
        graphs: every graph; ``pairs[i]`` ``[P_i, 2]`` node ids of graph ``i`` and ``labels[i]`` ``[P_i]`` bool
            are its training pairs (none: the graph is not drawn).

    Returns:
        The head (eval mode); the method is left fine-tuned, in eval mode.
    """
    width = int(method.hidden)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        head = nn.Sequential(
            nn.LayerNorm(2 * width), nn.Linear(2 * width, hidden), nn.ReLU(), nn.Linear(hidden, 1), nn.Flatten(0)
        )
    pool = [i for i, p in enumerate(pairs) if len(p)]
    if not pool:
        raise ValueError("fine-tuning needs at least one training pair")
    data = [strip_verilog(g) for g in graphs]
    opt = torch.optim.AdamW(
        [{"params": method.parameters(), "lr": budget.lr}, {"params": head.parameters(), "lr": budget.head_lr}],
        weight_decay=budget.weight_decay,
    )
    rng = np.random.default_rng([seed, 0xE9F7])
    method.train()
    head.train()
    with torch.random.fork_rng(devices=[]):  # dropout draws from the global generator: seed it, leave it as it was
        torch.manual_seed(seed)
        for _ in range(budget.finetune_steps):
            pick = rng.permutation(pool)[: budget.batch_size]
            sizes = np.cumsum([int(graphs[i].num_nodes) for i in pick])
            pick = pick[: max(1, int(np.searchsorted(sizes, budget.max_nodes, side="right")))]
            h = method.embed(Batch.from_data_list([data[i] for i in pick]))
            offset = np.r_[0, np.cumsum([int(graphs[i].num_nodes) for i in pick])[:-1]]
            idx = torch.from_numpy(np.concatenate([pairs[i] + o for i, o in zip(pick, offset)]))
            y = torch.from_numpy(np.concatenate([labels[i] for i in pick])).to(h.dtype)
            a, b = h[idx[:, 0]], h[idx[:, 1]]
            loss = F.binary_cross_entropy_with_logits(head(torch.cat([(a - b).abs(), a * b], dim=1)), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    method.eval()
    return head.eval()


def run_equivalence(
    designs: Sequence[EvalDesign],
    budget: Budget,
    pretrain_designs: Sequence[EvalDesign] | None = None,
    num_patterns: int = 2048,
    neg_ratio: float = 1.0,
    progress: bool = True,
) -> dict[str, Any]:
    """Compare every method in ``budget`` on equivalence identification.

    Returns:
        ``{"methods": {name: {"zero_shot": m, "trained_head": m}}, "data": {...}}`` with metrics ``auc``,
        ``precision``, ``recall``, ``f1`` (and ``_std``), and the pair counts in ``data``.
    """
    labels = [equivalence_pairs(d, num_patterns, neg_ratio=neg_ratio, seed=0) for d in designs]
    n_pos = int(sum(p.label.sum() for p in labels))
    n_neg = int(sum((~p.label).sum() for p in labels))
    if n_pos == 0 or n_neg == 0:
        raise ValueError(f"need positive and negative pairs, found {n_pos} and {n_neg}; use larger designs")
    design_of = np.concatenate([np.full(len(p.label), i) for i, p in enumerate(labels)])
    y = np.concatenate([p.label for p in labels])
    graphs = [d.graph for d in designs]
    pre = [d.graph for d in (pretrain_designs if pretrain_designs is not None else designs)]

    def task(method, name: str, seed: int) -> dict[str, dict[str, float]]:
        emb = embed_nodes(method, graphs, budget.max_nodes)
        a = torch.cat([emb[i][p.nodes[:, 0]] for i, p in enumerate(labels)])
        b = torch.cat([emb[i][p.nodes[:, 1]] for i, p in enumerate(labels)])
        if len(designs) >= 3:
            _, test_d = holdout_split(len(designs), seed)
            test = np.isin(design_of, test_d)
        else:
            test = np.zeros(len(y), dtype=bool)
            test[holdout_split(len(y), seed)[1]] = True
        train = ~test
        cos = F.cosine_similarity(a, b, dim=1).numpy().astype(np.float64)
        zero = _scores(cos[test], y[test], best_threshold(cos[train], y[train]))  # the frozen encoder's
        if budget.finetune_encoder:
            part = [train[design_of == i] for i in range(len(labels))]
            train_pairs = [p.nodes[m] for p, m in zip(labels, part)]
            train_y = [p.label[m] for p, m in zip(labels, part)]
            head = finetune_pairs(method, graphs, train_pairs, train_y, budget, seed)
            emb = embed_nodes(method, graphs, budget.max_nodes)
            a = torch.cat([emb[i][p.nodes[:, 0]] for i, p in enumerate(labels)])
            b = torch.cat([emb[i][p.nodes[:, 1]] for i, p in enumerate(labels)])
            with torch.no_grad():
                logit = head(torch.cat([(a - b).abs(), a * b], dim=1)[torch.from_numpy(test)])
            prob = torch.sigmoid(logit).numpy().astype(np.float64)
            return {"zero_shot": zero, "trained_head": _scores(prob, y[test], 0.5)}
        feats = torch.cat([(a - b).abs(), a * b], dim=1)
        mu, sd = feats[train].mean(0), feats[train].std(0).clamp(min=1e-6)
        feats = (feats - mu) / sd
        head = fit_mlp(feats[train], torch.as_tensor(y[train]), "bce", budget.finetune_steps, budget.head_lr, seed)
        with torch.no_grad():
            prob = torch.sigmoid(head(feats[test])).numpy().astype(np.float64)
        return {"zero_shot": zero, "trained_head": _scores(prob, y[test], 0.5)}

    out = compare(task, pre, budget, progress)
    out["data"] = {
        "designs": len(designs),
        "positives": n_pos,
        "negatives": n_neg,
        "complementary": int(sum(p.complement.sum() for p in labels)),
        "proven_designs": int(sum(p.proven for p in labels)),
    }
    return out
