"""Verilog chunking: statement and module level, real line numbers, includes/macros, fallback, errors."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import pytest

from geomask.errors import FormatError
from geomask.io.verilog_chunks import ChunkFallbackWarning, split_verilog, split_verilog_text

pytestmark = pytest.mark.skipif(shutil.which("iverilog") is None, reason="iverilog (pyverilog's preprocessor) missing")

TOP = """\
// a small design with every statement kind
module top(clk, a, b, y, q);
  input clk;
  input [3:0] a, b;
  output [3:0] y;
  output reg q;

  wire [3:0] t;
  wire u;

  assign t = a & b;   // first assign
  assign y = t ^ a;

  function f;
    input x;
    f = ~x;
  endfunction

  always @(posedge clk) begin
    q <= f(u);
  end

  leaf l0(.i(t[0]), .o(u));
endmodule

module leaf(input i, output o);
  assign o = ~i;
endmodule
"""


def _line(text: str, needle: str) -> int:
    """1-based line of the first line containing ``needle``."""
    return next(k for k, line in enumerate(text.split("\n"), 1) if needle in line)


def _write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def test_statement_level_kinds_lines_and_text(tmp_path):
    path = _write(tmp_path, "top.v", TOP)
    chunks = split_verilog(path, "statement")
    got = [(c.module, c.kind) for c in chunks]
    assert got == [
        ("top", "header"),
        ("top", "ports"),
        ("top", "nets"),
        ("top", "assign"),
        ("top", "assign"),
        ("top", "function"),
        ("top", "always"),
        ("top", "instance"),
        ("leaf", "header"),
        ("leaf", "assign"),
    ]
    lines = TOP.split("\n")
    for c in chunks:  # the chunk is exactly the original lines it names
        assert c.file == "top.v"
        assert c.text == "\n".join(lines[c.line_start - 1 : c.line_end])
    by = {(c.module, c.kind, c.line_start): c for c in chunks}
    ports = by[("top", "ports", _line(TOP, "input clk;"))]
    assert ports.line_end == _line(TOP, "output reg q;")
    assert by[("top", "assign", _line(TOP, "assign t"))].line_end == _line(TOP, "assign t")  # comment kept inline
    always = by[("top", "always", _line(TOP, "always @"))]
    assert always.line_end == _line(TOP, "q <= f(u)") + 1  # its `end`, not the blank line after
    assert "leaf l0" in chunks[7].text and "endmodule" not in chunks[7].text


def test_module_level_one_chunk_per_module(tmp_path):
    path = _write(tmp_path, "top.v", TOP)
    chunks = split_verilog(path, "module")
    assert [(c.module, c.kind) for c in chunks] == [("top", "module"), ("leaf", "module")]
    assert (chunks[0].line_start, chunks[0].line_end) == (2, _line(TOP, "endmodule"))
    assert chunks[1].line_start == _line(TOP, "module leaf")
    assert chunks[1].text.startswith("module leaf") and chunks[1].text.endswith("endmodule")


def test_includes_and_macros_keep_original_text_and_lines(tmp_path):
    design = tmp_path / "d"
    design.mkdir()
    (design / "defs.vh").write_text("`define W 4\n`define PICK(a, b) ((a) | \\\n   (b))\n")
    body = (
        '`include "defs.vh"\n'
        "module m(input [`W-1:0] x, output [`W-1:0] y, output [`W-1:0] z);\n"
        "  assign y = `PICK(x,\n"
        "      4'd3);\n"
        "`ifdef NOT_DEFINED\n"
        "  assign z = 0;\n"
        "`else\n"
        "  assign z = ~x;\n"
        "`endif\n"
        "endmodule\n"
    )
    (design / "m.v").write_text(body)
    chunks = split_verilog(design, "statement")
    assert [c.kind for c in chunks] == ["header", "assign", "assign"]
    pick, inv = chunks[1], chunks[2]
    assert pick.text == "  assign y = `PICK(x,\n      4'd3);"  # macro name as written, both lines
    assert (pick.file, pick.line_start, pick.line_end) == ("m.v", 3, 4)
    assert (inv.line_start, inv.line_end) == (8, 8)  # the live branch, after a multi-line expansion


def test_long_chunks_are_cut_at_line_boundaries(tmp_path):
    rows = "\n".join(f"      4'd{i % 10}: y = {i % 7};" for i in range(60))
    head = "module big(input [3:0] s, output reg [3:0] y);\n  always @(*) begin\n    case (s)\n"
    text = f"{head}{rows}\n    endcase\n  end\nendmodule\n"
    path = _write(tmp_path, "big.v", text)
    pieces = [c for c in split_verilog(path, "statement", max_chars=300) if c.kind == "always"]
    assert len(pieces) > 3
    assert all(len(c.text) <= 300 for c in pieces)
    assert [c.line_start for c in pieces[1:]] == [c.line_end + 1 for c in pieces[:-1]]  # contiguous
    assert pieces[0].line_start == 2 and pieces[-1].line_end == text.count("\n") - 1


def test_unparseable_file_falls_back_to_regex_with_a_warning(tmp_path):
    text = (
        "module sv(input logic [1:0] a, output logic [1:0] y);\n"
        "  typedef enum logic [1:0] {IDLE, RUN} state_t;\n"
        "  state_t s;\n"
        "  assign y = a;\n"
        "  always_comb begin\n"
        "    s = IDLE;\n"
        "  end\n"
        "endmodule\n"
    )
    path = _write(tmp_path, "sv.sv", text)
    with pytest.warns(ChunkFallbackWarning, match="sv.sv"):
        chunks = split_verilog(path, "statement")
    kinds = {c.kind: c for c in chunks}
    assert kinds["header"].line_start == 1
    assert (kinds["assign"].line_start, kinds["assign"].line_end) == (4, 4)
    assert (kinds["always"].line_start, kinds["always"].line_end) == (5, 7)
    assert all(c.module == "sv" for c in chunks)
    with pytest.warns(ChunkFallbackWarning):
        mods = split_verilog(path, "module")
    assert [(c.line_start, c.line_end) for c in mods] == [(1, 8)]


def test_errors_name_the_file(tmp_path):
    empty = _write(tmp_path, "empty.v", "  \n\n")
    with pytest.raises(FormatError, match="empty.v"):
        split_verilog(empty)
    comments = _write(tmp_path, "c.v", "// nothing here\n/* at all */\n")
    with pytest.raises(FormatError, match="c.v"):
        split_verilog(comments)
    with pytest.raises(FormatError, match="missing.v"):
        split_verilog(tmp_path / "missing.v")
    with pytest.raises(ValueError, match="level"):
        split_verilog(_write(tmp_path, "t.v", TOP), level="token")


def test_text_input_and_nothing_written_to_cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a parseable design must not warn
        chunks = split_verilog_text(TOP, "module")
    assert [c.module for c in chunks] == ["top", "leaf"]
    assert list(tmp_path.iterdir()) == []  # no parsetab.py / parser.out / preprocess output left behind


def test_folder_design_with_included_module_timescale_and_empty_file(tmp_path):
    design = tmp_path / "d"
    design.mkdir()
    (design / "timescale.v").write_text("`timescale 1ns / 10ps\n")
    (design / "empty.v").write_text("\n")
    (design / "sub.vh").write_text("// sub\nmodule sub(input a, output y);\n  assign y = ~a;\nendmodule\n")
    top = '`include "sub.vh"\nmodule top(input a, output y);\n  sub s(.a(a), .y(y));\nendmodule\n'
    (design / "top.v").write_text(top)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        chunks = split_verilog(design, "statement")
    got = [(c.file, c.module, c.kind, c.line_start, c.line_end) for c in chunks]
    assert got == [
        ("sub.vh", "sub", "header", 2, 2),
        ("sub.vh", "sub", "assign", 3, 3),
        ("top.v", "top", "header", 2, 2),
        ("top.v", "top", "instance", 3, 3),
    ]
