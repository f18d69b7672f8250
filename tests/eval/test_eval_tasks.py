"""Equivalence labels, probability targets, and the ``eval`` command's JSON, table and plots."""

from __future__ import annotations

import itertools
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from geomask.circuits.graph import NodeType, aig_to_graph
from geomask.cli import main as geomask_main
from geomask.eval.equivalence import equivalence_pairs
from geomask.eval.probability import node_probability
from geomask.eval.protocol import EvalDesign
from geomask.io.aig import AIG
from geomask.io.aiger import write_aiger


def main(argv: list[str]) -> int:
    """``geomask eval ARGV``."""
    return geomask_main(["eval", *argv])


# inputs a=1 b=2 c=3 (literals 2, 4, 6); ANDs: 4 = a&b, 5 = b&a (equivalent), 6 = !a&!b (= !(a|b)),
# 7 = 4 & c, 8 = !(a&b) & !c  -- outputs 7 and !6
TINY = AIG(
    num_inputs=3,
    ands=np.array([[2, 4], [4, 2], [3, 5], [8, 6], [9, 7]], dtype=np.int64),
    outputs=np.array([14, 13], dtype=np.int64),
)


def truth(aig: AIG) -> dict[int, tuple[int, ...]]:
    """Truth table of every variable by plain enumeration (the oracle)."""
    tables = {v: [] for v in range(aig.max_var + 1)}
    for bits in itertools.product((0, 1), repeat=aig.num_inputs):
        val = {0: 0, **{i + 1: b for i, b in enumerate(bits)}}
        for k, (l0, l1) in enumerate(aig.ands.tolist()):
            val[aig.num_inputs + 1 + k] = (val[l0 >> 1] ^ (l0 & 1)) & (val[l1 >> 1] ^ (l1 & 1))
        for v in tables:
            tables[v].append(val[v])
    return {v: tuple(t) for v, t in tables.items()}


def design(aig: AIG) -> EvalDesign:
    return EvalDesign("tiny", Path("tiny.aag"), aig, aig_to_graph(aig, "per_edge"))


def test_equivalence_pairs_match_truth_tables():
    d = design(TINY)
    p = equivalence_pairs(d, seed=0)
    assert p.proven and p.label.sum() >= 1
    tt = truth(TINY)
    var = d.graph.var.numpy()
    for (u, v), lab, comp in zip(p.nodes, p.label, p.complement):
        a, b = tt[var[u]], tt[var[v]]
        inv = tuple(1 - x for x in b)
        assert lab == (a == b or a == inv)
        if lab:
            assert comp == (a != b)
    pairs = {tuple(sorted(var[n])) for n in p.nodes[p.label]}
    assert (4, 5) in pairs  # a&b and b&a


def test_node_probability_matches_enumeration():
    d = design(TINY)
    p = node_probability(d).numpy()
    tt = {v: np.mean(t) for v, t in truth(TINY).items()}
    nt, var = d.graph.node_type.numpy(), d.graph.var.numpy()
    for n in range(len(nt)):
        want = tt[var[n]]
        if nt[n] == NodeType.NOT:
            want = 1 - want
        if nt[n] == NodeType.PO:
            k = int(np.nonzero(d.graph.po_index.numpy() == n)[0][0])
            want = tt[var[n]] if TINY.outputs[k] % 2 == 0 else 1 - tt[var[n]]
        assert p[n] == pytest.approx(want)
    assert p[nt == NodeType.PO].tolist() == pytest.approx([0.125, 0.75])  # a&b&c, a|b


def test_eval_command_json_table_plots(tmp_path, capsys, mixed_aig):
    srcs = []
    for i in range(3):
        srcs.append(tmp_path / f"m{i}.aag")
        write_aiger(mixed_aig(200 + i, 8, 20), srcs[-1])
    out = tmp_path / "res.json"
    args = [*map(str, srcs), "--json", str(out), "--out", str(tmp_path / "plots"), "--quiet"]
    args += ["--methods", "scratch", "mgm", "--seeds", "0", "1", "--pretrain-steps", "2", "--finetune-steps", "20"]
    args += ["--hidden", "16", "--layers", "2"]
    assert main(["probability", *args]) == 0
    res = json.loads(out.read_text())
    assert set(res["methods"]) == {"scratch", "mgm"}
    for name in ("scratch", "mgm"):
        m = res["methods"][name]["nodes"]
        assert set(m) == {"mae", "mae_std", "mae_seeds", "mae_and", "mae_and_std", "mae_and_seeds"}
        assert 0 <= m["mae"] <= 1 and m["mae_std"] >= 0
        assert len(m["mae_seeds"]) == 2 and abs(sum(m["mae_seeds"]) / 2 - m["mae"]) < 1e-12  # one value per seed
    assert res["config"]["seeds"] == [0, 1] and res["config"]["encoder"] == "frozen"
    assert (tmp_path / "plots" / "probability_nodes_bars.png").stat().st_size > 0
    text = capsys.readouterr().out
    assert "scratch" in text and "baseline" in text and "±" in text

    assert main(["equivalence", *args]) == 0
    res = json.loads(out.read_text())
    for name in ("scratch", "mgm"):
        assert set(res["methods"][name]) == {"zero_shot", "trained_head"}
        for m in res["methods"][name].values():
            assert 0 <= m["auc"] <= 1 and 0 <= m["f1"] <= 1 and "f1_std" in m
    assert res["data"]["positives"] > 0 and res["data"]["proven_designs"] == 3


def test_eval_command_reports_bad_method(capsys):
    assert main(["qor", "x.aag", "--json", "o.json", "--methods", "nope"]) == 2  # a usage error
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "invalid choice: 'nope'" in err and err.count("\n") == 1


def test_command_method_names_match_protocol():
    from geomask.eval import command, protocol

    assert command.METHOD_NAMES == protocol.METHOD_NAMES


def test_probability_with_encoder_finetuning_beats_the_node_type_baseline(mixed_aig):
    """Training the encoder with the head (a small seeded run) predicts held-out designs' signal
    probabilities better than each node type's mean, measured in the same run."""
    from geomask.eval.probability import run_probability
    from geomask.eval.protocol import Budget

    designs = [
        EvalDesign(f"m{i}", Path(f"m{i}.aag"), aig, aig_to_graph(aig, "per_edge"))
        for i, aig in enumerate(mixed_aig(300 + i, 10, 60) for i in range(6))
    ]
    budget = Budget(
        methods=("scratch",),
        seeds=(0,),
        pretrain_steps=0,
        finetune_steps=150,
        finetune_encoder=True,
        model={"hidden": 32, "layers": 4},
        head_lr=3e-3,
        lr=3e-3,
    )
    res = run_probability(designs, budget, progress=False)
    got, base = res["methods"]["scratch"]["nodes"]["mae"], res["baseline"]["nodes"]["mae"]
    assert got < 0.8 * base, (got, base)


def test_pretraining_repeats_whatever_the_global_generator_state(mixed_aig):
    """A seeded pretraining run gives the same losses and weights after any global RNG history (torch seeds
    the global generator at random when a process starts; MGM's heads draw their dropout from it)."""
    import torch

    from geomask.eval.protocol import Budget, pretrain

    graphs = [aig_to_graph(mixed_aig(40 + i, 8, 40), "per_edge") for i in range(4)]
    budget = Budget(methods=("mgm",), pretrain_steps=4, batch_size=2, model={"hidden": 16, "layers": 2})
    runs = []
    for state in (1, 2):
        torch.manual_seed(state)
        method, losses = pretrain("mgm", graphs, budget, seed=0)
        runs.append((losses, torch.cat([p.detach().flatten() for p in method.parameters()])))
    assert len(runs[0][0]) == 4
    assert runs[0][0] == runs[1][0]
    assert torch.equal(runs[0][1], runs[1][1])


@pytest.mark.skipif(shutil.which("berkeley-abc") is None, reason="berkeley-abc is not installed")
def test_eval_qor_command_with_training_only_designs(tmp_path, capsys, mixed_aig):
    srcs = []
    for i in range(4):
        srcs.append(tmp_path / f"q{i}.aag")
        write_aiger(mixed_aig(400 + i, 10, 40), srcs[-1])
    out = tmp_path / "qor.json"
    common = ["--json", str(out), "--quiet", "--methods", "scratch", "--finetune-steps", "20"]
    common += ["--recipes", "6", "--recipe-length", "3", "--hidden", "16", "--layers", "2"]
    assert main(["qor", str(srcs[0]), "--train-src", *map(str, srcs[1:]), "--folds", "1", *common]) == 0
    res = json.loads(out.read_text())
    assert res["config"]["designs"] == ["q0"] and sorted(res["config"]["train_designs"]) == ["q1", "q2", "q3"]
    assert set(res["methods"]["scratch"]) == {"unseen_recipes", "unseen_designs"}
    capsys.readouterr()
    assert main(["qor", str(srcs[0]), "--train-src", str(srcs[0]), *common]) == 2  # a usage error
    assert "also evaluated (the same circuit)" in capsys.readouterr().err
    # the same circuit under another name and folder is still a leak, named by its files
    (tmp_path / "other").mkdir()
    copy = tmp_path / "other" / "q0.aag"
    copy.write_bytes(srcs[0].read_bytes())
    assert main(["qor", str(srcs[0]), "--train-src", str(copy), str(srcs[1]), *common]) == 2
    assert f"{copy} is {srcs[0]}" in capsys.readouterr().err
    # another circuit of an evaluated design's name (OpenCores' i2c beside EPFL's): renamed after its folder
    write_aiger(mixed_aig(499, 10, 40), copy)
    assert main(["qor", str(srcs[0]), "--train-src", str(copy), str(srcs[1]), "--folds", "1", *common]) == 0
    err = capsys.readouterr().err
    assert f"--train-src design q0 ({copy}) is named q0_other here" in err
    res = json.loads(out.read_text())
    assert res["config"]["designs"] == ["q0"] and sorted(res["config"]["train_designs"]) == ["q0_other", "q1"]


def test_eval_goes_on_past_a_design_that_cannot_be_read(tmp_path, capsys, mixed_aig):
    good = []
    for i in range(2):
        good.append(tmp_path / f"m{i}.aag")
        write_aiger(mixed_aig(300 + i, 8, 20), good[-1])
    bad = tmp_path / "broken.v"
    bad.write_text("module broken(input a, output y);\n  assign y = a &;\nendmodule\n")  # yosys rejects it
    out = tmp_path / "res.json"
    args = [str(good[0]), str(bad), str(good[1]), "--json", str(out), "--quiet", "--methods", "scratch"]
    args += ["--seeds", "0", "--pretrain-steps", "0", "--finetune-steps", "5", "--hidden", "8", "--layers", "1"]
    assert main(["probability", *args]) == 0
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(err) == 1 and "broken.v" in err[0] and "Traceback" not in err[0]
    assert json.loads(out.read_text())["data"]["designs"] == 2
    # sources that are not designs (a missing file, a folder of no circuits), in SRC and in --pretrain-src: one line
    # each, the rest evaluated (they used to stop the whole run)
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "readme.vhd").write_text("entity x is end;")
    missing, notes = tmp_path / "gone.aag", tmp_path / "notes"
    args[args.index(str(bad))] = str(missing)
    args[args.index("--pretrain-steps") + 1] = "1"
    assert main(["probability", *args, "--pretrain-src", str(notes), str(good[0])]) == 0
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(err) == 2 and "gone.aag" in err[0] and "notes" in err[1], err
    assert err[0].endswith("(left out)") and err[1].endswith("(left out of --pretrain-src)"), err
    assert all("Traceback" not in line for line in err)
    assert json.loads(out.read_text())["data"]["designs"] == 2
    # nothing readable at all: one error per design, then one line saying so, exit 1; one source: its error alone
    assert main(["probability", str(bad), str(missing), "--json", str(out), "--quiet", "--methods", "scratch"]) == 1
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 3 and "no design could be read" in err[2], err
    assert sorted("broken.v" in line for line in err[:2]) == [False, True] and any("gone.aag" in e for e in err[:2])
    assert main(["probability", str(bad), "--json", str(out), "--quiet", "--methods", "scratch"]) == 1
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and "broken.v" in err[0] and "syntax error" in err[0], err


def test_verilog_methods_without_verilog_are_labelled(tmp_path, capsys, mixed_aig):
    """MGVGA pretrained on AIGER designs (no Verilog to align to) is MGM only: the table says `(no Verilog)`
    and the JSON `"verilog": false`; scratch keeps its name."""
    srcs = []
    for i in range(3):
        srcs.append(tmp_path / f"m{i}.aag")
        write_aiger(mixed_aig(500 + i, 6, 12), srcs[-1])
    out = tmp_path / "res.json"
    args = [*map(str, srcs), "--json", str(out), "--quiet", "--methods", "scratch", "mgvga_single"]
    args += ["--pretrain-steps", "1", "--finetune-steps", "3", "--hidden", "8", "--layers", "1"]
    assert main(["equivalence", *args]) == 0
    res = json.loads(out.read_text())
    assert res["verilog"] == {"mgvga_single": False} and set(res["methods"]) == {"scratch", "mgvga_single"}
    rows = [line.split("  ")[0] for line in capsys.readouterr().out.splitlines()]
    assert "mgvga_single (no Verilog)" in rows and "scratch" in rows and "mgvga_single" not in rows


def test_verilog_use_needs_embeddings_and_steps():
    import torch
    from torch_geometric.data import Data

    from geomask.eval.protocol import Budget, verilog_use

    plain = Data(num_nodes=3)
    with_v = Data(num_nodes=3, verilog_emb=torch.zeros(2, 4))
    both = Budget(methods=("mgm", "mgvga", "mgvga_single"), pretrain_steps=5)
    assert verilog_use([plain, plain], both) == {"mgvga": False, "mgvga_single": False}
    assert verilog_use([plain, with_v], both) == {"mgvga": True, "mgvga_single": True}
    assert verilog_use([with_v], Budget(methods=("mgvga",), pretrain_steps=0)) == {"mgvga": False}
    assert verilog_use([with_v], Budget(methods=("mgvga",), checkpoints={"mgvga": "run/"})) == {}
    assert verilog_use([with_v], Budget(methods=("scratch", "graphmae"))) == {}


def test_equivalence_with_encoder_finetuning(mixed_aig):
    """`finetune_encoder` trains encoder and pair head together: the training pairs' BCE falls well below the
    untrained model's, held-out AUC is above chance, and `zero_shot` stays the frozen encoder's."""
    import torch
    import torch.nn.functional as F

    from geomask.eval.equivalence import finetune_pairs, run_equivalence
    from geomask.eval.protocol import Budget, embed_nodes, pretrain

    designs = [
        EvalDesign(f"m{i}", Path(f"m{i}.aag"), aig, aig_to_graph(aig, "per_edge"))
        for i, aig in enumerate(mixed_aig(600 + i, 8, 60) for i in range(6))
    ]
    kw = dict(methods=("scratch",), seeds=(0,), pretrain_steps=0, model={"hidden": 16, "layers": 2}, lr=3e-3)
    frozen = run_equivalence(designs, Budget(finetune_steps=30, **kw), progress=False)["methods"]["scratch"]
    tuned = run_equivalence(designs, Budget(finetune_steps=100, finetune_encoder=True, **kw), progress=False)
    tuned = tuned["methods"]["scratch"]
    assert tuned["zero_shot"] == frozen["zero_shot"]
    assert tuned["trained_head"]["auc"] > 0.55, tuned

    graphs = [d.graph for d in designs]
    pairs = [equivalence_pairs(d, seed=0) for d in designs]
    budget = Budget(finetune_steps=100, finetune_encoder=True, **kw)

    def bce(method, head) -> float:
        emb = embed_nodes(method, graphs)
        a = torch.cat([e[p.nodes[:, 0]] for e, p in zip(emb, pairs)])
        b = torch.cat([e[p.nodes[:, 1]] for e, p in zip(emb, pairs)])
        y = torch.from_numpy(np.concatenate([p.label for p in pairs])).float()
        with torch.no_grad():
            return float(F.binary_cross_entropy_with_logits(head(torch.cat([(a - b).abs(), a * b], 1)), y))

    method = pretrain("scratch", graphs, budget, seed=0)[0]
    head = finetune_pairs(method, graphs, [p.nodes for p in pairs], [p.label for p in pairs], budget, 0)
    before = bce(pretrain("scratch", graphs, budget, seed=0)[0], head)  # a trained head on a fresh encoder
    after = bce(method, head)
    assert after < 0.8 * before and after < 0.8 * np.log(2), (after, before)  # ln 2: a constant on balanced labels


def _probability_designs(mixed_aig, n: int) -> list[EvalDesign]:
    return [
        EvalDesign(f"v{i}", Path(f"v{i}.aag"), aig, aig_to_graph(aig, "per_edge"))
        for i, aig in enumerate(mixed_aig(500 + i, 8, 40) for i in range(n))
    ]


def test_early_stopping_keeps_the_validation_best_step(mixed_aig):
    """With validation nodes, fine-tuning keeps the state of the step with the lowest validation MAE: the kept
    predictor scores that MAE on the validation nodes, and equals a plain run of exactly that many steps."""
    import torch

    from geomask.eval.protocol import Budget, finetune_nodes, pretrain

    designs = _probability_designs(mixed_aig, 4)
    graphs = [d.graph for d in designs]
    targets = [node_probability(d) for d in designs]
    scored = [torch.isin(g.node_type, torch.tensor([int(NodeType.AND), int(NodeType.NOT)])) for g in graphs]
    none = [torch.zeros_like(s) for s in scored]
    train, val = scored[:3] + none[3:], none[:3] + scored[3:]
    kw = dict(methods=("scratch",), pretrain_steps=0, lr=3e-2, head_lr=3e-2, model={"hidden": 16, "layers": 2})
    budget = Budget(finetune_steps=60, finetune_encoder=True, **kw)
    fit = finetune_nodes(
        pretrain("scratch", graphs, budget, 0)[0], graphs, train, targets, budget, 0, val_masks=val, eval_every=10
    )
    steps, maes = zip(*fit.val_curve)
    assert steps == (10, 20, 30, 40, 50, 60)
    assert fit.best_step == steps[int(np.argmin(maes))] and fit.best_step < 60, fit.val_curve  # not simply the last
    y_val = torch.cat([t[m] for t, m in zip(targets, val)])
    got = torch.cat(fit(graphs, val)).double()
    assert float((got - y_val).abs().mean()) == pytest.approx(min(maes), abs=1e-6)
    plain_budget = Budget(finetune_steps=fit.best_step, finetune_encoder=True, **kw)
    plain = finetune_nodes(pretrain("scratch", graphs, plain_budget, 0)[0], graphs, train, targets, plain_budget, 0)
    assert plain.best_step == fit.best_step and plain.val_curve == []
    assert torch.allclose(torch.cat(plain(graphs, val)), torch.cat(fit(graphs, val)), atol=1e-5)


def test_eval_probability_val_designs_option(tmp_path, capsys, mixed_aig):
    """`--val-designs N` reports the chosen step per method; it refuses a frozen encoder or too few designs
    with one usage line."""
    srcs = []
    for i in range(6):
        srcs.append(tmp_path / f"p{i}.aag")
        write_aiger(mixed_aig(600 + i, 8, 30), srcs[-1])
    out = tmp_path / "p.json"
    common = ["--json", str(out), "--quiet", "--methods", "scratch", "--seeds", "0", "--pretrain-steps", "0"]
    common += ["--finetune-steps", "20", "--hidden", "8", "--layers", "1"]
    args = [*map(str, srcs), *common, "--finetune-encoder", "--val-designs", "1", "--val-every", "5"]
    assert main(["probability", *args]) == 0
    res = json.loads(out.read_text())
    assert res["early_stopping"] == {"val_designs": 1, "val_every": 5}
    assert res["methods"]["scratch"]["nodes"]["best_step"] in (5, 10, 15, 20)
    capsys.readouterr()
    assert main(["probability", *map(str, srcs), *common, "--val-designs", "1"]) == 2  # frozen encoder
    err = capsys.readouterr().err
    assert err.startswith("error: --val-designs") and err.count("\n") == 1
    assert main(["probability", *map(str, srcs[:3]), *common, "--finetune-encoder", "--val-designs", "2"]) == 2
    assert "training designs" in capsys.readouterr().err
