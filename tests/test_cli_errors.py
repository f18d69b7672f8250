"""Every subcommand, a table of bad arguments: one ``error:`` line, no traceback, the right exit status.

Exit status 2 is a bad command line (argparse, or a value the library refuses: a size ≤ 0, an unknown name,
a wrong kind of input); 1 is bad data (a missing or broken file).  The table runs in-process through
``geomask.cli.main``; a second test runs a few rows as real processes.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from geomask.cli import main
from geomask.io.aig import AIG
from geomask.io.aiger import write_aiger


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, str]:
    """Small valid inputs of each kind, and paths that do not exist."""
    root = tmp_path_factory.mktemp("bad_args")
    aag = root / "small.aag"
    write_aiger(AIG(num_inputs=2, ands=[[2, 4]], outputs=[6], input_names=["a", "b"], output_names=["y"]), aag)
    rng = np.random.default_rng(0)
    pts = root / "cloud.npy"
    np.save(pts, rng.random((64, 3)).astype(np.float32))
    lab = root / "cloud_labels.npy"
    np.save(lab, rng.integers(0, 3, 64))
    from geomask.datasets.scans import prep_scans

    prep_scans([pts], root / "scans", voxel_size=0.2, progress=False)
    cfg = root / "tiny.yaml"
    cfg.write_text("method: {name: mgm}\ndata: {kind: synthetic}\ntrainer: {max_steps: 1}\n")
    return {
        "aag": str(aag),
        "pts": str(pts),
        "lab": str(lab),
        "cfg": str(cfg),
        "missing": str(root / "missing.aig"),
        "missing_npy": str(root / "missing.npy"),
        "out": str(root / "out"),
        "json": str(root / "out.json"),
        "root": str(root),
        "scans": str(root / "scans"),
    }


# (argv with {placeholders}, exit status, a piece of the message)
BAD = [
    # top level
    ("", 2, "required"),
    ("frobnicate", 2, "invalid choice"),
    # info
    ("info", 2, "required: FILE"),
    ("info {missing}", 1, "no such file"),
    ("info {aag} --latches sideways", 2, "invalid choice"),
    ("info {root}/small.txt", 1, "small.txt"),
    # convert
    ("convert {aag}", 2, "required: OUT"),
    ("convert {missing} {root}/x.aag", 1, "no such file"),
    ("convert {aag} {root}/x.txt", 2, "must end in .aig"),
    # prep circuits
    ("prep", 2, "required: WHAT"),
    ("prep circuits {aag}", 2, "--out"),
    ("prep circuits {aag} --out {out} --jobs 0", 2, "--jobs"),
    ("prep circuits {aag} --out {out} --jobs -1", 2, "--jobs"),
    ("prep circuits {aag} --out {out} --recipes -2", 2, "--recipes"),
    ("prep circuits {aag} --out {out} --recipe-length 0", 2, "--recipe-length"),
    ("prep circuits {aag} --out {out} --timeout 0", 2, "--timeout"),
    ("prep circuits {aag} --out {out} --not-nodes maybe", 2, "invalid choice"),
    ("prep circuits {aag} --out {out} --recipes many", 2, "expected a whole number"),
    # prep pairs
    ("prep pairs {aag} --out {out} --recipes -1", 2, "--recipes"),
    ("prep pairs {aag} --out {out} --jobs 0", 2, "--jobs"),
    ("prep pairs {aag} --out {out} --level paragraph", 2, "invalid choice"),
    # prep scans
    ("prep scans {pts} --out {out}", 2, "--voxel-size"),
    ("prep scans {pts} --out {out} --voxel-size 0", 2, "--voxel-size"),
    ("prep scans {pts} --out {out} --voxel-size -0.01", 2, "--voxel-size"),
    ("prep scans {pts} --out {out} --voxel-size nan", 2, "--voxel-size"),
    ("prep scans {pts} --out {out} --voxel-size 0.1 --label-map bogus", 2, "nyu40_to_scannet20"),
    ("prep scans {pts} --out {out} --voxel-size 0.1 --labels {lab} --labels {lab}", 2, "one per scan"),
    ("prep scans {pts} --out {out} --voxel-size 0.1 --jobs 0", 2, "--jobs"),
    # prep images ({pts} is a point cloud [64, 3], not images; {root}/img a folder of its own)
    ("prep images {pts}", 2, "--out"),
    ("prep images {pts} --out {root}/img --size 0 32", 2, "--size"),
    ("prep images {pts} --out {root}/img --size 32", 2, "--size"),
    ("prep images {pts} --out {root}/img --size 32 wide", 2, "--size"),
    ("prep images {pts} --out {root}/img --jobs 0", 2, "--jobs"),
    ("prep images {missing_npy} --out {root}/img --quiet", 1, "missing.npy: no such file"),
    ("prep images {aag} --out {root}/img --quiet", 1, "small.aag: not an image source"),
    ("prep images {pts} --out {root}/img --quiet", 1, "cloud.npy: images must be N×H×W×C"),
    ("prep images {pts} --out {scans} --quiet", 1, "already holds a dataset made with other settings"),
    # prep graphs / eval graphs (issue 14; {pts} is a file, {scans} a scan dataset, {root} holds no graphs)
    ("prep graphs {root}", 2, "--out"),
    ("prep graphs {pts} --out {root}/g", 1, "cloud.npy: not a graphs folder"),
    ("eval graphs {root}", 2, "--json"),
    ("eval graphs {root} --json {json} --seeds 0", 2, "--seeds"),
    ("eval graphs {scans} --json {json}", 1, "holds 'scan' items, not graphs"),
    # prep objects / eval objects (issue 11; {pts}:{lab} has labels but no instance ids)
    ("prep objects {pts}", 2, "--out"),
    ("prep objects {pts} --out {root}/o --num-points 0", 2, "--num-points"),
    ("prep objects {missing_npy} --out {root}/o --quiet", 1, "missing.npy: no such file"),
    ("prep objects {pts}:{lab} --out {root}/o --quiet", 1, "cloud_labels.npy: has no instance ids"),
    ("eval objects {scans} --json {json} --seeds -1", 2, "--seeds"),
    ("eval objects {scans} --json {json}", 1, "holds 'scan' items, expected 'scan_objects'"),
    ("eval objects {scans} --json {json} --pretrain-crops -5", 2, "--pretrain-crops"),
    # list
    ("list", 2, "required"),
    ("list everything", 2, "invalid choice"),
    # pretrain
    ("pretrain", 2, "CONFIG"),
    ("pretrain {root}/no_such_config.yaml", 2, "no_such_config"),
    ("pretrain no_such_shipped_config", 2, "no_such_shipped_config"),
    ("pretrain {cfg} --set foo", 2, "KEY=VALUE"),
    ("pretrain {cfg} --set trainer.max_steps=abc", 2, "max_steps"),
    ("pretrain {cfg} --set trainer.no_such_key=1", 2, "no_such_key"),
    ("pretrain {cfg} --set method.name=no_such_method", 2, "no_such_method"),
    ("pretrain {cfg} --set data.kind=circuits data.roots=[{root}/no_such_folder]", 2, "no_such_folder"),
    ("pretrain {cfg} --set data.kind=auto data.roots=[{scans}]", 2, "scans"),
    ("pretrain {cfg} --set data.kind=auto data.roots=[{scans}] --resume", 2, "scans"),
    ("pretrain {cfg} --import {root}/no_such_plugin.py", 2, "no such file"),
    ("pretrain {cfg} --import no_such_module_xyz", 2, "no_such_module_xyz"),
    # eval (circuits)
    ("eval", 2, "required: TASK"),
    ("eval qor {aag}", 2, "--json"),
    ("eval qor {aag} --json {json} --folds 0", 2, "--folds"),
    ("eval qor {aag} --json {json} --methods bogus", 2, "invalid choice"),
    ("eval qor {aag} --json {json} --checkpoint nonsense", 2, "METHOD=PATH"),
    ("eval qor {aag} --json {json} --finetune-steps 0", 2, "--finetune-steps"),
    ("eval qor {aag} --json {json} --encoder transformer", 2, "invalid choice"),
    ("eval qor {missing} --json {json}", 1, "no such file"),
    ("eval equivalence {aag} --json {json} --hidden 0", 2, "--hidden"),
    ("eval probability {aag} --json {json} --lr -1", 2, "--lr"),
    # eval text / sequences (issue 13)
    ("eval text --json {json}", 2, "--train"),
    ("eval text --train {missing} --json {json}", 1, "no such file"),
    ("eval text --train {aag} --json {json} --steps -1", 2, "--steps"),
    ("eval sequences --train {missing} --json {json}", 1, "no such file"),
    ("eval sequences --train {aag} --json {json}", 1, "no column"),
    ("eval sequences --train {aag} --json {json} --methods bogus", 2, "bogus"),
    # eval ripp (issue 13)
    ("eval ripp", 2, "--json"),
    ("eval ripp --json {json} --methods bogus", 2, "bogus"),
    ("eval ripp --json {json} --tasks amp_tm nonsense", 2, "invalid choice"),
    ("eval ripp --json {json} --tasks amp_tm amp_tm --methods kmer", 2, "two tasks"),
    ("eval ripp --json {json} --finetune-steps 0", 2, "--finetune-steps"),
    ("eval ripp --json {json} --seeds -1", 2, "--seeds"),
    ("eval ripp --json {json} --max-len 2 --methods kmer", 2, "--max-len"),
    # eval pairing (issue 13, DiffPALM)
    ("eval pairing", 2, "--json"),
    ("eval pairing --json {json} --pairs 0", 2, "--pairs"),
    ("eval pairing --json {json} --length 2 --train-steps 0 --pair-steps 0", 2, "couplings"),
    # eval (scans)
    ("eval probe --train {missing_npy}:{lab} --test {pts}:{lab} --json {json}", 1, "missing.npy"),
    ("eval probe --train {pts}:{lab} --test {pts}:{lab} --json {json} --voxel-size 0", 2, "--voxel-size"),
    ("eval probe --train {pts}:{lab} --test {pts}:{lab} --json {json} --threads 0", 2, "--threads"),
    ("eval probe --train {root} --test {pts}:{lab} --json {json}", 1, "not a 'geomask prep scans' dataset"),
    ("eval probe --train {scans} --test {pts}:{lab} --json {json}", 1, "no labels"),
    ("eval probe --train {pts}:{lab} --test {pts}:{lab} --json {json} --label-map bogus", 2, "bogus"),
    ("eval weak --train {pts}:{lab} --test {pts}:{lab} --json {json} --label-fraction 0", 2, "--label-fraction"),
    ("eval weak --train {pts}:{lab} --test {pts}:{lab} --json {json} --label-fraction 1.5", 2, "--label-fraction"),
    # eval images (issue 12; {pts} is a point cloud, not images)
    ("eval images --train {missing_npy} --test {pts} --json {json}", 1, "missing.npy: no such file"),
    ("eval images --train {pts} --test {pts} --json {json}", 1, "cloud.npy: images must be"),
    ("eval images --train {pts} --test {pts} --json {json} --finetune-steps 0", 2, "--finetune-steps"),
]


def _argv(template: str, files: dict[str, str]) -> list[str]:
    return template.format(**files).split()


@pytest.mark.parametrize(("template", "status", "needle"), BAD, ids=[t or "(nothing)" for t, _, _ in BAD])
def test_bad_arguments_give_one_line(template, status, needle, files, capsys):
    code = main(_argv(template, files))
    cap = capsys.readouterr()
    lines = [line for line in cap.err.splitlines() if line.strip()]
    assert code == status, cap.err
    assert len(lines) == 1, cap.err
    assert lines[0].startswith("error: "), lines[0]
    assert "Traceback" not in cap.err and "internal error" not in cap.err, cap.err
    assert needle in lines[0], lines[0]
    assert not Path(files["json"]).exists()


def test_real_processes_print_one_line_and_debug_anywhere_shows_the_traceback(files):
    def run(*argv: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "geomask.cli", *argv], capture_output=True, text=True)

    r = run("prep", "scans", files["pts"], "--out", files["out"], "--voxel-size", "0")
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and r.stderr.startswith("error: ")
    r = run("info", files["missing"])
    assert r.returncode == 1 and r.stderr.strip() == f"error: {files['missing']}: no such file or folder"
    r = run("info", files["missing"], "--debug")  # after the subcommand's arguments
    assert r.returncode == 1 and "Traceback" in r.stderr and r.stderr.rstrip().endswith("no such file or folder")


def test_options_anywhere(files, capsys, tmp_path):
    assert main(["info", files["aag"], "--json"]) == 0
    assert capsys.readouterr().out.startswith("{")
    # --labels before the scan (it once swallowed the scan: "required: SCAN")
    out = tmp_path / "scans"
    argv = ["prep", "scans", "--labels", files["lab"], files["pts"], "--out", str(out), "--voxel-size", "0.1"]
    assert main([*argv, "--quiet"]) == 0, capsys.readouterr().err
    assert (out / "manifest.json").is_file()


def test_internal_errors_are_one_line_too(monkeypatch, files, capsys):
    import geomask.cli as cli

    def broken(*args, **kwargs):
        raise KeyError("bug")

    monkeypatch.setattr(cli, "_circuit_row", broken)
    assert main(["info", files["aag"]]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "internal error (KeyError" in err and "--debug" in err


def test_eval_prints_conversion_warnings_as_one_line(tmp_path, capsys):
    """What a conversion left out (an unused module) is one ``warning:`` line naming the file, as in ``info``: not
    Python's ``file:line: UserWarning`` followed by a source line."""
    v = tmp_path / "two.v"
    v.write_text(
        "module top(input a, b, output y);\n  sub s(.a(a), .b(b), .y(y));\nendmodule\n"
        "module sub(input a, b, output y);\n  assign y = a & b;\nendmodule\n"
        "module unused(input a, output y);\n  assign y = ~a;\nendmodule\n"
    )
    out = tmp_path / "res.json"
    args = ["eval", "probability", str(v), "--json", str(out), "--quiet", "--methods", "scratch", "--seeds", "0"]
    assert main([*args, "--pretrain-steps", "0", "--finetune-steps", "1", "--hidden", "8", "--layers", "1"]) == 0
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert err and err[0] == f"warning: {v}: top module top; unused modules left out: unused (name another as PATH@TOP)"
    assert not any("UserWarning" in line or "load_designs" in line for line in err), err
