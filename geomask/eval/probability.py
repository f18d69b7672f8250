"""Signal probability: regress each node's probability of being 1 under uniform random inputs.

Targets (:func:`node_probability`) come from bit-parallel simulation
(:func:`geomask.circuits.simulate.signal_probability`: exact for at most 16 inputs and latches, otherwise
``num_patterns`` random patterns): PI / AND / CONST nodes take their variable's probability, NOT nodes
``1 - p`` of the variable they invert, PO nodes the value of their driver (``1 - p`` over an inverted
``attr`` edge).  Scored nodes are AND, NOT and PO nodes (PIs are 0.5 by construction).

Model: frozen node embeddings (:meth:`embed`) → an MLP head with a sigmoid, trained with L1
(``finetune_steps`` steps); with ``Budget.finetune_encoder`` the encoder trains with the head
(:func:`~geomask.eval.protocol.finetune_nodes`) on the training designs (or training nodes).
Train/test: with 3 or more designs a seeded third of the designs is test, else a seeded third of the scored
nodes.  Early stopping (``val_designs`` N > 0, fine-tuned encoder and a design split only): N of the training
designs, drawn with the seed, become validation designs that never train; their MAE is measured every
``val_every`` steps and the encoder and head of the lowest one are kept (``best_step`` in the metrics).
Metrics: ``mae`` (scored nodes), ``mae_and`` (AND nodes).  The baseline predicts each node type's
mean training probability.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from geomask.circuits.graph import NodeType
from geomask.circuits.simulate import signal_probability
from geomask.eval.metrics import mean_std
from geomask.eval.protocol import Budget, EvalDesign, compare, embed_nodes, finetune_nodes, fit_mlp, holdout_split

__all__ = ["check_val_designs", "node_probability", "run_probability"]

_SCORED = (NodeType.AND, NodeType.NOT, NodeType.PO)


def node_probability(design: EvalDesign, num_patterns: int = 65536, seed: int = 0) -> torch.Tensor:
    """``[N]`` float64 probability that each graph node is 1 (see the module docstring)."""
    g = design.graph
    p_var = torch.from_numpy(signal_probability(design.aig, num_patterns=num_patterns, seed=seed))
    node_type, var = g.node_type, g.var
    p = p_var[var]
    p = torch.where(node_type == NodeType.NOT, 1.0 - p, p)
    src, dst = g.edge_index
    into_po = node_type[dst] == NodeType.PO
    inv = g.edge_type[into_po].bool()
    drv = p[src[into_po]]
    p[dst[into_po]] = torch.where(inv, 1.0 - drv, drv)
    return p


def check_val_designs(num_designs: int, val_designs: int, finetune_encoder: bool) -> None:
    """Raise ``ValueError`` unless ``val_designs`` validation designs fit the split of ``num_designs`` designs
    (0 always fits; otherwise a fine-tuned encoder, 3 or more designs and a training design left)."""
    if val_designs < 0:
        raise ValueError(f"must be >= 0, got {val_designs}")
    if not val_designs:
        return
    if not finetune_encoder:
        raise ValueError("validation designs choose the fine-tuning step: they need the encoder fine-tuned")
    train = len(holdout_split(num_designs, 0)[0]) if num_designs >= 3 else 0
    if train <= val_designs:
        raise ValueError(
            f"{val_designs} validation design(s) need {val_designs + 1} training designs or more; "
            f"{num_designs} design(s) give {train} (3 or more designs are split by design)"
        )


def _metrics(pred: np.ndarray, true: np.ndarray, is_and: np.ndarray) -> dict[str, float]:
    err = np.abs(pred - true)
    return {"mae": float(err.mean()), "mae_and": float(err[is_and].mean()) if is_and.any() else float("nan")}


def run_probability(
    designs: Sequence[EvalDesign],
    budget: Budget,
    pretrain_designs: Sequence[EvalDesign] | None = None,
    num_patterns: int = 65536,
    progress: bool = True,
    val_designs: int = 0,
    val_every: int = 25,
) -> dict[str, Any]:
    """Compare every method in ``budget`` on signal probability prediction.

    Args:
        val_designs: training designs held out per seed to choose the fine-tuning step (0: none, train
            ``budget.finetune_steps`` steps on every training design).
        val_every: steps between validation measurements.

    Raises:
        ValueError: ``val_designs`` without ``budget.finetune_encoder``, with fewer than 3 designs, or leaving
            no training design.

    Returns:
        ``{"methods": {name: {"nodes": {"mae", "mae_and", ...}}}, "baseline": {"nodes": ...}, "data": {...}}``.
    """
    if val_every < 1:
        raise ValueError(f"val_every must be >= 1, got {val_every}")
    check_val_designs(len(designs), val_designs, budget.finetune_encoder)
    graphs = [d.graph for d in designs]
    pre = [d.graph for d in (pretrain_designs if pretrain_designs is not None else designs)]
    targets = [node_probability(d, num_patterns) for d in designs]
    scored = [torch.isin(g.node_type, torch.tensor([int(t) for t in _SCORED])).numpy() for g in graphs]
    y = np.concatenate([t.numpy()[s] for t, s in zip(targets, scored)])
    types = np.concatenate([g.node_type.numpy()[s] for g, s in zip(graphs, scored)])
    design_of = np.concatenate([np.full(int(s.sum()), i) for i, s in enumerate(scored)])
    is_and = types == NodeType.AND
    baseline_runs: list[dict[str, float]] = []

    def split(seed: int) -> np.ndarray:
        if len(designs) >= 3:
            return np.isin(design_of, holdout_split(len(designs), seed)[1])
        test = np.zeros(len(y), dtype=bool)
        test[holdout_split(len(y), seed)[1]] = True
        return test

    def task(method, name: str, seed: int) -> dict[str, dict[str, float]]:
        test = split(seed)
        train = ~test
        val = np.zeros_like(test)
        if val_designs:
            pool = holdout_split(len(designs), seed)[0]
            held = np.random.default_rng([seed, 0x7A1D]).permutation(pool)[:val_designs]
            val = np.isin(design_of, held)
            train &= ~val
        if budget.finetune_encoder:
            # the flat train / test masks over scored nodes, back on every graph's nodes
            bounds = np.cumsum([0] + [int(s.sum()) for s in scored])
            masks = {}
            for part, flat in (("train", train), ("test", test), ("val", val)):
                masks[part] = []
                for i, s in enumerate(scored):
                    m = np.zeros(len(s), dtype=bool)
                    m[np.nonzero(s)[0]] = flat[bounds[i] : bounds[i + 1]]
                    masks[part].append(torch.from_numpy(m))
            val_masks = masks["val"] if val_designs else None
            predict = finetune_nodes(
                method, graphs, masks["train"], targets, budget, seed, val_masks=val_masks, eval_every=val_every
            )
            pred = torch.cat(predict(graphs, masks["test"])).numpy().astype(np.float64)
            if val_designs:
                chosen = {"best_step": float(predict.best_step), "val_mae": min(m for _, m in predict.val_curve)}
        else:
            emb = embed_nodes(method, graphs, budget.max_nodes)
            x = torch.cat([e[torch.from_numpy(s)] for e, s in zip(emb, scored)])
            mu, sd = x[train].mean(0), x[train].std(0).clamp(min=1e-6)
            x = (x - mu) / sd
            head = fit_mlp(x[train], torch.as_tensor(y[train]), "l1", budget.finetune_steps, budget.head_lr, seed)
            with torch.no_grad():
                pred = head(x[test]).numpy().astype(np.float64)
        if name == budget.methods[0]:
            table = np.full(len(NodeType), y[~test].mean())
            for t in _SCORED:  # over the 3 node types, not over nodes; validation designs fit it too
                sel = ~test & (types == t)
                if sel.any():
                    table[int(t)] = y[sel].mean()
            base = table[types[test]]
            baseline_runs.append(_metrics(base, y[test], is_and[test]))
        return {"nodes": {**_metrics(pred, y[test], is_and[test]), **(chosen if val_designs else {})}}

    out = compare(task, pre, budget, progress)
    out["baseline"] = {"nodes": mean_std(baseline_runs)}
    out["data"] = {"designs": len(designs), "scored_nodes": int(len(y))}
    if val_designs:
        out["early_stopping"] = {"val_designs": val_designs, "val_every": val_every}
    return out
