"""Corpus families, part 2: bit counting, parity, Gray, CRC/LFSR, voters, min/max, saturation and BCD.

Builders are ``build(name, **params) -> str`` (see :mod:`tools.corpus.arith` for the
conventions); :data:`FAMILIES` lists ``(family, sequential, build, grid)``.
"""

from __future__ import annotations

from .common import grid

__all__ = ["FAMILIES"]


def popcount(name: str, w: int) -> str:
    k = (w).bit_length()
    return (
        f"module {name}(input [{w - 1}:0] x, output [{k - 1}:0] n);\n"
        f"  function [{k - 1}:0] count;\n    input [{w - 1}:0] v;\n    integer i;\n    begin\n"
        f"      count = 0;\n      for (i = 0; i < {w}; i = i + 1) count = count + v[i];\n    end\n"
        "  endfunction\n  assign n = count(x);\nendmodule\n"
    )


def popcount_tree(name: str, w: int) -> str:
    """Balanced tree of explicit adders, one wire per node."""
    lines = [f"module {name}(input [{w - 1}:0] x, output [{w.bit_length() - 1}:0] n);"]
    nodes = [(f"x[{i}]", 1) for i in range(w)]
    lv = 0
    while len(nodes) > 1:
        nxt = []
        for k in range(0, len(nodes) - 1, 2):
            (a, wa), (b, wb) = nodes[k], nodes[k + 1]
            wo = max(wa, wb) + 1
            lines.append(f"  wire [{wo - 1}:0] s{lv}_{k // 2} = {a} + {b};")
            nxt.append((f"s{lv}_{k // 2}", wo))
        if len(nodes) % 2:
            nxt.append(nodes[-1])
        nodes, lv = nxt, lv + 1
    lines += [f"  assign n = {nodes[0][0]};", "endmodule", ""]
    return "\n".join(lines)


def parity(name: str, w: int, style: str) -> str:
    if style == "reduce":
        body = "  assign even = ^x;\n"
    else:
        lines = []
        nodes = [f"x[{i}]" for i in range(w)]
        lv = 0
        while len(nodes) > 1:
            nxt = [f"t{lv}_{k // 2}" for k in range(0, len(nodes) - 1, 2)]
            for k in range(0, len(nodes) - 1, 2):
                lines.append(f"  wire t{lv}_{k // 2} = {nodes[k]} ^ {nodes[k + 1]};")
            nodes = nxt + ([nodes[-1]] if len(nodes) % 2 else [])
            lv += 1
        body = "\n".join(lines) + f"\n  assign even = {nodes[0]};\n"
    return f"module {name}(input [{w - 1}:0] x, output even, output odd);\n{body}  assign odd = ~even;\nendmodule\n"


def bin2gray(name: str, w: int) -> str:
    return f"module {name}(input [{w - 1}:0] b, output [{w - 1}:0] g);\n  assign g = b ^ (b >> 1);\nendmodule\n"


def gray2bin(name: str, w: int) -> str:
    return (
        f"module {name}(input [{w - 1}:0] g, output reg [{w - 1}:0] b);\n  integer i;\n"
        f"  always @(*) begin\n    b[{w - 1}] = g[{w - 1}];\n"
        f"    for (i = {w - 2}; i >= 0; i = i - 1) b[i] = b[i + 1] ^ g[i];\n  end\nendmodule\n"
    )


_CRC = {5: 0x05, 8: 0x07, 16: 0x1021, 32: 0x04C11DB7}


def crc(name: str, n: int, d: int) -> str:
    """CRC-n next state after ``d`` data bits (MSB first), as a function with a loop."""
    return (
        f"module {name}(input [{n - 1}:0] c, input [{d - 1}:0] data, output [{n - 1}:0] nxt);\n"
        f"  function [{n - 1}:0] step;\n    input [{n - 1}:0] s;\n    input [{d - 1}:0] v;\n"
        "    integer i;\n    reg fb;\n    begin\n      step = s;\n"
        f"      for (i = {d - 1}; i >= 0; i = i - 1) begin\n        fb = step[{n - 1}] ^ v[i];\n"
        f"        step = {{step[{n - 2}:0], 1'b0}} ^ ({{{n}{{fb}}}} & {n}'h{_CRC[n]:x});\n"
        "      end\n    end\n  endfunction\n  assign nxt = step(c, data);\nendmodule\n"
    )


_TAPS = {8: (8, 6, 5, 4), 16: (16, 15, 13, 4), 24: (24, 23, 22, 17), 32: (32, 22, 2, 1)}


def lfsr_next(name: str, w: int, k: int) -> str:
    """State of a Fibonacci LFSR ``k`` steps ahead, as an unrolled ``always @(*)`` loop."""
    fb = " ^ ".join(f"s[{t - 1}]" for t in _TAPS[w])
    return (
        f"module {name}(input [{w - 1}:0] state, output reg [{w - 1}:0] nxt);\n"
        f"  reg [{w - 1}:0] s;\n  integer i;\n"
        "  always @(*) begin\n    s = state;\n"
        f"    for (i = 0; i < {k}; i = i + 1) s = {{s[{w - 2}:0], {fb}}};\n"
        "    nxt = s;\n  end\nendmodule\n"
    )


def majority(name: str, n: int) -> str:
    k = n.bit_length()
    return (
        f"module {name}(input [{n - 1}:0] x, output maj);\n  integer i;\n  reg [{k - 1}:0] cnt;\n"
        f"  always @(*) begin\n    cnt = 0;\n    for (i = 0; i < {n}; i = i + 1) cnt = cnt + x[i];\n  end\n"
        f"  assign maj = (cnt >= {(n + 1) // 2});\nendmodule\n"
    )


def voter(name: str, w: int) -> str:
    return (
        f"module {name}_maj3(input a, input b, input c, output y);\n"
        "  assign y = (a & b) | (a & c) | (b & c);\nendmodule\n\n"
        f"module {name}(input [{w - 1}:0] a, input [{w - 1}:0] b, input [{w - 1}:0] c, output [{w - 1}:0] y,\n"
        "    output err);\n  genvar i;\n  generate\n"
        f"    for (i = 0; i < {w}; i = i + 1) begin : g_vote\n"
        f"      {name}_maj3 v (.a(a[i]), .b(b[i]), .c(c[i]), .y(y[i]));\n    end\n  endgenerate\n"
        "  assign err = (a != b) | (b != c);\nendmodule\n"
    )


def absval(name: str, w: int) -> str:
    return (
        f"module {name}(input [{w - 1}:0] a, output [{w - 1}:0] y, output ovf);\n"
        f"  assign y = a[{w - 1}] ? -a : a;\n  assign ovf = a[{w - 1}] & y[{w - 1}];\nendmodule\n"
    )


def absdiff(name: str, w: int) -> str:
    return (
        f"module {name}(input [{w - 1}:0] a, input [{w - 1}:0] b, output reg [{w - 1}:0] d);\n"
        "  always @(*) if (a > b) d = a - b; else d = b - a;\nendmodule\n"
    )


def minmax(name: str, w: int, signed: int) -> str:
    s = "signed " if signed else ""
    return (
        f"module {name}(input {s}[{w - 1}:0] a, input {s}[{w - 1}:0] b, output {s}[{w - 1}:0] mn,\n"
        f"    output {s}[{w - 1}:0] mx);\n  wire lt = a < b;\n"
        "  assign mn = lt ? a : b;\n  assign mx = lt ? b : a;\nendmodule\n"
    )


def _sorting_network(n: int) -> list[tuple[int, int]]:
    """Batcher's odd-even merge sort comparators for ``n`` a power of two."""
    pairs = []
    p = 1
    while p < n:
        k = p
        while k >= 1:
            for j in range(k % p, n - k, 2 * k):
                for i in range(min(k, n - j - k)):
                    if (i + j) // (2 * p) == (i + j + k) // (2 * p):
                        pairs.append((i + j, i + j + k))
            k //= 2
        p *= 2
    return pairs


def sortnet(name: str, n: int, w: int) -> str:
    lines = [f"module {name}_cas(input [{w - 1}:0] a, input [{w - 1}:0] b, output [{w - 1}:0] lo,"]
    lines += [f"    output [{w - 1}:0] hi);", "  assign lo = (a < b) ? a : b;", "  assign hi = (a < b) ? b : a;"]
    lines += ["endmodule", "", f"module {name}(input [{n * w - 1}:0] x, output [{n * w - 1}:0] y);"]
    cur = [f"x[{i * w} +: {w}]" for i in range(n)]
    for k, (i, j) in enumerate(_sorting_network(n)):
        lines.append(f"  wire [{w - 1}:0] lo{k}, hi{k};")
        lines.append(f"  {name}_cas c{k} (.a({cur[i]}), .b({cur[j]}), .lo(lo{k}), .hi(hi{k}));")
        cur[i], cur[j] = f"lo{k}", f"hi{k}"
    lines += [f"  assign y = {{{', '.join(reversed(cur))}}};", "endmodule", ""]
    return "\n".join(lines)


def sat_arith(name: str, w: int, op: str, signed: int) -> str:
    o = "+" if op == "add" else "-"
    if signed:
        body = (
            f"  wire [{w}:0] t = {{a[{w - 1}], a}} {o} {{b[{w - 1}], b}};\n"
            f"  assign sat = t[{w}] != t[{w - 1}];\n"
            f"  assign y = ~sat ? t[{w - 1}:0] : t[{w}] ? {{1'b1, {{{w - 1}{{1'b0}}}}}}"
            f" : {{1'b0, {{{w - 1}{{1'b1}}}}}};\n"
        )
    else:
        lim = f"{{{w}{{1'b1}}}}" if op == "add" else f"{w}'d0"
        body = f"  wire [{w}:0] t = {{1'b0, a}} {o} {{1'b0, b}};\n  assign sat = t[{w}];\n"
        body += f"  assign y = sat ? {lim} : t[{w - 1}:0];\n"
    return (
        f"module {name}(input [{w - 1}:0] a, input [{w - 1}:0] b, output [{w - 1}:0] y, output sat);\n{body}endmodule\n"
    )


def bcd_add(name: str, digits: int) -> str:
    return (
        f"module {name}_digit(input [3:0] a, input [3:0] b, input ci, output [3:0] s, output co);\n"
        "  wire [4:0] t = a + b + ci;\n  assign co = (t > 5'd9);\n"
        "  assign s = co ? t[3:0] + 4'd6 : t[3:0];\nendmodule\n\n"
        f"module {name}(input [{4 * digits - 1}:0] a, input [{4 * digits - 1}:0] b, input cin,\n"
        f"    output [{4 * digits - 1}:0] s, output cout);\n  wire [{digits}:0] c;\n  assign c[0] = cin;\n"
        f"  genvar i;\n  generate\n    for (i = 0; i < {digits}; i = i + 1) begin : g_digit\n"
        f"      {name}_digit d (.a(a[4*i +: 4]), .b(b[4*i +: 4]), .ci(c[i]), .s(s[4*i +: 4]), .co(c[i + 1]));\n"
        f"    end\n  endgenerate\n  assign cout = c[{digits}];\nendmodule\n"
    )


def bin2bcd(name: str, w: int) -> str:
    digits = len(str((1 << w) - 1))
    n = 4 * digits
    return (
        f"module {name}(input [{w - 1}:0] b, output reg [{n - 1}:0] bcd);\n  integer i, j;\n"
        "  always @(*) begin  // double dabble\n"
        f"    bcd = {n}'d0;\n    for (i = {w - 1}; i >= 0; i = i - 1) begin\n"
        f"      for (j = 0; j < {digits}; j = j + 1)\n"
        "        if (bcd[4*j +: 4] >= 4'd5) bcd[4*j +: 4] = bcd[4*j +: 4] + 4'd3;\n"
        f"      bcd = {{bcd[{n - 2}:0], b[i]}};\n    end\n  end\nendmodule\n"
    )


def bcd2bin(name: str, digits: int) -> str:
    w = (10**digits - 1).bit_length()
    terms = " + ".join(f"d[{4 * i} +: 4] * {w}'d{10**i}" for i in range(digits))
    return f"module {name}(input [{4 * digits - 1}:0] d, output [{w - 1}:0] b);\n  assign b = {terms};\nendmodule\n"


_SEG = [0x3F, 0x06, 0x5B, 0x4F, 0x66, 0x6D, 0x7D, 0x07, 0x7F, 0x6F, 0x77, 0x7C, 0x39, 0x5E, 0x79, 0x71]


def seg7(name: str, digits: int) -> str:
    cases = "\n".join(f"      4'h{i:x}: seg7_of = 7'h{s:02x};" for i, s in enumerate(_SEG))
    return (
        f"module {name}(input [{4 * digits - 1}:0] x, input blank, output [{7 * digits - 1}:0] seg);\n"
        "  function [6:0] seg7_of;\n    input [3:0] v;\n    case (v)\n"
        f"{cases}\n      default: seg7_of = 7'h00;\n    endcase\n  endfunction\n"
        f"  genvar i;\n  generate\n    for (i = 0; i < {digits}; i = i + 1) begin : g_digit\n"
        "      assign seg[7*i +: 7] = blank ? 7'h00 : seg7_of(x[4*i +: 4]);\n    end\n  endgenerate\nendmodule\n"
    )


def lzc(name: str, w: int) -> str:
    k = w.bit_length()
    return (
        f"module {name}(input [{w - 1}:0] x, output reg [{k - 1}:0] n);\n  integer i;\n  reg done;\n"
        "  always @(*) begin\n    n = 0;\n    done = 1'b0;\n"
        f"    for (i = {w - 1}; i >= 0; i = i - 1)\n"
        "      if (!done) begin\n        if (x[i]) done = 1'b1;\n        else n = n + 1'b1;\n      end\n"
        "  end\nendmodule\n"
    )


FAMILIES = [
    ("popcount", False, popcount, grid(w=(3, 7, 8, 15, 16, 32, 48, 64))),
    ("popcount_tree", False, popcount_tree, grid(w=(5, 8, 16, 31, 64))),
    ("parity", False, parity, grid(w=(8, 33, 64), style=("reduce", "tree"))),
    ("bin2gray", False, bin2gray, grid(w=(4, 8, 16, 32))),
    ("gray2bin", False, gray2bin, grid(w=(4, 8, 16, 32))),
    (
        "crc",
        False,
        crc,
        [
            dict(n=n, d=d)
            for n, d in ((5, 1), (8, 1), (8, 4), (8, 8), (16, 1), (16, 8), (16, 16), (32, 8), (32, 16), (32, 32))
        ],
    ),
    ("lfsr_next", False, lfsr_next, grid(w=(8, 16, 32), k=(1, 8))),
    ("majority", False, majority, grid(n=(3, 5, 7, 9, 15, 21))),
    ("voter", False, voter, grid(w=(4, 8, 16, 32))),
    ("abs", False, absval, grid(w=(4, 8, 16, 32))),
    ("absdiff", False, absdiff, grid(w=(4, 8, 16))),
    ("minmax", False, minmax, grid(w=(8, 16, 32), signed=(0, 1))),
    ("sortnet", False, sortnet, grid(n=(4, 8), w=(4, 8))),
    ("sat", False, sat_arith, grid(w=(8, 16), op=("add", "sub"), signed=(0, 1))),
    ("bcd_add", False, bcd_add, grid(digits=(1, 2, 3, 4))),
    ("bin2bcd", False, bin2bcd, grid(w=(4, 6, 8, 10, 12, 16))),
    ("bcd2bin", False, bcd2bin, grid(digits=(2, 3, 4))),
    ("seg7", False, seg7, grid(digits=(1, 2, 4))),
    ("lzc", False, lzc, grid(w=(4, 8, 16, 32))),
]
