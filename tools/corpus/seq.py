"""Corpus families, part 4: sequential designs (counters, shift registers, LFSRs, FSMs, datapaths).

Builders are ``build(name, **params) -> str`` (see :mod:`tools.corpus.arith` for the
conventions); :data:`FAMILIES` lists ``(family, sequential, build, grid)``.  All designs have one clock
``clk``; most use a synchronous reset ``rst``, a few an asynchronous one (yosys' ``async2sync`` turns
it into logic sampled at the clock).
"""

from __future__ import annotations

from .common import clog2, grid

__all__ = ["FAMILIES"]


def counter(name: str, w: int) -> str:
    return (
        f"module {name}(input clk, input rst, input en, output reg [{w - 1}:0] q, output tc);\n"
        "  always @(posedge clk)\n    if (rst) q <= 0;\n    else if (en) q <= q + 1'b1;\n"
        "  assign tc = en & (&q);\nendmodule\n"
    )


def counter_updown(name: str, w: int) -> str:
    return (
        f"module {name}(input clk, input rst_n, input en, input up, input load, input [{w - 1}:0] d,\n"
        f"    output reg [{w - 1}:0] q);\n"
        "  always @(posedge clk or negedge rst_n)\n    if (!rst_n) q <= 0;\n    else if (load) q <= d;\n"
        "    else if (en) q <= up ? q + 1'b1 : q - 1'b1;\nendmodule\n"
    )


def counter_mod(name: str, m: int) -> str:
    w = clog2(m)
    return (
        f"module {name}(input clk, input rst, input en, output reg [{w - 1}:0] q, output wrap);\n"
        f"  assign wrap = en && (q == {w}'d{m - 1});\n"
        f"  always @(posedge clk)\n    if (rst || wrap) q <= {w}'d0;\n    else if (en) q <= q + 1'b1;\nendmodule\n"
    )


def shreg(name: str, w: int, kind: str) -> str:
    if kind == "sipo":
        return (
            f"module {name}(input clk, input rst, input en, input din, output reg [{w - 1}:0] q);\n"
            f"  always @(posedge clk)\n    if (rst) q <= 0;\n    else if (en) q <= {{q[{w - 2}:0], din}};\nendmodule\n"
        )
    if kind == "piso":
        return (
            f"module {name}(input clk, input load, input [{w - 1}:0] d, output dout);\n  reg [{w - 1}:0] r;\n"
            f"  always @(posedge clk)\n    if (load) r <= d;\n    else r <= {{r[{w - 2}:0], 1'b0}};\n"
            f"  assign dout = r[{w - 1}];\nendmodule\n"
        )
    return (  # universal: hold, shift left, shift right, load
        f"module {name}(input clk, input rst, input [1:0] mode, input sl, input sr, input [{w - 1}:0] d,\n"
        f"    output reg [{w - 1}:0] q);\n"
        "  always @(posedge clk)\n    if (rst) q <= 0;\n    else case (mode)\n"
        f"      2'd1: q <= {{q[{w - 2}:0], sl}};\n      2'd2: q <= {{sr, q[{w - 1}:1]}};\n"
        "      2'd3: q <= d;\n      default: q <= q;\n    endcase\nendmodule\n"
    )


_TAPS = {4: (4, 3), 8: (8, 6, 5, 4), 16: (16, 15, 13, 4), 24: (24, 23, 22, 17), 32: (32, 22, 2, 1)}


def lfsr(name: str, w: int, kind: str) -> str:
    if kind == "fib":
        fb = " ^ ".join(f"q[{t - 1}]" for t in _TAPS[w])
        nxt = f"{{q[{w - 2}:0], {fb}}}"
    else:  # Galois: shift right, xor the tap mask when the output bit is 1
        mask = sum(1 << (t - 1) for t in _TAPS[w]) >> 0
        nxt = f"(q >> 1) ^ ({{{w}{{q[0]}}}} & {w}'h{mask:x})"
    return (
        f"module {name}(input clk, input rst, input en, output reg [{w - 1}:0] q, output bit_out);\n"
        f"  always @(posedge clk)\n    if (rst) q <= {w}'d1;\n    else if (en) q <= {nxt};\n"
        "  assign bit_out = q[0];\nendmodule\n"
    )


def _kmp(pattern: str) -> list[list[int]]:
    """Overlapping sequence-detector automaton: next[state][bit] over states 0..len(pattern)."""
    n = len(pattern)
    table = []
    for s in range(n + 1):
        row = []
        for b in "01":
            seen = (pattern[:s] if s < n else pattern) + b
            k = min(n, len(seen))
            while k > 0 and seen[len(seen) - k :] != pattern[:k]:
                k -= 1
            row.append(k)
        table.append(row)
    return table


def _codes(n: int, enc: str) -> tuple[int, list[str]]:
    """State register width and the Verilog constant of each state for an encoding."""
    if enc == "onehot":
        return n, [f"{n}'b" + format(1 << i, f"0{n}b") for i in range(n)]
    w = clog2(n)
    vals = [i ^ (i >> 1) for i in range(n)] if enc == "gray" else list(range(n))
    return w, [f"{w}'d{v}" for v in vals]


def fsm_seqdet(name: str, pat: str, kind: str, enc: str) -> str:
    table = _kmp(pat)
    n = len(pat) + 1 if kind == "moore" else len(pat)
    w, codes = _codes(n, enc)
    lines = [f"module {name}(input clk, input rst, input din, output reg hit);"]
    lines += [f"  localparam S{i} = {c};" for i, c in enumerate(codes)]
    lines += [f"  reg [{w - 1}:0] state, nxt;", "  always @(posedge clk)", "    if (rst) state <= S0;"]
    lines += ["    else state <= nxt;", "  always @(*) begin", "    nxt = S0;", "    hit = 1'b0;", "    case (state)"]
    for s in range(n):
        t0, t1 = table[s]
        if kind == "moore":
            lines.append(f"      S{s}: begin nxt = din ? S{t1} : S{t0}; hit = 1'b{int(s == len(pat))}; end")
        else:
            h0, h1 = (int(t == len(pat)) for t in (t0, t1))
            n0, n1 = _fold(pat, t0), _fold(pat, t1)
            lines.append(f"      S{s}: begin nxt = din ? S{n1} : S{n0}; hit = din ? 1'b{h1} : 1'b{h0}; end")
    lines += ["      default: nxt = S0;", "    endcase", "  end", "endmodule", ""]
    return "\n".join(lines)


def _fold(pat: str, s: int) -> int:
    """Mealy machines have no 'matched' state: a full match continues from the longest proper border."""
    if s < len(pat):
        return s
    k = len(pat) - 1
    while k > 0 and pat[len(pat) - k :] != pat[:k]:
        k -= 1
    return k


def fsm_traffic(name: str, enc: str, tw: int) -> str:
    """Two-road traffic light with a pedestrian request; each phase lasts until a ``tw``-bit timer expires."""
    phases = ["NS_GREEN", "NS_YELLOW", "ALL_RED1", "EW_GREEN", "EW_YELLOW", "ALL_RED2", "WALK"]
    w, codes = _codes(len(phases), enc)
    lights = {"NS_GREEN": "6'b001100", "NS_YELLOW": "6'b010100", "EW_GREEN": "6'b100001", "EW_YELLOW": "6'b100010"}
    full, short = (1 << tw) - 1, (1 << (tw - 1)) - 1
    lines = [f"module {name}(input clk, input rst, input ped, output reg [5:0] light, output walk);"]
    lines += [f"  localparam {p} = {c};" for p, c in zip(phases, codes)]
    lines += [f"  reg [{w - 1}:0] state, nxt;", f"  reg [{tw - 1}:0] timer;", "  reg ped_req;"]
    lines += [
        f"  wire done = (state == NS_GREEN || state == EW_GREEN) ? timer == {tw}'d{full} : timer == {tw}'d{short};"
    ]
    lines += ["  always @(posedge clk) begin", "    if (rst) begin", "      state <= NS_GREEN;", "      timer <= 0;"]
    lines += [
        "      ped_req <= 1'b0;",
        "    end else begin",
        "      state <= nxt;",
        "      timer <= done ? 0 : timer + 1'b1;",
    ]
    lines += ["      if (state == WALK) ped_req <= 1'b0;", "      else if (ped) ped_req <= 1'b1;", "    end", "  end"]
    lines += ["  always @(*) begin", "    nxt = state;", "    light = 6'b100100;  // red both ways", "    case (state)"]
    order = {"NS_GREEN": "NS_YELLOW", "NS_YELLOW": "ALL_RED1", "ALL_RED1": "EW_GREEN", "EW_GREEN": "EW_YELLOW"}
    order |= {"EW_YELLOW": "ALL_RED2", "WALK": "NS_GREEN"}
    for p in phases:
        lit = f" light = {lights[p]};" if p in lights else ""
        nx = order.get(p, "ped_req ? WALK : NS_GREEN")
        lines.append(f"      {p}: begin{lit} if (done) nxt = {nx}; end")
    lines += [
        "      default: nxt = NS_GREEN;",
        "    endcase",
        "  end",
        "  assign walk = (state == WALK);",
        "endmodule",
        "",
    ]
    return "\n".join(lines)


def fsm_vending(name: str, price: int, enc: str) -> str:
    """Vending machine taking nickels, dimes and quarters; states are the credit in 5-cent steps."""
    top = price // 5 + 5  # credit can reach price - 5 + 25 before vending
    w, codes = _codes(top, enc)
    lines = [f"module {name}(input clk, input rst, input [1:0] coin, output reg vend, output reg [4:0] change);"]
    lines += ["  // coin: 0 none, 1 nickel, 2 dime, 3 quarter; change in nickels"]
    lines += [f"  localparam C{i * 5} = {c};" for i, c in enumerate(codes)]
    lines += [f"  reg [{w - 1}:0] state, nxt;", "  always @(posedge clk)", "    if (rst) state <= C0;"]
    lines += ["    else state <= nxt;", "  always @(*) begin", "    nxt = state;", "    vend = 1'b0;"]
    lines += ["    change = 5'd0;", "    case (state)"]
    for c in range(price // 5):
        arms = []
        for code, val in ((1, 1), (2, 2), (3, 5)):
            tot = c + val
            if tot * 5 >= price:
                arms.append(f"2'd{code}: begin nxt = C0; vend = 1'b1; change = 5'd{tot - price // 5}; end")
            else:
                arms.append(f"2'd{code}: nxt = C{tot * 5};")
        lines.append(f"      C{c * 5}: case (coin) " + " ".join(arms) + " default: nxt = state; endcase")
    lines += ["      default: nxt = C0;", "    endcase", "  end", "endmodule", ""]
    return "\n".join(lines)


def accumulator(name: str, w: int, sub: int) -> str:
    upd = "acc <= addsub ? acc - d : acc + d;" if sub else "acc <= acc + d;"
    port = " input addsub," if sub else ""
    return (
        f"module {name}(input clk, input rst, input clr, input en,{port} input [{w - 1}:0] d,\n"
        f"    output reg [{w - 1}:0] acc);\n"
        f"  always @(posedge clk)\n    if (rst || clr) acc <= 0;\n    else if (en) {upd}\nendmodule\n"
    )


def regfile(name: str, words: int, w: int) -> str:
    k = clog2(words)
    return (
        f"module {name}(input clk, input we, input [{k - 1}:0] wa, input [{w - 1}:0] wd,\n"
        f"    input [{k - 1}:0] ra, input [{k - 1}:0] rb, output [{w - 1}:0] qa, output [{w - 1}:0] qb);\n"
        f"  reg [{w - 1}:0] mem [0:{words - 1}];\n"
        "  always @(posedge clk)\n    if (we) mem[wa] <= wd;\n"
        "  assign qa = mem[ra];\n  assign qb = mem[rb];\nendmodule\n"
    )


def fifo(name: str, depth: int, w: int) -> str:
    k = clog2(depth)
    return (
        f"module {name}(input clk, input rst, input push, input pop, input [{w - 1}:0] din,\n"
        f"    output [{w - 1}:0] dout, output empty, output full);\n"
        f"  reg [{w - 1}:0] mem [0:{depth - 1}];\n  reg [{k}:0] wp, rp;\n"
        f"  assign empty = (wp == rp);\n  assign full = (wp[{k - 1}:0] == rp[{k - 1}:0]) && (wp[{k}] != rp[{k}]);\n"
        f"  assign dout = mem[rp[{k - 1}:0]];\n"
        "  always @(posedge clk) begin\n    if (rst) begin\n      wp <= 0;\n      rp <= 0;\n    end else begin\n"
        f"      if (push && !full) begin\n        mem[wp[{k - 1}:0]] <= din;\n        wp <= wp + 1'b1;\n      end\n"
        "      if (pop && !empty) rp <= rp + 1'b1;\n    end\n  end\nendmodule\n"
    )


def pipe_mult(name: str, w: int) -> str:
    return (
        f"module {name}(input clk, input [{w - 1}:0] a, input [{w - 1}:0] b, output reg [{2 * w - 1}:0] p);\n"
        f"  reg [{w - 1}:0] ra, rb;\n"
        "  always @(posedge clk) begin\n    ra <= a;\n    rb <= b;\n    p <= ra * rb;\n  end\nendmodule\n"
    )


def fir(name: str, taps: int, w: int) -> str:
    coefs = [3, -5, 7, 9, -2, 4][:taps]
    acc = w + 5
    terms = " + ".join(f"$signed(x{i}) * {c}" for i, c in enumerate(coefs)).replace("+ $signed(x", "+ $signed(x")
    regs = "\n".join(f"      x{i} <= x{i - 1};" for i in range(1, taps))
    return (
        f"module {name}(input clk, input rst, input signed [{w - 1}:0] din, output reg signed [{acc - 1}:0] y);\n"
        f"  reg signed [{w - 1}:0] " + ", ".join(f"x{i}" for i in range(taps)) + ";\n"
        "  always @(posedge clk)\n    if (rst) begin\n"
        + "\n".join(f"      x{i} <= 0;" for i in range(taps))
        + f"\n      y <= 0;\n    end else begin\n      x0 <= din;\n{regs}\n      y <= {terms};\n    end\nendmodule\n"
    )


def gcd(name: str, w: int) -> str:
    return (
        f"module {name}(input clk, input rst, input start, input [{w - 1}:0] a, input [{w - 1}:0] b,\n"
        f"    output reg [{w - 1}:0] g, output reg done);\n"
        f"  reg [{w - 1}:0] x, y;\n  reg busy;\n"
        "  always @(posedge clk)\n    if (rst) begin\n      busy <= 1'b0;\n      done <= 1'b0;\n      x <= 0;\n"
        "      y <= 0;\n      g <= 0;\n    end else if (start && !busy) begin\n      x <= a;\n      y <= b;\n"
        "      busy <= 1'b1;\n      done <= 1'b0;\n    end else if (busy) begin\n"
        "      if (y == 0) begin\n        g <= x;\n        done <= 1'b1;\n        busy <= 1'b0;\n      end\n"
        "      else if (x >= y) x <= x - y;\n      else begin\n        x <= y;\n        y <= x;\n      end\n"
        "    end\nendmodule\n"
    )


def serial_mult(name: str, w: int) -> str:
    k = clog2(w + 1)
    return (
        f"module {name}(input clk, input rst, input start, input [{w - 1}:0] a, input [{w - 1}:0] b,\n"
        f"    output reg [{2 * w - 1}:0] p, output busy);\n"
        f"  reg [{2 * w - 1}:0] m;\n  reg [{w - 1}:0] q;\n  reg [{k - 1}:0] n;\n"
        "  assign busy = (n != 0);\n"
        "  always @(posedge clk)\n    if (rst) begin\n      p <= 0;\n      m <= 0;\n      q <= 0;\n      n <= 0;\n"
        f"    end else if (start && !busy) begin\n      p <= 0;\n      m <= {{{w}'d0, a}};\n      q <= b;\n"
        f"      n <= {k}'d{w};\n    end else if (busy) begin\n      if (q[0]) p <= p + m;\n      m <= m << 1;\n"
        "      q <= q >> 1;\n      n <= n - 1'b1;\n    end\nendmodule\n"
    )


def uart_tx(name: str, bits: int, div: int) -> str:
    dw = clog2(div)
    return (
        f"module {name}(input clk, input rst, input send, input [{bits - 1}:0] data, output tx, output busy);\n"
        f"  reg [{bits + 1}:0] sh;\n  reg [{dw - 1}:0] baud;\n  reg [3:0] left;\n"
        "  assign busy = (left != 0);\n  assign tx = busy ? sh[0] : 1'b1;\n"
        "  always @(posedge clk)\n    if (rst) begin\n      sh <= 0;\n      baud <= 0;\n      left <= 0;\n"
        f"    end else if (send && !busy) begin\n      sh <= {{1'b1, data, 1'b0}};\n      left <= 4'd{bits + 2};\n"
        f"      baud <= 0;\n    end else if (busy) begin\n      if (baud == {dw}'d{div - 1}) begin\n"
        f"        baud <= 0;\n        sh <= {{1'b1, sh[{bits + 1}:1]}};\n        left <= left - 1'b1;\n"
        "      end else baud <= baud + 1'b1;\n    end\nendmodule\n"
    )


def debounce(name: str, w: int) -> str:
    return (
        f"module {name}(input clk, input rst, input noisy, output reg clean, output rise);\n"
        f"  reg [{w - 1}:0] cnt;\n  reg s0, s1, prev;\n"
        "  always @(posedge clk)\n    if (rst) begin\n      {s0, s1, prev, clean} <= 4'b0;\n      cnt <= 0;\n"
        "    end else begin\n      s0 <= noisy;\n      s1 <= s0;\n      prev <= clean;\n"
        "      if (s1 == clean) cnt <= 0;\n      else if (&cnt) begin\n        clean <= s1;\n        cnt <= 0;\n"
        "      end else cnt <= cnt + 1'b1;\n    end\n  assign rise = clean & ~prev;\nendmodule\n"
    )


def clkdiv(name: str, n: int) -> str:
    w = clog2(n)
    return (
        f"module {name}(input clk, input rst, output reg tick, output reg half);\n  reg [{w - 1}:0] c;\n"
        "  always @(posedge clk)\n    if (rst) begin\n      c <= 0;\n      tick <= 1'b0;\n      half <= 1'b0;\n"
        f"    end else begin\n      tick <= (c == {w}'d{n - 1});\n      c <= (c == {w}'d{n - 1}) ? 0 : c + 1'b1;\n"
        f"      half <= (c < {w}'d{n // 2});\n    end\nendmodule\n"
    )


FAMILIES = [
    ("counter", True, counter, grid(w=(2, 4, 8, 12, 16, 24, 32))),
    ("counter_updown", True, counter_updown, grid(w=(4, 8, 16))),
    ("counter_mod", True, counter_mod, grid(m=(3, 5, 10, 60, 100, 1000))),
    ("shreg", True, shreg, grid(w=(4, 8, 16), kind=("sipo", "piso", "univ"))),
    ("lfsr", True, lfsr, grid(w=(4, 8, 16, 32), kind=("fib", "galois"))),
    (
        "fsm_seqdet",
        True,
        fsm_seqdet,
        [
            dict(pat=p, kind=k, enc=("binary", "onehot", "gray")[i % 3])
            for i, (p, k) in enumerate(
                (p, k) for p in ("101", "1011", "1101", "10010", "011011", "1110101") for k in ("moore", "mealy")
            )
        ],
    ),
    ("fsm_traffic", True, fsm_traffic, grid(enc=("binary", "onehot", "gray"), tw=(3, 5))),
    (
        "fsm_vending",
        True,
        fsm_vending,
        [dict(price=p, enc=e) for p, e in ((15, "binary"), (25, "onehot"), (30, "gray"), (50, "binary"))],
    ),
    ("accumulator", True, accumulator, grid(w=(8, 16, 32), sub=(0, 1))),
    ("regfile", True, regfile, grid(words=(2, 4, 8), w=(4, 8, 16))),
    ("fifo", True, fifo, grid(depth=(4, 8), w=(4, 8))),
    ("pipe_mult", True, pipe_mult, grid(w=(4, 8))),
    ("fir", True, fir, grid(taps=(3, 4, 6), w=(4, 8))),
    ("gcd", True, gcd, grid(w=(4, 8, 16))),
    ("serial_mult", True, serial_mult, grid(w=(4, 8, 16))),
    ("uart_tx", True, uart_tx, [dict(bits=7, div=4), dict(bits=8, div=16), dict(bits=8, div=104)]),
    ("debounce", True, debounce, grid(w=(3, 6, 10))),
    ("clkdiv", True, clkdiv, grid(n=(3, 5, 10, 25))),
]
