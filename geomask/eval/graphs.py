"""``geomask eval graphs``: GraphMAE's protocols on generic graphs, for GraphMAE or GraphMAE2 (``method``), against
raw features and a random encoder.

* **Node classification** (Planetoid): pretrain on the whole graph (full batch, Adam, the config's cosine
  schedule), freeze, embed every node, and train a logistic regression (one linear layer, Adam, ``lr_f``,
  ``weight_decay_f``, ``epochs_f`` full-batch epochs) on the public split's training nodes; the test accuracy of
  the epoch with the best validation accuracy counts (GraphMAE's linear probe).
* **Graph classification** (TU): pretrain on all graphs (mini-batches), pool node embeddings per graph (the
  config's ``pooling``), and score an RBF SVM (scikit-learn ``SVC``) by 10-fold stratified cross-validation, ``C``
  chosen in {1e-3, 1e-2, 1e-1, 1, 10} by an inner 5-fold search on each training fold.  The 10 folds are one
  shuffled split (:data:`SVM_SPLIT_SEED`) for every pretraining seed, as in GraphMAE's ``main_graph.py``, so the
  spread over seeds is the pretraining's alone (``raw`` has none).

Each seed pretrains a fresh model; ``raw`` probes the input features, ``random`` the same encoder untrained (built
with the seed).  Accuracies are mean ± std over seeds (graph tasks: of each seed's fold mean).
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from geomask.datasets.graphs import GraphSet, collate_graph_batch, load_graph_set
from geomask.errors import UsageError
from geomask.train.optimizers import build_optimizer

__all__ = ["METHODS", "PAPER", "SVM_SPLIT_SEED", "evaluate_graphs", "linear_probe", "pretrain", "svm_accuracy", "table"]

PAPER: dict[str, dict[str, tuple[float, float]]] = {
    "graphmae": {"Cora": (84.2, 0.4), "CiteSeer": (73.4, 0.4), "MUTAG": (88.19, 1.26), "PROTEINS": (75.30, 0.39)},
    "graphmae2": {"Cora": (84.5, 0.6), "CiteSeer": (73.4, 0.3)},
}
"""Published accuracies per method (%, mean ± std): GraphMAE (Hou et al., KDD 2022, Tables 1 and 3), GraphMAE2
(Hou et al., WWW 2023, node classification: the sets geomask reads)."""

METHODS = tuple(PAPER)
"""The methods ``geomask eval graphs --method`` pretrains (settings from ``configs/<method>_<dataset>.yaml``)."""

# the authors' probe settings (their configs' lr_f, weight_decay_f, max_epoch_f) per method and dataset
_PROBE = {
    "graphmae": {"Cora": (0.01, 1e-4, 300), "CiteSeer": (0.01, 0.01, 300)},
    "graphmae2": {"Cora": (0.025, 1e-4, 300), "CiteSeer": (0.025, 0.01, 500)},
}
SVM_SPLIT_SEED = 0
"""The seed of the graph tasks' 10-fold split, the same for every pretraining seed (GraphMAE's
``StratifiedKFold(n_splits=10, shuffle=True, random_state=0)``)."""

_EPOCHS = {"MUTAG": 20, "PROTEINS": 100}  # graph sets: the configs' max_steps count batches, not epochs
_CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def _config(name: str, config: str | None, method: str = "graphmae") -> dict[str, Any]:
    """``method`` / ``optim`` / ``trainer`` / ``data`` of the dataset's shipped config (``configs/<method>_<name>``)."""
    from omegaconf import OmegaConf

    path = Path(config) if config else _CONFIGS / f"{method}_{name.lower()}.yaml"
    if not path.is_file():
        raise UsageError(f"{path}: no config for {name} (give --config)")
    return OmegaConf.to_container(OmegaConf.load(path), resolve=True)  # type: ignore[return-value]


def _default_epochs(gs: GraphSet, cfg: dict[str, Any]) -> int:
    """The dataset's published epochs, else the config's ``max_steps`` (node sets: one full-batch step per epoch;
    graph sets: ``max_steps`` batches of ``data.batch_size`` graphs, converted to passes over the set)."""
    if gs.name in _EPOCHS:
        return _EPOCHS[gs.name]
    steps = int(cfg.get("trainer", {}).get("max_steps", 100))
    if gs.level == "node":
        return steps
    per_epoch = math.ceil(gs.num_graphs / int(cfg.get("data", {}).get("batch_size", 32)))
    return max(1, round(steps / per_epoch))


def _build(method: dict[str, Any], gs: GraphSet, seed: int) -> Any:
    from geomask.methods import build_method

    kw = {k: v for k, v in method.items() if k != "name"}
    kw["in_dim"] = gs.num_features
    torch.manual_seed(seed)
    return build_method(method.get("name", "graphmae"), **kw)


def pretrain(model: Any, gs: GraphSet, epochs: int, cfg: dict[str, Any], seed: int) -> None:
    """Train ``model`` for ``epochs`` passes over ``gs`` (node level: one full-batch step per epoch), calling its
    ``on_train_step_end`` after every optimiser step."""
    o, d = cfg.get("optim", {}), cfg.get("data", {})
    opt = build_optimizer(  # as geomask pretrain builds it (torch's fused Adam on the CPU)
        str(o.get("name", "adam")),
        model.parameters(),
        float(o.get("lr", 1e-3)),
        weight_decay=float(o.get("weight_decay", 0)),
    )
    cosine = o.get("scheduler", "none") == "cosine"
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda e: (1 + math.cos(e * math.pi / max(epochs, 1))) * 0.5)
    gen = torch.Generator().manual_seed(seed)
    graphs = gs.graphs()
    bs = int(d.get("batch_size", 32))
    model.train()
    step = 0
    for _ in range(epochs):
        if gs.level == "node":
            batches = [collate_graph_batch(graphs)]
        else:
            order = torch.randperm(len(graphs), generator=gen).tolist()
            batches = [collate_graph_batch([graphs[i] for i in order[j : j + bs]]) for j in range(0, len(order), bs)]
        for b in batches:
            loss = model(b, gen)["loss"]
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            model.on_train_step_end(step)  # EMA teachers (GraphMAE2), as the training engine calls it
            step += 1
        if cosine:
            sched.step()
    model.eval()


def linear_probe(feats: Tensor, data: Any, lr: float, weight_decay: float, epochs: int, seed: int) -> float:
    """GraphMAE's node probe: test accuracy at the epoch of best validation accuracy (``feats [N, D]``)."""
    torch.manual_seed(seed)
    y = data.y
    clf = torch.nn.Linear(feats.shape[1], int(y.max()) + 1)
    opt = torch.optim.Adam(clf.parameters(), lr=lr, weight_decay=weight_decay)
    best_val, best_test = -1.0, 0.0
    for _ in range(epochs):
        clf.train()
        loss = torch.nn.functional.cross_entropy(clf(feats[data.train_mask]), y[data.train_mask])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            pred = clf(feats).argmax(1)
            val = (pred[data.val_mask] == y[data.val_mask]).float().mean().item()
            test = (pred[data.test_mask] == y[data.test_mask]).float().mean().item()
        if val >= best_val:
            best_val, best_test = val, test
    return best_test


def svm_accuracy(feats: np.ndarray, labels: np.ndarray, seed: int = SVM_SPLIT_SEED) -> float:
    """Mean 10-fold stratified accuracy of an SVC with ``C`` searched in {1e-3, …, 10} on each training fold
    (``seed`` shuffles the folds; features are not rescaled, as in GraphMAE)."""
    from sklearn.model_selection import GridSearchCV, StratifiedKFold
    from sklearn.svm import SVC

    accs = []
    for tr, te in StratifiedKFold(10, shuffle=True, random_state=seed).split(feats, labels):
        search = GridSearchCV(SVC(random_state=seed), {"C": [1e-3, 1e-2, 1e-1, 1, 10]}, n_jobs=1)
        search.fit(feats[tr], labels[tr])
        accs.append(float((search.predict(feats[te]) == labels[te]).mean()))
    return float(np.mean(accs))


def _score(feats: Tensor, gs: GraphSet, probe: tuple[float, float, int], seed: int) -> float:
    if gs.level == "node":
        return linear_probe(feats, gs.graph(0), *probe, seed=seed)
    return svm_accuracy(feats.numpy(), gs.tensors["y"].numpy())  # one split for every seed (GraphMAE's)


@torch.no_grad()
def _embed(model: Any, gs: GraphSet) -> Tensor:
    model.eval()
    batch = collate_graph_batch(gs.graphs())
    return model.embed(batch) if gs.level == "node" else model.graph_embed(batch)


def _raw(gs: GraphSet, pooling: str) -> Tensor:
    if gs.level == "node":
        return gs.tensors["x"]
    from torch_geometric.nn import global_add_pool, global_max_pool, global_mean_pool

    pool = {"sum": global_add_pool, "max": global_max_pool}.get(pooling, global_mean_pool)
    b = collate_graph_batch(gs.graphs())
    return pool(b.x, b.batch, b.num_graphs)


def evaluate_graphs(
    src: str | Path, *, seeds: int = 3, epochs: int | None = None, config: str | None = None, method: str = "graphmae"
) -> dict[str, Any]:
    """``{"methods": {NAME: {DATASET: {"accuracy", "accuracy_std", "seconds", ...}}}}`` for ``method``, ``raw``
    and ``random`` (accuracy in %)."""
    if method not in METHODS:
        raise UsageError(f"unknown method {method!r} for eval graphs (valid: {', '.join(METHODS)})")
    gs = load_graph_set(src)
    cfg = _config(gs.name, config, method)
    m_cfg = {**cfg.get("method", {}), "name": method}
    if epochs is None:
        epochs = _default_epochs(gs, cfg)
    probe = _PROBE[method].get(gs.name, (0.01, 1e-4, 300))
    runs: dict[str, list[float]] = {method: [], "random": [], "raw": []}
    secs: dict[str, float] = {k: 0.0 for k in runs}
    for s in range(seeds):
        t0 = time.perf_counter()
        runs["raw"].append(100 * _score(_raw(gs, m_cfg.get("pooling", "mean")), gs, probe, s))
        secs["raw"] += time.perf_counter() - t0
        t0 = time.perf_counter()
        model = _build(m_cfg, gs, s)
        runs["random"].append(100 * _score(_embed(model, gs), gs, probe, s))
        secs["random"] += time.perf_counter() - t0
        t0 = time.perf_counter()
        model = _build(m_cfg, gs, s)
        with torch.enable_grad():
            pretrain(model, gs, epochs, cfg, s)
        runs[method].append(100 * _score(_embed(model, gs), gs, probe, s))
        secs[method] += time.perf_counter() - t0
    out: dict[str, Any] = {"methods": {}, "dataset": gs.summary(), "seeds": seeds, "epochs": epochs, "method": method}
    for name, accs in runs.items():
        a = np.asarray(accs)
        out["methods"][name] = {
            gs.name: {
                "accuracy": float(a.mean()),
                "accuracy_std": float(a.std()),
                "seconds": secs[name],
                "per_seed": [float(v) for v in a],
            }
        }
    return out


def table(result: dict[str, Any]) -> str:
    """Our accuracy beside the paper's, one row per method and dataset."""
    rows = ["method     dataset     ours (%)         paper (%)       seconds"]
    for name, per in result["methods"].items():
        for ds, r in per.items():
            p = PAPER.get(name, {}).get(ds)
            paper = f"{p[0]:.2f} ± {p[1]:.2f}" if p and name not in ("raw", "random") else "-"
            ours = f"{r['accuracy']:.2f} ± {r['accuracy_std']:.2f}"
            rows.append(f"{name:<10} {ds:<11} {ours:<16} {paper:<15} {r['seconds']:.1f}")
    return "\n".join(rows)
