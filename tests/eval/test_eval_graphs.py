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


def _graph_set(name: str, num_graphs: int, classes: int = 2, seed: int = 0) -> GraphSet:
    """``num_graphs`` small random graphs (6 nodes, a ring plus a chord per class) with one-hot node labels."""
    rng = np.random.default_rng(seed)
    y = np.arange(num_graphs) % classes
    xs, eis = [], []
    for c in y:
        ring = np.stack([np.arange(6), (np.arange(6) + 1) % 6])
        chord = np.array([[0], [1 + c % 5]])
        e = np.concatenate([ring, chord], 1)
        eis.append(np.concatenate([e, e[::-1]], 1))
        lab = (rng.random(6) < 0.2 + 0.6 * c / max(classes - 1, 1)).astype(int)
        xs.append(np.eye(3, dtype=np.float32)[lab + (c % 2)])
    t = {
        "x": torch.from_numpy(np.concatenate(xs)),
        "edge_index": torch.from_numpy(np.concatenate(eis, 1)),
        "node_ptr": torch.arange(num_graphs + 1) * 6,
        "edge_ptr": torch.tensor([0, *np.cumsum([e.shape[1] for e in eis])]),
        "y": torch.from_numpy(y),
    }
    return GraphSet(name, "graph", t)


def test_graph_set_default_epochs_convert_the_configs_batches_to_passes():
    from geomask.eval.graphs import _config, _default_epochs

    # the shipped configs at the real sets' sizes: MUTAG's and PROTEINS' published epochs, ENZYMES' from max_steps
    for name, n, epochs in (("MUTAG", 188, 20), ("PROTEINS", 1113, 100), ("ENZYMES", 600, 100)):
        assert _default_epochs(_graph_set(name, n), _config(name, None)) == epochs, name
    enz = _config("ENZYMES", None)
    assert enz["method"]["in_dim"] == 3 and enz["method"]["pooling"] == "max" and enz["data"]["batch_size"] == 32
    # an unlisted set: 10 batches of 4 over 12 graphs (3 per pass) → 3 passes, not 10
    cfg = {"trainer": {"max_steps": 10}, "data": {"batch_size": 4}}
    assert _default_epochs(_graph_set("TOY", 12), cfg) == 3
    assert _default_epochs(community_graph(n=30), cfg) == 10  # node level: one full-batch step per epoch


def test_multiclass_graph_set_through_eval(one_thread, tmp_path):
    pytest.importorskip("sklearn")
    root = write_graph_set(_graph_set("SIXCLASS", 60, classes=6), tmp_path / "six")
    cfg = (
        "method: {name: graphmae, encoder: gin, in_dim: 3, hidden: 8, layers: 2, pooling: max,"
        " masker: {name: uniform, ratio: 0.5}, loss: {name: sce, gamma: 1.0}}\n"
        "data: {batch_size: 20}\noptim: {lr: 1.0e-3}\ntrainer: {max_steps: 6}\n"
    )
    (tmp_path / "six.yaml").write_text(cfg)
    out = evaluate_graphs(root, seeds=1, config=str(tmp_path / "six.yaml"))
    assert out["epochs"] == 2 and out["dataset"]["classes"] == 6  # 6 steps of 3 batches per pass
    for name in ("graphmae", "random", "raw"):
        assert 0.0 <= out["methods"][name]["SIXCLASS"]["accuracy"] <= 100.0
    assert out["methods"]["raw"]["SIXCLASS"]["accuracy"] > 100 / 6 + 10  # node labels carry the class: above chance


def test_real_enzymes_reads_six_classes_of_one_hot_node_labels(shared_data):
    from geomask.datasets.graphs import load_graph_set

    gs = load_graph_set(shared_data / "graphs" / "ENZYMES")
    assert (gs.name, gs.level, gs.num_graphs, gs.num_classes, gs.num_features) == ("ENZYMES", "graph", 600, 6, 3)
    assert torch.equal(gs.tensors["x"].sum(1), torch.ones(gs.tensors["x"].shape[0]))


# THUDM/GraphMAE configs.yml ("cora", "citeseer") and its GAT code, item by item, as geomask's config keys
AUTHORS = {
    "Cora": {"hidden": 512, "gat_heads": 4, "layers": 2, "dropout": 0.2, "attn_drop": 0.1, "replace_rate": 0.05,
             "gamma": 3.0, "lr": 1e-3, "weight_decay": 2e-4, "epochs": 1500, "probe": (0.01, 1e-4, 300)},
    "CiteSeer": {"hidden": 512, "gat_heads": 2, "layers": 2, "dropout": 0.2, "attn_drop": 0.1, "replace_rate": 0.1,
                 "gamma": 1.0, "lr": 1e-3, "weight_decay": 2e-5, "epochs": 300, "probe": (0.01, 0.01, 300)},
}  # fmt: skip


@pytest.mark.parametrize("ds", sorted(AUTHORS))
def test_shipped_node_configs_carry_the_authors_settings(ds):
    from geomask.eval.graphs import _PROBE, _config

    want, cfg = AUTHORS[ds], _config(ds, None, "graphmae")
    m, o = cfg["method"], cfg["optim"]
    for key in ("hidden", "gat_heads", "layers", "dropout", "attn_drop", "replace_rate"):
        assert m[key] == want[key], key
    assert (m["encoder"], m["decoder_layers"], m["residual"], m["norm"]) == ("gat", 1, False, None)
    assert m["gat_init"] == "xavier_relu"  # DGL's GATConv init (Xavier-normal, gain sqrt 2), not PyG's Glorot
    assert m["masker"] == {"name": "uniform", "ratio": 0.5} and m["loss"] == {"name": "sce", "gamma": want["gamma"]}
    assert (o["name"], o["scheduler"]) == ("adam", "cosine")
    assert (o["lr"], o["weight_decay"]) == (want["lr"], want["weight_decay"])
    assert cfg["trainer"]["max_steps"] == want["epochs"] and _PROBE["graphmae"][ds] == want["probe"]


# THUDM/GraphMAE configs.yml ("MUTAG", "PROTEINS"; unset keys take main_graph.py's argparse defaults: replace_rate 0,
# residual off, scheduler off) and its GIN code, item by item, as geomask's config keys
AUTHORS_TU = {
    "MUTAG": {"in_dim": 7, "hidden": 32, "layers": 5, "dropout": 0.2, "replace_rate": 0.1, "ratio": 0.75,
              "gamma": 2.0, "pooling": "sum", "lr": 5e-4, "batch_size": 64, "epochs": 20},
    "PROTEINS": {"in_dim": 3, "hidden": 512, "layers": 3, "dropout": 0.2, "replace_rate": 0.0, "ratio": 0.5,
                 "gamma": 1.0, "pooling": "max", "lr": 1.5e-4, "batch_size": 32, "epochs": 100},
}  # fmt: skip


@pytest.mark.parametrize("ds", sorted(AUTHORS_TU))
def test_shipped_tu_configs_carry_the_authors_settings(ds):
    from geomask.eval.graphs import _config, _default_epochs

    want, cfg = AUTHORS_TU[ds], _config(ds, None, "graphmae")
    m, o, d = cfg["method"], cfg["optim"], cfg["data"]
    for key in ("in_dim", "hidden", "layers", "dropout", "replace_rate", "pooling"):
        assert m[key] == want[key], key
    assert (m["encoder"], m["decoder_layers"], m.get("residual", False), m["norm"]) == ("gin", 1, False, "batchnorm")
    assert m["gin_mlp"] == "hidden"  # their decoder's MLP(2, hidden, hidden, in_dim): H -> H -> F
    assert m["masker"] == {"name": "uniform", "ratio": want["ratio"]}
    assert m["loss"] == {"name": "sce", "gamma": want["gamma"]}
    assert (o["name"], o["scheduler"], o["lr"], o["weight_decay"]) == ("adam", "none", want["lr"], 0.0)
    assert d["batch_size"] == want["batch_size"]
    n = {"MUTAG": 188, "PROTEINS": 1113}[ds]
    assert _default_epochs(_graph_set(ds, n), cfg) == want["epochs"]
    assert cfg["trainer"]["max_steps"] == want["epochs"] * -(-n // want["batch_size"])  # the same budget as steps


def test_graph_svm_uses_one_split_for_every_seed():
    """GraphMAE scores every pretraining seed on ``StratifiedKFold(10, shuffle=True, random_state=0)``: the same
    features then score the same for every seed (a per-seed split would move them, as it does here)."""
    pytest.importorskip("sklearn")
    from geomask.eval.graphs import SVM_SPLIT_SEED, _score

    gs = _graph_set("NOISY", 60)
    gs.tensors["y"] = torch.from_numpy(np.random.default_rng(1).integers(0, 2, 60))  # labels the folds cannot all fit
    x = gs.tensors["x"].reshape(60, 6, 3).sum(1)
    y = gs.tensors["y"].numpy()
    assert svm_accuracy(x.numpy(), y, seed=0) != svm_accuracy(x.numpy(), y, seed=1)  # the split does matter here
    assert SVM_SPLIT_SEED == 0 and _score(x, gs, (0.01, 0.0, 1), 0) == _score(x, gs, (0.01, 0.0, 1), 1)


@pytest.mark.parametrize(("ds", "graphs", "labels"), [("MUTAG", 188, 7), ("PROTEINS", 1113, 3)])
def test_real_tu_sets_read_as_graphmae_does(shared_data, ds, graphs, labels):
    """One-hot node labels as features (DGL's TUDataset stores PROTEINS' attributes as ``node_attr``, which GraphMAE's
    loader never reads), the files' edges in both directions, no self-loops in the data (GIN adds its own)."""
    from geomask.datasets.graphs import load_graph_set

    gs = load_graph_set(shared_data / "graphs" / ds)
    assert (gs.name, gs.level, gs.num_graphs, gs.num_features) == (ds, "graph", graphs, labels)
    assert torch.equal(gs.tensors["x"].sum(1), torch.ones(gs.tensors["x"].shape[0]))
    ei = gs.tensors["edge_index"]
    assert bool((ei[0] != ei[1]).all())
    e = set(map(tuple, ei.T.tolist()))
    assert all((v, u) in e for u, v in e)
