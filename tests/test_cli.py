"""The geomask command: info, convert, prep; one-line errors without tracebacks; exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from geomask.cli import format_table, main
from geomask.io.aig import AIG
from geomask.io.aiger import read_aiger, write_aiger

# c = a & b ; d = !(a & !c)  (2 ANDs on the longest path)
SMALL = AIG(num_inputs=2, ands=[[2, 4], [2, 7]], outputs=[6, 9], input_names=["a", "b"], output_names=["c", "d"])


@pytest.fixture
def small(tmp_path):
    path = tmp_path / "small.aag"
    write_aiger(SMALL, path)
    return path


def test_info_text_and_json(small, capsys):
    assert main(["info", str(small)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(str(small)) and "ands=2" in out and "levels=2" in out and "inputs=2" in out
    assert main(["info", "--json", str(small)]) == 0
    row = json.loads(capsys.readouterr().out)
    assert row == {
        "file": str(small),
        "format": "aiger",
        "inputs": 2,
        "outputs": 2,
        "latches": 0,
        "ands": 2,
        "levels": 2,
    }


def test_info_bad_file_one_line_and_rest_continues(small, tmp_path, capsys):
    bad = tmp_path / "bad.aig"
    bad.write_bytes(b"aig 5 2 0 1 3\n10\n\x02")
    assert main(["info", str(bad), str(small)]) == 1
    cap = capsys.readouterr()
    assert cap.err.strip().count("\n") == 0
    assert cap.err.startswith(f"error: {bad}") and "truncated" in cap.err
    assert "ands=2" in cap.out


def test_console_script_has_no_traceback(tmp_path):
    bad = tmp_path / "empty.aag"
    bad.write_bytes(b"")
    r = subprocess.run([sys.executable, "-m", "geomask.cli", "info", str(bad)], capture_output=True, text=True)
    assert r.returncode == 1
    assert r.stderr.strip() == f"error: {bad}: empty file"
    r = subprocess.run(
        [sys.executable, "-m", "geomask.cli", "--debug", "info", str(bad)], capture_output=True, text=True
    )
    assert "Traceback" in r.stderr


def test_convert_aag_to_aig_and_back(small, tmp_path, capsys):
    out = tmp_path / "x.aig"
    assert main(["convert", str(small), str(out)]) == 0
    assert out.read_bytes().startswith(b"aig 4 2 0 2 2\n")
    assert read_aiger(out).output_names == ["c", "d"]
    assert main(["convert", str(out), str(tmp_path / "y.aag")]) == 0
    assert read_aiger(tmp_path / "y.aag").same_structure(read_aiger(out))
    assert main(["convert", str(small), str(tmp_path / "z.txt")]) == 2  # a usage error
    assert "must end in .aig" in capsys.readouterr().err


def test_convert_cuts_latches(tmp_path):
    seq = AIG(num_inputs=1, ands=[[2, 4]], outputs=[6], latches=[[6, 0]])
    write_aiger(seq, tmp_path / "s.aag")
    assert main(["convert", "--latches", "cut", str(tmp_path / "s.aag"), str(tmp_path / "c.aag")]) == 0
    cut = read_aiger(tmp_path / "c.aag")
    assert (cut.num_inputs, cut.num_latches, cut.num_outputs) == (2, 0, 2)


def test_prep_circuits_exit_code_and_table(small, tmp_path, capsys):
    bad = tmp_path / "bad.bench"
    bad.write_text("INPUT(a)\nOUTPUT(b)\nb = FOO(a)\n")
    code = main(["prep", "circuits", str(small), str(bad), "--out", str(tmp_path / "ds"), "--quiet"])
    cap = capsys.readouterr()
    assert code == 1
    assert "small" in cap.out and "1 failed" in cap.out
    assert cap.err.startswith("error: ") and "bad.bench" in cap.err and cap.err.strip().count("\n") == 0
    assert (tmp_path / "ds" / "manifest.json").exists()


def test_help_explains(capsys):
    with pytest.raises(SystemExit):
        main(["prep", "circuits", "--help"])
    out = capsys.readouterr().out
    assert "--recipes" in out and "Resumable" in out


def test_format_table_aligns_numbers():
    text = format_table([{"a": "x", "n": 5}, {"a": "yy", "n": 123}])
    lines = text.splitlines()
    assert lines[0].split() == ["a", "n"]
    assert lines[2].endswith("  5") and lines[3].endswith("123")
    assert np.all([len(line) == len(lines[3]) for line in lines[1:]])


def test_prep_pairs_with_hashing_encoder(tmp_path, capsys):
    src = tmp_path / "maj.v"
    src.write_text("module maj(input a, b, c, output y);\n  assign y = (a & b) | (a & c) | (b & c);\nendmodule\n")
    code = main(
        [
            "prep",
            "pairs",
            str(src),
            "--out",
            str(tmp_path / "pairs"),
            "--recipes",
            "1",
            "--text-encoder",
            "hashing:32",
            "--quiet",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    assert "maj" in out and (tmp_path / "pairs" / "manifest.json").exists()
    manifest = json.loads((tmp_path / "pairs" / "manifest.json").read_text())
    assert manifest["num_items"] == 2  # the original and one ABC variant


def test_prep_circuits_missing_source_fails_alone(small, tmp_path, capsys):
    missing = tmp_path / "nowhere.aig"
    out = tmp_path / "ds"
    assert main(["prep", "circuits", str(missing), str(small), "--out", str(out), "--recipes", "0", "--quiet"]) == 1
    cap = capsys.readouterr()
    errors = [line for line in cap.err.splitlines() if line.startswith("error:")]
    assert errors == [f"error: {missing}: no such file or folder"]
    assert "small" in cap.out and "1 designs in" in cap.out and "1 failed" in cap.out
    assert (out / "aig" / "small.aig").is_file()


def test_info_on_a_collection_folder_gives_one_row_per_design(small, tmp_path, capsys):
    folder = tmp_path / "many"
    folder.mkdir()
    for name in ("a", "b"):
        write_aiger(SMALL, folder / f"{name}.aag")
    (folder / "c.bench").write_text("INPUT(x)\nINPUT(y)\nOUTPUT(z)\nz = AND(x, y)\n")
    assert main(["info", "--json", str(folder), str(small)]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [Path(r["file"]).name for r in rows] == ["a.aag", "b.aag", "c.bench", "small.aag"]
    assert [r["ands"] for r in rows] == [2, 2, 1, 2]


def test_info_names_undriven_outputs(tmp_path, capsys):
    src = tmp_path / "half.v"
    src.write_text("module half(input a, b, output y, output z);\n  assign y = a & b;\nendmodule\n")
    assert main(["info", "--json", str(src)]) == 0
    cap = capsys.readouterr()
    assert json.loads(cap.out)["undriven"] == 1
    assert cap.err.startswith(f"warning: {src}:") and "z" in cap.err


@pytest.mark.parametrize(("what", "must"), [("maskers", "block"), ("losses", "sce"), ("targets", "ema_teacher")])
def test_list_prints_each_registered_component_with_a_description(what, must, capsys):
    assert main(["list", what]) == 0
    lines = capsys.readouterr().out.splitlines()[2:]
    names = {line.split()[0] for line in lines}
    assert must in names and all(len(line.split()) > 2 for line in lines)  # a name, then words about it
