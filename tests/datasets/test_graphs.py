"""Generic graph readers: raw Planetoid and TU files (tiny ones written here; the real ones when ../shared/data is
present), prepared folders, bad input, and ``geomask prep graphs``."""

from __future__ import annotations

import json
import pickle
from collections import defaultdict

import numpy as np
import pytest
import torch

from geomask.cli import main
from geomask.datasets.graphs import (
    SCHEMA,
    GraphDataset,
    collate_graph_batch,
    load_graph_set,
    prep_graphs,
    read_planetoid,
    read_tu,
    write_graph_set,
)
from geomask.errors import FormatError

sp = pytest.importorskip("scipy.sparse")


def write_planetoid(d, name="toy"):
    """8 nodes: 2 train (x), 5 in allx, test ids 7 and 5 (out of order), and id 6 in the test range has no row."""
    d.mkdir(parents=True, exist_ok=True)
    feats = np.eye(8, 4, dtype=np.float32) * 2 + 1
    labels = np.eye(3, dtype=np.float32)[[0, 1, 2, 0, 1, 2, 2, 1]]
    objs = {
        "x": sp.csr_matrix(feats[:2]),
        "y": labels[:2],
        "allx": sp.csr_matrix(feats[:5]),
        "ally": labels[:5],
        "tx": sp.csr_matrix(feats[[7, 5]]),
        "ty": labels[[7, 5]],
        "graph": defaultdict(list, {0: [1, 2], 1: [0], 3: [4, 4], 6: [7], 7: [6, 7]}),
    }
    for k, v in objs.items():
        (d / f"ind.{name}.{k}").write_bytes(pickle.dumps(v, protocol=2))
    (d / f"ind.{name}.test.index").write_text("7\n5\n")
    return d


def write_tu(d, name="TOY", node_labels=True):
    d.mkdir(parents=True, exist_ok=True)
    (d / f"{name}_A.txt").write_text("1, 2\n2, 3\n4, 5\n5, 4\n")
    (d / f"{name}_graph_indicator.txt").write_text("1\n1\n1\n2\n2\n")
    (d / f"{name}_graph_labels.txt").write_text("-1\n1\n")
    if node_labels:
        (d / f"{name}_node_labels.txt").write_text("0\n2\n1\n0\n0\n")
    return d


def test_planetoid_tiny(tmp_path):
    gs = read_planetoid(write_planetoid(tmp_path / "toy" / "raw"))
    t = gs.tensors
    assert gs.level == "node" and gs.num_graphs == 1 and t["x"].shape == (8, 4)
    # rows are row-normalised; test rows are put back at their ids; id 6 (no row) keeps zeros and class 0
    assert torch.allclose(t["x"].sum(1)[[0, 1, 2, 3, 4, 5, 7]], torch.ones(7)) and t["x"][6].sum() == 0
    raw = np.eye(8, 4) * 2 + 1
    assert torch.allclose(t["x"][7], torch.tensor(raw[7] / raw[7].sum(), dtype=torch.float32))
    assert t["y"].tolist() == [0, 1, 2, 0, 1, 2, 0, 1]  # id 6: no row → class 0 (not its 2)
    assert t["train_mask"].nonzero().flatten().tolist() == [0, 1]
    assert t["val_mask"].nonzero().flatten().tolist() == [2, 3, 4, 5, 6, 7]  # the 500 after train, cut at N
    assert t["test_mask"].nonzero().flatten().tolist() == [5, 7]
    edges = set(map(tuple, t["edge_index"].t().tolist()))  # undirected, deduplicated, no self-loops
    assert edges == {(0, 1), (1, 0), (0, 2), (2, 0), (3, 4), (4, 3), (6, 7), (7, 6)}


def test_planetoid_refuses_other_pickles_and_names_the_file(tmp_path):
    d = write_planetoid(tmp_path / "toy")

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    (d / "ind.toy.graph").write_bytes(pickle.dumps(Evil()))
    with pytest.raises(
        FormatError, match=r"ind\.toy\.graph: not a Planetoid pickle .*refusing to load builtins\.print"
    ):
        read_planetoid(d)
    (d / "ind.toy.y").write_bytes(b"garbage")
    with pytest.raises(FormatError, match=r"ind\.toy\.y"):
        read_planetoid(d)


def test_tu_tiny(tmp_path):
    gs = read_tu(write_tu(tmp_path / "TOY"))
    assert gs.level == "graph" and gs.num_graphs == 2 and gs.num_classes == 2
    g0, g1 = gs.graph(0), gs.graph(1)
    assert g0.num_nodes == 3 and g1.num_nodes == 2
    assert g0.x.tolist() == [[1, 0, 0], [0, 0, 1], [0, 1, 0]]  # one-hot node labels
    assert sorted(map(tuple, g1.edge_index.t().tolist())) == [(0, 1), (1, 0)]  # local ids, deduplicated
    assert g0.edge_index.shape[1] == 4 and g0.y.tolist() == [0] and g1.y.tolist() == [1]
    b = collate_graph_batch(GraphDataset(gs).items)
    assert b.num_graphs == 2 and b.x.shape == (5, 3) and b.batch.tolist() == [0, 0, 0, 1, 1]


def test_tu_without_node_labels_uses_a_constant(tmp_path):
    gs = read_tu(write_tu(tmp_path / "TOY", node_labels=False))
    assert gs.tensors["x"].tolist() == [[1.0]] * 5


@pytest.mark.parametrize(
    ("file", "text", "message"),
    [
        ("TOY_A.txt", "1, x\n", r"TOY_A\.txt: expected integers"),
        ("TOY_A.txt", "1, 9\n", r"TOY_A\.txt: node ids outside 1\.\.5"),
        ("TOY_A.txt", "1, 4\n", r"TOY_A\.txt: an edge joins nodes of two graphs"),
        ("TOY_graph_labels.txt", "1\n", r"TOY_graph_labels\.txt: 1 labels for 2 graphs"),
        ("TOY_graph_indicator.txt", "2\n1\n1\n2\n2\n", r"TOY_graph_indicator\.txt: graph ids must"),
        ("TOY_node_labels.txt", "0\n", r"TOY_node_labels\.txt: 1 labels for 5 nodes"),
    ],
)
def test_tu_bad_files(tmp_path, file, text, message):
    d = write_tu(tmp_path / "TOY")
    (d / file).write_text(text)
    with pytest.raises(FormatError, match=message):
        read_tu(d)


def test_prepared_round_trip_and_schema(tmp_path):
    gs = read_tu(write_tu(tmp_path / "TOY"))
    out = write_graph_set(gs, tmp_path / "prep")
    m = json.loads((out / "manifest.json").read_text())
    assert m["kind"] == "graphs" and m["schema"] == SCHEMA and m["graphs"] == 2
    back = load_graph_set(out)
    assert back.name == "TOY" and all(torch.equal(back.tensors[k], gs.tensors[k]) for k in gs.tensors)
    m["schema"] = SCHEMA + 1
    (out / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(FormatError, match=r"manifest\.json: graphs schema 2"):
        load_graph_set(out)


def test_prep_graphs_one_line_per_bad_source_others_written(tmp_path, capsys):
    good = write_tu(tmp_path / "TOY")
    bad = write_tu(tmp_path / "BAD", name="BAD")
    (bad / "BAD_A.txt").write_text("oops\n")
    rows, failures = prep_graphs([good, bad, tmp_path / "nothing"], tmp_path / "out")
    assert [r["name"] for r in rows] == ["TOY"] and (tmp_path / "out" / "TOY" / "graphs.pt").is_file()
    assert [f[0] for f in failures] == [str(bad), str(tmp_path / "nothing")]
    rc = main(["prep", "graphs", str(good), str(bad), "--out", str(tmp_path / "cli")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1 and len(err) == 1 and "BAD_A.txt: expected integers" in err[0] and "Traceback" not in err[0]


def test_graphs_data_kind_reads_prepared_folders(tmp_path):
    from geomask.datasets.kinds import get_data_kind, kind_for_manifest

    out = write_graph_set(read_tu(write_tu(tmp_path / "TOY")), tmp_path / "prep")
    kind = get_data_kind("graphs")
    assert kind_for_manifest("graphs") == "graphs"
    ds = kind.open_dataset(out, None, 0)
    b = kind.collate_fn()([ds[0], ds[1]])
    assert len(ds) == 2 and b.num_graphs == 2 and b.y.tolist() == [0, 1]


def test_real_planetoid_and_tu(shared_data):
    root = shared_data / "graphs"
    cora = load_graph_set(root / "Cora")
    s = cora.summary()
    assert (s["nodes"], s["edges"], s["features"], s["classes"]) == (2708, 10556, 1433, 7)
    assert [int(cora.tensors[f"{k}_mask"].sum()) for k in ("train", "val", "test")] == [140, 500, 1000]
    cs = load_graph_set(root / "CiteSeer").summary()
    assert (cs["nodes"], cs["edges"], cs["features"], cs["classes"]) == (3327, 9104, 3703, 6)
    mutag = load_graph_set(root / "MUTAG").summary()
    assert (mutag["graphs"], mutag["nodes"], mutag["edges"], mutag["features"]) == (188, 3371, 7442, 7)
