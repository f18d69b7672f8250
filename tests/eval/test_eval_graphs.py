"""``geomask eval graphs`` on a small seeded graph with community structure: GraphMAE's probe against a random
encoder's and the raw features', measured in the same run."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from geomask.datasets.graphs import GraphSet, write_graph_set
from geomask.eval.graphs import evaluate_graphs, linear_probe, svm_accuracy, table


def community_graph(seed: int = 0, n: int = 240, k: int = 3, f: int = 60) -> GraphSet:
    """A stochastic block model (``k`` communities = classes) with sparse, noisy class-prototype features."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    a = np.triu(rng.random((n, n)) < np.where(y[:, None] == y[None, :], 0.07, 0.007), 1)
    ei = np.stack(np.nonzero(a | a.T))
    proto = rng.random((k, f)) < 0.15
    x = ((rng.random((n, f)) < 0.03) | (proto[y] & (rng.random((n, f)) < 0.3))).astype(np.float32)
    x /= np.maximum(x.sum(1, keepdims=True), 1)
    perm = rng.permutation(n)
    masks = {}
    for name, idx in (("train_mask", perm[:30]), ("val_mask", perm[30:90]), ("test_mask", perm[90:])):
        m = np.zeros(n, bool)
        m[idx] = True
        masks[name] = torch.from_numpy(m)
    t = {
        "x": torch.from_numpy(x),
        "edge_index": torch.from_numpy(ei),
        "node_ptr": torch.tensor([0, n]),
        "edge_ptr": torch.tensor([0, ei.shape[1]]),
        "y": torch.from_numpy(y),
        **masks,
    }
    return GraphSet("communities", "node", t)


CONFIG = """
method:
  name: graphmae
  encoder: gat
  in_dim: 60
  hidden: 32
  layers: 2
  gat_heads: 4
  dropout: 0.2
  attn_drop: 0.1
  replace_rate: 0.05
  masker: {name: uniform, ratio: 0.5}
  loss: {name: sce, gamma: 3.0}
optim: {lr: 1.0e-2, weight_decay: 2.0e-4, scheduler: cosine}
trainer: {max_steps: 60}
"""


def test_pretrained_probe_beats_random_encoder_and_raw_features(one_thread, tmp_path):
    root = write_graph_set(community_graph(), tmp_path / "communities")
    (tmp_path / "c.yaml").write_text(CONFIG)
    out = evaluate_graphs(root, seeds=1, config=str(tmp_path / "c.yaml"))
    acc = {name: r["communities"]["accuracy"] for name, r in out["methods"].items()}
    assert set(acc) == {"graphmae", "random", "raw"}
    assert acc["graphmae"] > acc["random"] + 3.0, acc  # percent
    assert acc["graphmae"] > acc["raw"] + 10.0, acc
    assert out["epochs"] == 60 and out["methods"]["graphmae"]["communities"]["seconds"] > 0
    assert "graphmae" in table(out) and json.loads(json.dumps(out)) == out


def test_linear_probe_picks_the_test_accuracy_of_the_best_validation_epoch():
    gs = community_graph(n=150)
    d = gs.graph(0)
    onehot = torch.nn.functional.one_hot(d.y, 3).float()
    assert linear_probe(onehot, d, 0.1, 0.0, 50, seed=0) == 1.0  # separable: perfect
    noise = torch.randn(150, 3, generator=torch.Generator().manual_seed(0))
    assert linear_probe(noise, d, 0.1, 0.0, 50, seed=0) < 0.7


def test_svm_accuracy_separable_and_chance():
    pytest.importorskip("sklearn")
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 30)
    assert svm_accuracy(np.c_[y + 0.1 * rng.normal(size=60), rng.normal(size=60)], y, seed=0) == 1.0
    assert svm_accuracy(rng.normal(size=(60, 2)), y, seed=0) < 0.8


def test_method_graphmae2_through_the_command(one_thread, tmp_path):
    from geomask.cli import main

    root = write_graph_set(community_graph(n=150), tmp_path / "communities")
    cfg = CONFIG.replace(
        "  loss: {name: sce, gamma: 3.0}\n", "  loss: {name: sce, gamma: 3.0}\n  num_remask: 2\n  lam: 0.5\n"
    )
    (tmp_path / "c2.yaml").write_text(cfg.replace("hidden: 32", "hidden: 8"))
    out = tmp_path / "r.json"
    args = ["eval", "graphs", str(root), "--method", "graphmae2", "--json", str(out), "--seeds", "1", "--epochs", "2"]
    assert main([*args, "--config", str(tmp_path / "c2.yaml")]) == 0
    res = json.loads(out.read_text())
    assert set(res["methods"]) == {"graphmae2", "random", "raw"} and res["method"] == "graphmae2"
    assert res["epochs"] == 2 and 0.0 <= res["methods"]["graphmae2"]["communities"]["accuracy"] <= 100.0


def test_each_method_reads_its_own_shipped_config_and_paper_numbers():
    from geomask.errors import UsageError
    from geomask.eval.graphs import METHODS, PAPER, _config

    assert METHODS == ("graphmae", "graphmae2")
    for method in METHODS:
        for ds in ("Cora", "CiteSeer"):
            assert _config(ds, None, method)["method"]["name"] == method
    assert PAPER["graphmae2"]["Cora"] == (84.5, 0.6) and PAPER["graphmae"]["Cora"] == (84.2, 0.4)
    rows = table({"methods": {"graphmae2": {"Cora": {"accuracy": 84.0, "accuracy_std": 0.5, "seconds": 1.0}}}})
    assert "84.50 ± 0.60" in rows
    with pytest.raises(UsageError, match="unknown method 'mae'"):
        evaluate_graphs("unused", method="mae")
