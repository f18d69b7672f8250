"""Corpus families, part 1: adders, subtractors, multipliers, comparators, ALUs and shifters.

Each builder is ``build(name, **params) -> str``: the Verilog-2005 text of one self-contained file whose
top module is ``name``; helper modules are prefixed with ``name`` so that many corpus files can be read
into one yosys session without clashes.  :data:`FAMILIES` lists ``(family, sequential, build, grid)``;
:mod:`tools.corpus` assembles the registry.
"""

from __future__ import annotations

from .common import clog2, grid

__all__ = ["FAMILIES"]


def _b(w: int) -> str:
    """Bus range ``[w-1:0] `` (empty for one bit)."""
    return f"[{w - 1}:0] " if w > 1 else ""


def _fa(name: str) -> str:
    return (
        f"module {name}_fa(input a, input b, input ci, output s, output co);\n"
        "  assign s = a ^ b ^ ci;\n"
        "  assign co = (a & b) | (ci & (a ^ b));\n"
        "endmodule\n\n"
    )


def _rca(name: str) -> str:
    """A parameterised ripple-carry adder ``{name}_rca #(W)`` built on ``{name}_fa``."""
    return _fa(name) + (
        f"module {name}_rca #(parameter W = 4) (input [W-1:0] a, input [W-1:0] b, input ci,\n"
        "    output [W-1:0] s, output co);\n"
        "  wire [W:0] c;\n"
        "  assign c[0] = ci;\n"
        "  genvar i;\n"
        "  generate\n"
        "    for (i = 0; i < W; i = i + 1) begin : g_bit\n"
        f"      {name}_fa fa (.a(a[i]), .b(b[i]), .ci(c[i]), .s(s[i]), .co(c[i + 1]));\n"
        "    end\n"
        "  endgenerate\n"
        "  assign co = c[W];\n"
        "endmodule\n\n"
    )


def adder_ripple(name: str, w: int) -> str:
    return _rca(name) + (
        f"module {name}(input {_b(w)}a, input {_b(w)}b, input cin, output {_b(w)}s, output cout);\n"
        f"  {name}_rca #(.W({w})) add (.a(a), .b(b), .ci(cin), .s(s), .co(cout));\n"
        "endmodule\n"
    )


def adder_cla(name: str, w: int, blk: int) -> str:
    lines = [f"module {name}_blk(input [{blk - 1}:0] a, input [{blk - 1}:0] b, input ci,"]
    lines += [f"    output [{blk - 1}:0] s, output co);", f"  wire [{blk - 1}:0] g = a & b;"]
    lines += [f"  wire [{blk - 1}:0] p = a ^ b;", f"  wire [{blk}:0] c;", "  assign c[0] = ci;"]
    for i in range(1, blk + 1):  # c[i] = g[i-1] | p[i-1]g[i-2] | ... | p[i-1]..p[0]ci, fully expanded
        terms = []
        for j in range(i - 1, -2, -1):
            ps = [f"p[{k}]" for k in range(i - 1, j, -1)]
            terms.append(" & ".join(ps + [f"g[{j}]" if j >= 0 else "ci"]))
        lines.append(f"  assign c[{i}] = " + " | ".join(f"({t})" for t in terms) + ";")
    lines += [f"  assign s = p ^ c[{blk - 1}:0];", f"  assign co = c[{blk}];", "endmodule", ""]
    nb = w // blk
    lines += [f"module {name}(input [{w - 1}:0] a, input [{w - 1}:0] b, input cin, output [{w - 1}:0] s,"]
    lines += ["    output cout);", f"  wire [{nb}:0] c;", "  assign c[0] = cin;", "  genvar k;", "  generate"]
    lines += [f"    for (k = 0; k < {nb}; k = k + 1) begin : g_blk"]
    lines += [f"      {name}_blk u (.a(a[k*{blk} +: {blk}]), .b(b[k*{blk} +: {blk}]), .ci(c[k]),"]
    lines += [f"        .s(s[k*{blk} +: {blk}]), .co(c[k + 1]));", "    end", "  endgenerate"]
    lines += [f"  assign cout = c[{nb}];", "endmodule", ""]
    return "\n".join(lines)


def _prefix_pairs(w: int, style: str) -> list[list[tuple[int, int]]]:
    """Levels of (i, j) prefix combines: span ending at i absorbs the span ending at j."""
    levels: list[list[tuple[int, int]]] = []
    if style == "ks":  # Kogge-Stone
        d = 1
        while d < w:
            levels.append([(i, i - d) for i in range(d, w)])
            d *= 2
    elif style == "sk":  # Sklansky
        k = 0
        while (1 << k) < w:
            levels.append([(i, ((i >> k) << k) - 1) for i in range(w) if (i >> k) & 1])
            k += 1
    else:  # Brent-Kung: up-sweep then down-sweep
        d = 1
        while d < w:
            levels.append([(i, i - d) for i in range(2 * d - 1, w, 2 * d)])
            d *= 2
        d //= 2
        while d >= 1:
            lv = [(i, i - d) for i in range(3 * d - 1, w, 2 * d)]
            if lv:
                levels.append(lv)
            d //= 2
    return levels


def adder_prefix(name: str, w: int, style: str) -> str:
    lines = [f"module {name}(input [{w - 1}:0] a, input [{w - 1}:0] b, input cin, output [{w - 1}:0] s,"]
    lines += ["    output cout);", f"  wire [{w - 1}:0] p = a ^ b;", f"  wire [{w - 1}:0] g = a & b;"]
    cur_g = {i: f"g[{i}]" for i in range(w)}
    cur_p = {i: f"p[{i}]" for i in range(w)}
    lines.append("  wire g0c = g[0] | (p[0] & cin);")
    cur_g[0] = "g0c"
    for lv, pairs in enumerate(_prefix_pairs(w, style)):
        new_g, new_p = dict(cur_g), dict(cur_p)
        for i, j in pairs:
            lines.append(f"  wire g{lv}_{i} = {cur_g[i]} | ({cur_p[i]} & {cur_g[j]});")
            new_g[i] = f"g{lv}_{i}"
            lines.append(f"  wire p{lv}_{i} = {cur_p[i]} & {cur_p[j]};")
            new_p[i] = f"p{lv}_{i}"
        cur_g, cur_p = new_g, new_p
    carries = ", ".join(cur_g[i] for i in range(w - 2, -1, -1))
    lines += [f"  wire [{w - 1}:0] c = {{{carries}, cin}};", "  assign s = p ^ c;"]
    lines += [f"  assign cout = {cur_g[w - 1]};", "endmodule", ""]
    return "\n".join(lines)


def adder_behav(name: str, w: int) -> str:
    return (
        f"module {name}(input {_b(w)}a, input {_b(w)}b, input cin, output {_b(w)}s, output cout);\n"
        "  assign {cout, s} = a + b + cin;\nendmodule\n"
    )


def subtractor(name: str, w: int, style: str) -> str:
    if style == "behav":
        return (
            f"module {name}(input [{w - 1}:0] a, input [{w - 1}:0] b, output [{w - 1}:0] d, output borrow);\n"
            f"  wire [{w}:0] t = {{1'b0, a}} - {{1'b0, b}};\n"
            f"  assign d = t[{w - 1}:0];\n  assign borrow = t[{w}];\nendmodule\n"
        )
    return _rca(name) + (
        f"module {name}(input [{w - 1}:0] a, input [{w - 1}:0] b, output [{w - 1}:0] d, output borrow);\n"
        "  wire co;\n"
        f"  {name}_rca #(.W({w})) add (.a(a), .b(~b), .ci(1'b1), .s(d), .co(co));\n"
        "  assign borrow = ~co;\nendmodule\n"
    )


def addsub(name: str, w: int) -> str:
    return (
        f"module {name}(input [{w - 1}:0] a, input [{w - 1}:0] b, input sub, output [{w - 1}:0] y,\n"
        "    output cout, output ovf);\n"
        f"  wire [{w - 1}:0] bx = b ^ {{{w}{{sub}}}};\n"
        "  assign {cout, y} = a + bx + sub;\n"
        f"  assign ovf = (a[{w - 1}] == bx[{w - 1}]) && (y[{w - 1}] != a[{w - 1}]);\nendmodule\n"
    )


def incdec(name: str, w: int) -> str:
    return (
        f"module {name}(input [{w - 1}:0] a, input down, output reg [{w - 1}:0] y, output reg wrap);\n"
        "  always @(*) begin\n"
        f"    if (down) begin y = a - 1'b1; wrap = (a == {w}'d0); end\n"
        f"    else begin y = a + 1'b1; wrap = &a; end\n"
        "  end\nendmodule\n"
    )


def mult_array(name: str, w: int) -> str:
    n = w
    return _rca(name) + (
        f"module {name}(input [{n - 1}:0] a, input [{n - 1}:0] b, output [{2 * n - 1}:0] p);\n"
        f"  wire [{(n + 1) * n - 1}:0] row;  // row i: partial sum of {n + 1} bits after adding b[i] * a\n"
        f"  assign row[{n}:0] = {{1'b0, a & {{{n}{{b[0]}}}}}};\n"
        "  assign p[0] = row[0];\n"
        "  genvar i;\n  generate\n"
        f"    for (i = 1; i < {n}; i = i + 1) begin : g_row\n"
        f"      {name}_rca #(.W({n})) add (.a(row[(i-1)*{n + 1} + 1 +: {n}]), .b(a & {{{n}{{b[i]}}}}),\n"
        f"        .ci(1'b0), .s(row[i*{n + 1} +: {n}]), .co(row[i*{n + 1} + {n}]));\n"
        f"      assign p[i] = row[i*{n + 1}];\n"
        "    end\n  endgenerate\n"
        f"  assign p[{2 * n - 1}:{n}] = row[{(n - 1) * (n + 1) + 1} +: {n}];\nendmodule\n"
    )


def mult_behav(name: str, wa: int, wb: int) -> str:
    return (
        f"module {name}(input [{wa - 1}:0] a, input [{wb - 1}:0] b, output [{wa + wb - 1}:0] p);\n"
        "  assign p = a * b;\nendmodule\n"
    )


def mult_signed(name: str, w: int) -> str:
    return (
        f"module {name}(input signed [{w - 1}:0] a, input signed [{w - 1}:0] b, output signed [{2 * w - 1}:0] p);\n"
        "  assign p = a * b;\nendmodule\n"
    )


def mac(name: str, w: int) -> str:
    return (
        f"module {name}(input [{w - 1}:0] a, input [{w - 1}:0] b, input [{2 * w - 1}:0] c, output [{2 * w}:0] y);\n"
        "  assign y = a * b + c;\nendmodule\n"
    )


def divider(name: str, w: int) -> str:
    return (
        f"module {name}(input [{w - 1}:0] a, input [{w - 1}:0] b, output [{w - 1}:0] q, output [{w - 1}:0] r,\n"
        "    output div0);\n"
        "  assign div0 = (b == 0);\n"
        f"  assign q = div0 ? {{{w}{{1'b1}}}} : a / b;\n"
        "  assign r = div0 ? a : a % b;\nendmodule\n"
    )


def cmp_eq(name: str, w: int) -> str:
    return (
        f"module {name}(input [{w - 1}:0] a, input [{w - 1}:0] b, output eq, output ne);\n"
        "  assign eq = (a == b);\n  assign ne = ~eq;\nendmodule\n"
    )


def cmp_tree(name: str, w: int) -> str:
    """Structural magnitude comparator: a balanced tree of (gt, eq) combines."""
    lines = [f"module {name}(input [{w - 1}:0] a, input [{w - 1}:0] b, output gt, output eq, output lt);"]
    lines += [f"  wire [{w - 1}:0] g0 = a & ~b;", f"  wire [{w - 1}:0] e0 = ~(a ^ b);"]
    nodes = [(f"g0[{i}]", f"e0[{i}]") for i in range(w)]  # LSB first
    lv = 1
    while len(nodes) > 1:
        nxt = []
        for k in range(0, len(nodes) - 1, 2):
            (gl, el), (gh, eh) = nodes[k], nodes[k + 1]
            lines.append(f"  wire g{lv}_{k // 2} = {gh} | ({eh} & {gl});")
            lines.append(f"  wire e{lv}_{k // 2} = {eh} & {el};")
            nxt.append((f"g{lv}_{k // 2}", f"e{lv}_{k // 2}"))
        if len(nodes) % 2:
            nxt.append(nodes[-1])
        nodes, lv = nxt, lv + 1
    g, e = nodes[0]
    lines += [f"  assign gt = {g};", f"  assign eq = {e};", "  assign lt = ~gt & ~eq;", "endmodule", ""]
    return "\n".join(lines)


def cmp_mag(name: str, w: int, signed: int) -> str:
    s = "signed " if signed else ""
    return (
        f"module {name}(input {s}[{w - 1}:0] a, input {s}[{w - 1}:0] b, output reg lt, output reg le,\n"
        "    output reg gt, output reg ge);\n"
        "  always @(*) begin\n    lt = a < b;\n    le = a <= b;\n    gt = a > b;\n    ge = a >= b;\n"
        "  end\nendmodule\n"
    )


_ALU_OPS = [
    "a + b",
    "a - b",
    "a & b",
    "a | b",
    "a ^ b",
    "~(a | b)",
    "{{{{{w1}{{1'b0}}}}, $signed(a) < $signed(b)}}",
    "{{{{{w1}{{1'b0}}}}, a < b}}",
    "a << b[{s1}:0]",
    "a >> b[{s1}:0]",
    "$signed(a) >>> b[{s1}:0]",
    "a + 1'b1",
    "a - 1'b1",
    "~a",
    "b",
    "{{a[{w2}:0], a[{w1}]}}",
]


def alu(name: str, w: int, ops: int) -> str:
    k = clog2(ops)
    lines = [f"module {name}(input [{w - 1}:0] a, input [{w - 1}:0] b, input [{k - 1}:0] op,"]
    lines += [f"    output reg [{w - 1}:0] y, output zero, output neg);", "  always @(*) begin", "    case (op)"]
    for i in range(ops):
        expr = _ALU_OPS[i].format(w1=w - 1, w2=w - 2, s1=clog2(w) - 1)
        lines.append(f"      {k}'d{i}: y = {expr};")
    if ops < (1 << k):
        lines.append(f"      default: y = {w}'d0;")
    lines += ["    endcase", "  end", "  assign zero = (y == 0);", f"  assign neg = y[{w - 1}];", "endmodule", ""]
    return "\n".join(lines)


def shift_log(name: str, w: int, mode: str) -> str:
    """Logarithmic barrel shifter, one generate stage per shift-amount bit."""
    k = clog2(w)
    fill = {"sll": "{S{1'b0}}", "srl": "{S{1'b0}}", "sra": f"{{S{{st[{w - 1}]}}}}", "rol": ""}[mode]
    if mode == "sll":
        shifted = f"{{st[{w - 1}-S:0], {fill}}}"
    elif mode == "rol":
        shifted = f"{{st[{w - 1}-S:0], st[{w - 1}:{w}-S]}}"
    else:
        shifted = f"{{{fill}, st[{w - 1}:S]}}"
    return (
        f"module {name}_stage #(parameter S = 1) (input [{w - 1}:0] st, input en, output [{w - 1}:0] y);\n"
        f"  assign y = en ? {shifted} : st;\nendmodule\n\n"
        f"module {name}(input [{w - 1}:0] a, input [{k - 1}:0] sh, output [{w - 1}:0] y);\n"
        f"  wire [{w * (k + 1) - 1}:0] st;\n  assign st[{w - 1}:0] = a;\n"
        "  genvar i;\n  generate\n"
        f"    for (i = 0; i < {k}; i = i + 1) begin : g_stage\n"
        f"      {name}_stage #(.S(1 << i)) u (.st(st[i*{w} +: {w}]), .en(sh[i]), .y(st[(i+1)*{w} +: {w}]));\n"
        "    end\n  endgenerate\n"
        f"  assign y = st[{k * w} +: {w}];\nendmodule\n"
    )


def shift_behav(name: str, w: int) -> str:
    k = clog2(w)
    return (
        f"module {name}(input [{w - 1}:0] a, input [{k - 1}:0] sh, input left, input arith,\n"
        f"    output reg [{w - 1}:0] y);\n"
        "  always @(*) begin\n"
        "    if (left) y = a << sh;\n"
        "    else if (arith) y = $signed(a) >>> sh;\n"
        "    else y = a >> sh;\n"
        "  end\nendmodule\n"
    )


FAMILIES = [
    ("adder_ripple", False, adder_ripple, grid(w=(2, 4, 6, 8, 12, 16, 24, 32))),
    ("adder_cla", False, adder_cla, grid(w=(4, 8, 16, 32), blk=(4,)) + grid(w=(6, 12, 24), blk=(2, 3))),
    ("adder_prefix", False, adder_prefix, grid(w=(8, 13, 16, 32), style=("ks", "bk", "sk"))),
    ("adder_behav", False, adder_behav, grid(w=(2, 4, 8, 16, 32))),
    ("sub", False, subtractor, grid(w=(4, 8, 16, 32), style=("rca", "behav"))),
    ("addsub", False, addsub, grid(w=(4, 8, 16, 32))),
    ("incdec", False, incdec, grid(w=(4, 8, 16, 32))),
    ("mult_array", False, mult_array, grid(w=(2, 3, 4, 6, 8, 12, 16))),
    (
        "mult_behav",
        False,
        mult_behav,
        [dict(wa=a, wb=b) for a, b in ((2, 2), (3, 3), (4, 4), (6, 6), (8, 4), (8, 8), (12, 6), (12, 12), (16, 16))],
    ),
    ("mult_signed", False, mult_signed, grid(w=(4, 6, 8, 12))),
    ("mac", False, mac, grid(w=(4, 6, 8))),
    ("div", False, divider, grid(w=(4, 6, 8, 12))),
    ("cmp_eq", False, cmp_eq, grid(w=(4, 8, 16, 32, 64))),
    ("cmp_tree", False, cmp_tree, grid(w=(4, 8, 11, 16, 32))),
    ("cmp_mag", False, cmp_mag, grid(w=(8, 16, 32), signed=(0, 1))),
    ("alu", False, alu, grid(w=(4, 8, 16, 32), ops=(8, 16)) + grid(w=(8,), ops=(4,))),
    ("shift_log", False, shift_log, grid(w=(8, 16, 32), mode=("sll", "srl", "sra", "rol"))),
    ("shift_behav", False, shift_behav, grid(w=(8, 16, 32))),
]
