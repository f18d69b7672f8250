"""One rule for turning files and folders into designs (geomask.io.circuit.expand_sources), and read_aig on
each kind of folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from geomask.errors import FormatError, UsageError
from geomask.io.circuit import circuit_format, expand_sources, folder_kind, read_aig, single_source
from geomask.io.verilog_scan import module_graph

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "circuits"
AND2 = "aag 3 2 0 1 1\n2\n4\n6\n6 2 4\n"
LEAF = "module leaf(input a, input b, output y); assign y = a ^ b; endmodule\n"
TOP = (
    "module top(input a, input b, input c, output y, output z);\n"
    "  leaf u(.a(a), .b(b), .y(y));\n  assign z = c;\nendmodule\n"
)
C17 = "module c17(input a, input b, output y); assign y = ~(a & b); endmodule\n"
C432 = "module c432(input a, input b, output y); assign y = a | b; endmodule\n"


def put(folder: Path, name: str, text: str) -> Path:
    p = folder / name
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)
    return p


def keys(sources) -> dict[str, str]:
    return {s.key: s.path.name for s in expand_sources(sources)}


def test_a_file_is_one_design(tmp_path: Path) -> None:
    f = put(tmp_path, "and2.aag", AND2)
    (src,) = expand_sources([f])
    assert (src.key, src.path, src.top, src.format) == ("and2", f, None, "aiger")
    with pytest.raises(FormatError, match=r"notes\.txt: unknown circuit format '\.txt'"):
        expand_sources([put(tmp_path, "notes.txt", "")])
    with pytest.raises(FormatError, match="absent.aig: no such file or folder"):
        expand_sources([tmp_path / "absent.aig"])


def test_a_verilog_folder_with_one_hierarchy_is_one_design(tmp_path: Path) -> None:
    d = tmp_path / "ip"
    put(d, "leaf.v", LEAF)
    put(d, "top.v", TOP)
    put(d, "inc/defs.vh", "`define W 1\n")  # a subfolder of headers belongs to the design
    put(d, "README.md", "docs")
    assert folder_kind(d) == "verilog" and circuit_format(d) == "verilog"
    (src,) = expand_sources([d])
    assert (src.key, src.path) == ("ip", d)
    aig = read_aig(d)
    assert aig.name == "top" and aig.input_names == ["a", "b", "c"] and aig.warnings == []


def test_unrelated_top_modules_are_an_error_naming_them(tmp_path: Path) -> None:
    d = tmp_path / "iscas"
    put(d, "c17.v", C17)
    put(d, "c432.v", C432)
    (src,) = expand_sources([d])  # still one (Verilog) design: the error comes when it is read
    with pytest.raises(FormatError) as info:
        read_aig(src.path)
    msg = str(info.value)
    assert msg == f"{d}: 2 top modules (c17, c432): name one as {d}@TOP or pass the files separately"
    (named,) = expand_sources([f"{d}@c432"])
    assert named.top == "c432" and read_aig(named.path, top=named.top).name == "c432"
    assert keys([d / "c17.v", d / "c432.v"]) == {"c17": "c17.v", "c432": "c432.v"}


def test_an_unused_standalone_module_is_left_out_with_a_warning(tmp_path: Path) -> None:
    d = tmp_path / "ip"
    put(d, "leaf.v", LEAF)
    put(d, "top.v", TOP)
    put(d, "helper.v", C17)
    aig = read_aig(d, latches="cut")
    assert aig.name == "top"
    assert len(aig.warnings) == 1 and "unused modules left out: c17" in aig.warnings[0]


def test_verilog_mixed_with_netlists_is_one_design_per_file(tmp_path: Path) -> None:
    d = tmp_path / "epfl"
    put(d, "ctrl.aag", AND2)
    put(d, "ctrl.v", C17)
    put(d, "dec.v", C432)
    assert folder_kind(d) == "collection"
    assert keys([d]) == {"ctrl_aag": "ctrl.aag", "ctrl_v": "ctrl.v", "dec": "dec.v"}
    with pytest.raises(FormatError) as info:
        read_aig(d)
    assert str(info.value).startswith(f"{d}: folder holds 3 designs, not one")
    with pytest.raises(FormatError, match="holds 3 designs"):
        single_source(d)
    assert single_source(d / "dec.v").key == "dec"


def test_collections_expand_recursively(tmp_path: Path) -> None:
    root = tmp_path / "coll"
    put(root, "ip/leaf.v", LEAF)
    put(root, "ip/top.v", TOP)
    put(root, "x.aag", AND2)
    put(root, "sub/y.bench", "INPUT(a)\nOUTPUT(b)\nb = NOT(a)\n")
    put(root, "sub/deeper/x.aag", AND2)
    put(root, "notes.txt", "ignored")
    put(root, ".hidden/z.aag", AND2)
    (root / "empty").mkdir()
    # two x.aag: the suffix, then a counter, keeps keys apart
    assert keys([root]) == {"ip": "ip", "x_aag": "x.aag", "y": "y.bench", "x_aag_2": "x.aag"}
    assert [s.path for s in expand_sources([root])][1:] == [
        root / "sub" / "deeper" / "x.aag",
        root / "sub" / "y.bench",
        root / "x.aag",
    ]


def test_top_syntax_and_its_errors(tmp_path: Path) -> None:
    d = tmp_path / "ip"
    put(d, "leaf.v", LEAF)
    put(d, "top.v", TOP)
    (src,) = expand_sources([f"{d}@leaf"])
    assert (src.key, src.top) == ("ip", "leaf")
    f = put(tmp_path, "a.aag", AND2)
    with pytest.raises(UsageError, match=r"a\.aag@top: @TOP names a Verilog top module; .* is aiger"):
        expand_sources([f"{f}@top"])
    put(tmp_path, "b.aag", AND2)
    with pytest.raises(UsageError, match="is a collection"):
        expand_sources([f"{tmp_path}@top"])
    with pytest.raises(UsageError, match="'x;y' is not a module name"):
        expand_sources([f"{d}@x;y"])


def test_empty_folders_and_duplicates(tmp_path: Path) -> None:
    (tmp_path / "none").mkdir()
    put(tmp_path / "none", "notes.txt", "")
    with pytest.raises(FormatError, match="none: folder holds no circuit files"):
        expand_sources([tmp_path / "none"])
    with pytest.raises(FormatError, match="holds no circuit files"):
        read_aig(tmp_path / "none")
    f = put(tmp_path / "d", "and2.aag", AND2)
    assert keys([f, tmp_path / "d", f]) == {"and2": "and2.aag"}  # the same file given three ways: once


def test_latch_modes_are_usage_errors(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="latches must be one of keep, cut"):
        read_aig(put(tmp_path, "a.aag", AND2), latches="scan")
    aig = read_aig(tmp_path / "a.aag")
    assert (aig.undriven, aig.warnings) == ([], [])


@pytest.mark.shared
def test_real_folders(tmp_path: Path) -> None:
    if not SHARED.is_dir():
        pytest.skip(f"real data not present at {SHARED}")
    epfl = {s.key for s in expand_sources([SHARED / "epfl"])}
    assert {"ctrl_aig", "ctrl_v", "div", "dec_aig", "dec_v"} <= epfl  # .aig and .v beside: one design each
    iscas = SHARED / "iscas85"
    (src,) = expand_sources([iscas])
    with pytest.raises(FormatError, match=r"iscas85: 11 top modules \(c1355, c17, c1908, .*and 3 more\): name one"):
        read_aig(src.path)
    assert len(expand_sources(sorted(iscas.glob("*.v")))) == 11
    aes = SHARED / "opencores" / "aes_core"
    with pytest.raises(FormatError, match=r"2 top modules \(aes_cipher_top, aes_inv_cipher_top\)"):
        read_aig(aes)


def test_module_graph_finds_instances_not_lookalikes() -> None:
    text = """
module automatic top #(parameter W = 2) (input a, output y);
  // sub fake (a, y);            a comment
  leaf #(.W(W), .D((W + 1) * 2)) u0 (.a(a), .y(y));
  leaf u1 [1:0] (a, y), u2 (a, y);
  and g (y, a, a);               // a gate primitive, not a module of the design
  always @(posedge a) if (a) y <= a; else if (y) y <= 0;
  initial $display("sub u3 (a)");
  function automatic logic [1:0] f(input x); f = x; endfunction
endmodule
module leaf(input a, output y); assign y = a; endmodule
module sub(input a, output y); assign y = a; endmodule
"""
    assert module_graph([text]) == {"top": {"leaf"}, "leaf": set(), "sub": set()}
    # across files, and a module instantiating itself is still a top candidate
    assert module_graph(["module r(input a); r u (a); endmodule\n", "module q(); r x (); endmodule\n"]) == {
        "r": set(),
        "q": {"r"},
    }
