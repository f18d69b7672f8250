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
nodes.  Metrics: ``mae`` (scored nodes), ``mae_and`` (AND nodes).  The baseline predicts each node type's
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

__all__ = ["node_probability", "run_probability"]

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


def _metrics(pred: np.ndarray, true: np.ndarray, is_and: np.ndarray) -> dict[str, float]:
    err = np.abs(pred - true)
    return {"mae": float(err.mean()), "mae_and": float(err[is_and].mean()) if is_and.any() else float("nan")}


def run_probability(
    designs: Sequence[EvalDesign],
    budget: Budget,
    pretrain_designs: Sequence[EvalDesign] | None = None,
    num_patterns: int = 65536,
    progress: bool = True,
) -> dict[str, Any]:
    """Compare every method in ``budget`` on signal probability prediction.

    Returns:
        ``{"methods": {name: {"nodes": {"mae", "mae_and", ...}}}, "baseline": {"nodes": ...}, "data": {...}}``.
    """
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
        if budget.finetune_encoder:
            # the flat train / test masks over scored nodes, back on every graph's nodes
            bounds = np.cumsum([0] + [int(s.sum()) for s in scored])
            masks = {}
            for part, flat in (("train", train), ("test", test)):
                masks[part] = []
                for i, s in enumerate(scored):
                    m = np.zeros(len(s), dtype=bool)
                    m[np.nonzero(s)[0]] = flat[bounds[i] : bounds[i + 1]]
                    masks[part].append(torch.from_numpy(m))
            predict = finetune_nodes(method, graphs, masks["train"], targets, budget, seed)
            pred = torch.cat(predict(graphs, masks["test"])).numpy().astype(np.float64)
        else:
            emb = embed_nodes(method, graphs, budget.max_nodes)
            x = torch.cat([e[torch.from_numpy(s)] for e, s in zip(emb, scored)])
            mu, sd = x[train].mean(0), x[train].std(0).clamp(min=1e-6)
            x = (x - mu) / sd
            head = fit_mlp(x[train], torch.as_tensor(y[train]), "l1", budget.finetune_steps, budget.head_lr, seed)
            with torch.no_grad():
                pred = head(x[test]).numpy().astype(np.float64)
        if name == budget.methods[0]:
            table = np.full(len(NodeType), y[train].mean())
            for t in _SCORED:  # over the 3 node types, not over nodes
                sel = train & (types == t)
                if sel.any():
                    table[int(t)] = y[sel].mean()
            base = table[types[test]]
            baseline_runs.append(_metrics(base, y[test], is_and[test]))
        return {"nodes": _metrics(pred, y[test], is_and[test])}

    out = compare(task, pre, budget, progress)
    out["baseline"] = {"nodes": mean_std(baseline_runs)}
    out["data"] = {"designs": len(designs), "scored_nodes": int(len(y))}
    return out
