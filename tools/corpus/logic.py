"""Corpus families, part 3: multiplexers, decoders, encoders, arbiters, Hamming codes and random logic.

Builders are ``build(name, **params) -> str`` (see :mod:`tools.corpus.arith` for the
conventions); :data:`FAMILIES` lists ``(family, sequential, build, grid)``.  The random families draw
from a xorshift seeded by a hash of the design name, so they are reproducible without any global RNG.
"""

from __future__ import annotations

import zlib

from .common import clog2, grid

__all__ = ["FAMILIES"]


class _XorShift:
    """Marsaglia xorshift64 seeded from CRC-32s of a string: a fixed, platform-independent stream."""

    def __init__(self, seed: str) -> None:
        self.s = (zlib.crc32(seed.encode()) << 32 | zlib.crc32(seed[::-1].encode())) or 1

    def below(self, n: int) -> int:
        """The next integer in ``[0, n)``."""
        s = self.s
        s ^= (s << 13) & 0xFFFF_FFFF_FFFF_FFFF
        s ^= s >> 7
        s ^= (s << 17) & 0xFFFF_FFFF_FFFF_FFFF
        self.s = s
        return s % n


def mux_bin(name: str, n: int, w: int, style: str) -> str:
    k = clog2(n)
    head = f"module {name}(input [{n * w - 1}:0] d, input [{k - 1}:0] sel, output reg [{w - 1}:0] y);\n"
    if style == "index":
        return head + f"  always @(*) y = d[sel*{w} +: {w}];\nendmodule\n"
    if style == "case":
        cases = "\n".join(f"      {k}'d{i}: y = d[{i * w} +: {w}];" for i in range(n))
        dflt = f"\n      default: y = {w}'d0;" if n < (1 << k) else ""
        return head + f"  always @(*) begin\n    case (sel)\n{cases}{dflt}\n    endcase\n  end\nendmodule\n"
    # a tree of 2:1 multiplexers, one level per select bit
    lines = [head.replace("output reg", "output"), f"  wire [{n * w - 1}:0] l0 = d;"]
    cnt = n
    for lv in range(k):
        nxt = (cnt + 1) // 2
        lines.append(f"  wire [{nxt * w - 1}:0] l{lv + 1};")
        for j in range(nxt):
            lo = f"l{lv}[{2 * j * w} +: {w}]"
            hi = f"l{lv}[{(2 * j + 1) * w} +: {w}]" if 2 * j + 1 < cnt else lo
            lines.append(f"  assign l{lv + 1}[{j * w} +: {w}] = sel[{lv}] ? {hi} : {lo};")
        cnt = nxt
    lines += [f"  assign y = l{k}[{w - 1}:0];", "endmodule", ""]
    return "\n".join(lines).replace("output reg", "output")


def mux_onehot(name: str, n: int, w: int) -> str:
    return (
        f"module {name}(input [{n * w - 1}:0] d, input [{n - 1}:0] sel, output reg [{w - 1}:0] y);\n"
        "  integer i;\n  always @(*) begin\n"
        f"    y = {w}'d0;\n    for (i = 0; i < {n}; i = i + 1) y = y | (d[i*{w} +: {w}] & {{{w}{{sel[i]}}}});\n"
        "  end\nendmodule\n"
    )


def decoder(name: str, k: int) -> str:
    n = 1 << k
    return (
        f"module {name}(input [{k - 1}:0] a, input en, output reg [{n - 1}:0] y);\n"
        "  integer i;\n  always @(*)\n"
        f"    for (i = 0; i < {n}; i = i + 1) y[i] = en && (a == i);\nendmodule\n"
    )


def demux(name: str, n: int, w: int) -> str:
    k = clog2(n)
    return (
        f"module {name}(input [{w - 1}:0] d, input [{k - 1}:0] sel, output [{n * w - 1}:0] y);\n"
        f"  genvar i;\n  generate\n    for (i = 0; i < {n}; i = i + 1) begin : g_out\n"
        f"      assign y[i*{w} +: {w}] = (sel == i) ? d : {w}'d0;\n    end\n  endgenerate\nendmodule\n"
    )


def encoder(name: str, n: int) -> str:
    """One-hot to binary: output bit ``b`` is the OR of the inputs whose index has bit ``b`` set."""
    k = clog2(n)
    lines = [f"module {name}(input [{n - 1}:0] x, output [{k - 1}:0] y, output valid);"]
    for b in range(k):
        terms = " | ".join(f"x[{i}]" for i in range(n) if (i >> b) & 1)
        lines.append(f"  assign y[{b}] = {terms};")
    lines += ["  assign valid = |x;", "endmodule", ""]
    return "\n".join(lines)


def prio_enc(name: str, n: int, style: str) -> str:
    k = clog2(n)
    head = f"module {name}(input [{n - 1}:0] x, output reg [{k - 1}:0] y, output valid);\n  assign valid = |x;\n"
    if style == "loop":  # the highest set bit wins: later iterations override
        return head + (
            f"  integer i;\n  always @(*) begin\n    y = {k}'d0;\n"
            f"    for (i = 0; i < {n}; i = i + 1) if (x[i]) y = i;\n  end\nendmodule\n"
        )
    cases = "\n".join(f"      {n}'b{'0' * (n - 1 - i)}1{'?' * i}: y = {k}'d{i};" for i in range(n - 1, -1, -1))
    return (
        head
        + f"  always @(*) begin\n    casez (x)\n{cases}\n      default: y = {k}'d0;\n    endcase\n  end\nendmodule\n"
    )


def bin2therm(name: str, k: int) -> str:
    n = (1 << k) - 1
    return (
        f"module {name}(input [{k - 1}:0] b, output [{n - 1}:0] t);\n"
        f"  genvar i;\n  generate\n    for (i = 0; i < {n}; i = i + 1) begin : g_t\n"
        "      assign t[i] = (b > i);\n    end\n  endgenerate\nendmodule\n"
    )


def therm2bin(name: str, n: int) -> str:
    k = n.bit_length()
    return (
        f"module {name}(input [{n - 1}:0] t, output reg [{k - 1}:0] b, output bubble);\n  integer i;\n"
        f"  always @(*) begin\n    b = {k}'d0;\n    for (i = 0; i < {n}; i = i + 1) if (t[i]) b = i + 1;\n  end\n"
        f"  assign bubble = (t != ({n}'d0 | ((1 << b) - 1)));\nendmodule\n"
    )


def onehot_check(name: str, n: int) -> str:
    return (
        f"module {name}(input [{n - 1}:0] x, output zero, output onehot, output multi);\n"
        f"  wire [{n - 1}:0] low = x & (x - 1'b1);  // clears the lowest set bit\n"
        "  assign zero = ~|x;\n  assign onehot = ~zero & ~|low;\n  assign multi = |low;\nendmodule\n"
    )


def arbiter(name: str, n: int) -> str:
    """Round-robin arbiter: the first request at or after ``ptr`` wins."""
    k = clog2(n)
    return (
        f"module {name}(input [{n - 1}:0] req, input [{k - 1}:0] ptr, output reg [{n - 1}:0] grant);\n"
        f"  integer i;\n  reg [{k - 1}:0] idx;\n  reg found;\n"
        f"  always @(*) begin\n    grant = {n}'d0;\n    found = 1'b0;\n"
        f"    for (i = 0; i < {n}; i = i + 1) begin\n      idx = ptr + i;\n"
        "      if (!found && req[idx]) begin\n        grant[idx] = 1'b1;\n        found = 1'b1;\n      end\n"
        "    end\n  end\nendmodule\n"
    )


def _hamming_layout(d: int) -> tuple[int, list[int]]:
    """Parity-bit count ``r`` and the 1-based codeword positions of the data bits."""
    r = 1
    while (1 << r) < d + r + 1:
        r += 1
    pos = [p for p in range(1, d + r + 1) if p & (p - 1)]
    return r, pos


def hamming_enc(name: str, d: int) -> str:
    r, pos = _hamming_layout(d)
    lines = [f"module {name}(input [{d - 1}:0] data, output [{d + r}:0] code);"]
    for j in range(r):
        terms = " ^ ".join(f"data[{i}]" for i, p in enumerate(pos) if (p >> j) & 1)
        lines.append(f"  wire p{j} = {terms};")
    bits = {1 << j: f"p{j}" for j in range(r)} | {p: f"data[{i}]" for i, p in enumerate(pos)}
    word = [bits[p] for p in range(d + r, 0, -1)]
    lines.append(f"  wire [{d + r - 1}:0] w = {{{', '.join(word)}}};")
    lines += ["  assign code = {^w, w};  // overall parity on top (SECDED)", "endmodule", ""]
    return "\n".join(lines)


def hamming_dec(name: str, d: int) -> str:
    r, pos = _hamming_layout(d)
    n = d + r
    lines = [f"module {name}(input [{n}:0] code, output [{d - 1}:0] data, output single, output double);"]
    lines.append(f"  wire [{n - 1}:0] w = code[{n - 1}:0];")
    for j in range(r):
        terms = " ^ ".join(f"w[{p - 1}]" for p in range(1, n + 1) if (p >> j) & 1)
        lines.append(f"  wire s{j} = {terms};")
    syn = ", ".join(f"s{j}" for j in range(r - 1, -1, -1))
    lines += [f"  wire [{r - 1}:0] syn = {{{syn}}};", "  wire par = ^code;"]
    for i, p in enumerate(pos):
        lines.append(f"  assign data[{i}] = w[{p - 1}] ^ (par && syn == {r}'d{p});")
    lines += ["  assign single = par;", "  assign double = ~par && (syn != 0);", "endmodule", ""]
    return "\n".join(lines)


def random_sop(name: str, n: int, m: int, terms: int) -> str:
    """A random PLA: ``terms`` product terms of 2..5 literals, each output the OR of a random subset."""
    rng = _XorShift(name)
    lines = [f"module {name}(input [{n - 1}:0] x, output [{m - 1}:0] y);"]
    for t in range(terms):
        vars_: list[int] = []
        for _ in range(2 + rng.below(4)):
            v = rng.below(n)
            if v not in vars_:
                vars_.append(v)
        lits = " & ".join(("~" if rng.below(2) else "") + f"x[{v}]" for v in vars_)
        lines.append(f"  wire t{t} = {lits};")
    for o in range(m):
        chosen = sorted({rng.below(terms) for _ in range(1 + rng.below(max(2, terms // 3)))})
        lines.append(f"  assign y[{o}] = " + " | ".join(f"t{t}" for t in chosen) + ";")
    lines += ["endmodule", ""]
    return "\n".join(lines)


def random_logic(name: str, n: int, gates: int, m: int) -> str:
    """A random multi-level network of 2-input gates, each reading inputs or recent gates."""
    rng = _XorShift(name)
    ops = ("&", "|", "^", "~&", "~|", "~^")
    sig = [f"x[{i}]" for i in range(n)]
    lines = [f"module {name}(input [{n - 1}:0] x, output [{m - 1}:0] y);"]
    for g in range(gates):
        window = min(len(sig), 3 * n)
        a = sig[len(sig) - 1 - rng.below(window)]
        b = sig[len(sig) - 1 - rng.below(window)]
        op = ops[rng.below(len(ops))]
        expr = f"~({a} {op[1]} {b})" if op.startswith("~") else f"{a} {op} {b}"
        lines.append(f"  wire n{g} = {expr};")
        sig.append(f"n{g}")
    for o in range(m):
        lines.append(f"  assign y[{o}] = n{gates - 1 - o};")
    lines += ["endmodule", ""]
    return "\n".join(lines)


FAMILIES = [
    (
        "mux_bin",
        False,
        mux_bin,
        [
            dict(n=n, w=w, style=("index", "case", "tree")[i % 3])
            for i, (n, w) in enumerate((a, b) for a in (2, 4, 5, 8, 16, 32) for b in (1, 4, 8))
        ],
    ),
    ("mux_onehot", False, mux_onehot, grid(n=(4, 8, 32), w=(1, 8))),
    ("decoder", False, decoder, grid(k=(3, 4, 5, 6))),
    ("demux", False, demux, grid(n=(2, 4, 8, 16), w=(4,))),
    ("encoder", False, encoder, grid(n=(4, 8, 16, 32, 64))),
    ("prio_enc", False, prio_enc, grid(n=(4, 8, 16, 32), style=("casez", "loop"))),
    ("bin2therm", False, bin2therm, grid(k=(2, 3, 4, 5))),
    ("therm2bin", False, therm2bin, grid(n=(3, 7, 15, 31))),
    ("onehot_check", False, onehot_check, grid(n=(4, 8, 16, 32))),
    ("arbiter", False, arbiter, grid(n=(4, 8, 16))),
    ("hamming_enc", False, hamming_enc, grid(d=(4, 8, 11, 26, 32))),
    ("hamming_dec", False, hamming_dec, grid(d=(4, 8, 11, 26, 32))),
    (
        "random_sop",
        False,
        random_sop,
        [
            dict(n=n, m=m, terms=t)
            for n, m, t in (
                (6, 4, 8),
                (8, 4, 16),
                (8, 8, 24),
                (10, 6, 32),
                (12, 8, 48),
                (16, 8, 64),
                (16, 16, 96),
                (24, 12, 128),
            )
        ],
    ),
    (
        "random_logic",
        False,
        random_logic,
        [
            dict(n=n, gates=g, m=m)
            for n, g, m in (
                (4, 12, 2),
                (6, 30, 4),
                (8, 60, 6),
                (10, 120, 8),
                (12, 250, 10),
                (16, 500, 12),
                (20, 1000, 16),
                (24, 1500, 16),
            )
        ],
    ),
]
