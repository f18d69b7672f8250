"""MGVGA training-step speed and memory: geomask against the reference model (wuhy68/MGVGA), in one run.

Both train the same model size (DeepGCN hidden 64, 7 layers, 2 cross-attention layers, one 3584-d Verilog
vector per design: random vectors, timing only) with MGM (30 %) + VGA (50 %) on the same EPFL graphs
(read with ``geomask.circuits.read``, NOT nodes per inverted edge as the reference's data), timing
forward + backward + AdamW per step, at batch 1 and batched.  Each configuration runs in a fresh
subprocess (peak RSS per configuration); reference and geomask runs alternate, best of ``--repeats``.

The reference is imported at run time from ``--reference DIR`` (a local copy of the GitHub repository; it
is never part of this project) by ``--reference-python`` (a venv with its dependencies: torch,
torch_geometric, transformers 4.x).  Its ``configuration_vgmae.py`` does not parse (a non-default argument
after defaults), so the worker supplies an equivalent config class before importing ``modeling_vgmae``.

Usage::

    python benchmarks/bench_mgvga.py --reference PEERS/MGVGA --reference-python PEERS/mgvga-venv/bin/python

``--reference`` / ``--reference-python`` default to ``$GEOMASK_MGVGA_REFERENCE`` / ``$GEOMASK_MGVGA_PYTHON``
(without them geomask runs alone and the ratio is n/a), ``--epfl`` to ``$GEOMASK_SHARED_DATA/circuits/epfl``
(``../shared/data`` beside the checkout without it); missing EPFL files print one ``skipped: ...`` line and
exit 0.

The last line reads ``ratio graphs/s geomask/reference: X`` (best geomask batch size against the
reference at batch 1).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path

import torch

# ../shared/data beside the checkout, or $GEOMASK_SHARED_DATA
SHARED = Path(os.environ.get("GEOMASK_SHARED_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data")
SMALL_EPFL = "adder bar cavlc ctrl dec i2c int2float max priority router sin".split()
VERILOG_DIM = 3584
MGM_RATIO, VGA_RATIO = 0.3, 0.5
# geomask NodeType (PI 0, AND 1, NOT 2, PO 3, CONST 4) -> the reference's classes (PI 0, PO 1, AND 2, NOT 3)
TO_REFERENCE_TYPE = [0, 2, 3, 1, 0]


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


# ---------------------------------------------------------------------------------------------- workers
def reference_worker(args: argparse.Namespace, graphs: list[dict]) -> dict:
    """Train the reference AIGMAEModel on padded batches built as its data collator builds them."""
    sys.path.insert(0, str(Path(args.reference).resolve()))
    from transformers.configuration_utils import PretrainedConfig

    class Config(PretrainedConfig):
        model_type = "AIGMAE"

        def __init__(
            self,
            cross_hidden_size=VERILOG_DIM,
            cross_num_heads=8,
            hidden_size=64,
            num_classes=4,
            num_cross_decoder_layers=2,
            num_encoder_layers=7,
            **kwargs,
        ):
            self.cross_hidden_size = cross_hidden_size
            self.cross_num_heads = cross_num_heads
            self.hidden_size = hidden_size
            self.num_classes = num_classes
            self.num_cross_decoder_layers = num_cross_decoder_layers
            self.num_encoder_layers = num_encoder_layers
            super().__init__(**kwargs)

    shim = types.ModuleType("aigmae.configuration_vgmae")
    shim.AIGMAEConfig = Config
    sys.modules["aigmae.configuration_vgmae"] = shim
    from aigmae.modeling_vgmae import AIGMAEModel

    gen = torch.Generator().manual_seed(0)
    to_ref = torch.tensor(TO_REFERENCE_TYPE)

    def collate(gs: list[dict]) -> dict:
        b = len(gs)
        nmax = max(g["node_type"].numel() for g in gs)
        emax = max(g["edge_index"].shape[1] for g in gs)
        out = {k: torch.zeros(b, nmax, dtype=torch.long) for k in ("input_nodes", "padding_mask", "labels")}
        out["input_edges"] = torch.zeros(b, 2, emax, dtype=torch.long)
        out["input_indegree"] = torch.zeros(b, nmax, dtype=torch.long)
        out["input_outdegree"] = torch.zeros(b, nmax, dtype=torch.long)
        out["node_mask"] = torch.zeros(b, nmax, dtype=torch.long)
        out["vg_node_mask"] = torch.zeros(b, nmax, dtype=torch.long)
        out["input_vg_verilogs"] = torch.stack([g["verilog_vec"].reshape(-1) for g in gs])
        for i, g in enumerate(gs):
            t, ei = to_ref[g["node_type"]], g["edge_index"]
            n, e = t.numel(), ei.shape[1]
            out["input_edges"][i, :, :e] = ei
            out["input_edges"][i, :, e:] = ei[:, :1]  # the collator pads with copies of the first edge
            out["input_nodes"][i, :n] = t + 1
            out["labels"][i, :n] = t
            out["padding_mask"][i, :n] = 1
            out["input_indegree"][i, :n] = torch.bincount(ei[0], minlength=n)  # its "indegree" is the fan-out
            out["input_outdegree"][i, :n] = torch.bincount(ei[1], minlength=n)
            out["node_mask"][i, torch.randperm(n, generator=gen)[: int(n * MGM_RATIO)]] = 1
            out["vg_node_mask"][i, torch.randperm(n, generator=gen)[: int(n * VGA_RATIO)]] = 1
        for k_src, k_dst in (
            ("input_nodes", "input_vg_nodes"),
            ("input_edges", "input_vg_edges"),
            ("padding_mask", "vg_padding_mask"),
            ("labels", "vg_labels"),
        ):
            out[k_dst] = out[k_src].clone()
        return out

    torch.manual_seed(0)
    model = AIGMAEModel(Config())
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)

    def step(batch: dict) -> dict:
        opt.zero_grad()
        out = model(**batch, return_dict=True)
        out.loss.backward()
        opt.step()
        deg = 0.1 * (out.indegree_loss_t + out.outdegree_loss_t)
        return {"loss": out.loss, "mgm_type": out.node_loss, "mgm_degree": deg, "vga_type": out.vg_node_loss}

    return run_steps(args, graphs, collate, step)


def geomask_worker(args: argparse.Namespace, graphs: list[dict]) -> dict:
    from torch_geometric.data import Batch, Data

    from geomask.methods import build_method

    torch.manual_seed(0)
    model = build_method(args.method, verilog_dim=VERILOG_DIM, head_dropout=args.head_dropout)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    count = [0]

    def collate(gs: list[dict]) -> Batch:
        data = []
        for g in gs:
            n = g["node_type"].numel()
            ei = g["edge_index"]
            data.append(
                Data(
                    node_type=g["node_type"],
                    edge_index=ei,
                    in_degree=torch.bincount(ei[1], minlength=n),
                    out_degree=torch.bincount(ei[0], minlength=n),
                    verilog_vec=g["verilog_vec"].reshape(1, -1),
                    verilog_emb=g["verilog_vec"].reshape(1, -1),
                    num_nodes=n,
                )
            )
        return Batch.from_data_list(data, follow_batch=["verilog_emb"])

    def step(batch: Batch) -> dict:
        count[0] += 1
        opt.zero_grad()
        out = model(batch, torch.Generator().manual_seed(count[0]))
        out["loss"].backward()
        opt.step()
        return out

    return run_steps(args, graphs, collate, step)


def run_steps(args, graphs, collate, step) -> dict:
    """Warm up one pass over the graphs, then time ``args.passes`` passes; losses, NaN flag, peak RSS."""
    torch.set_num_threads(args.threads)
    g, bs = len(graphs), args.batch
    per_pass = max(1, math.ceil(g / bs))
    windows = [[graphs[(i * bs + j) % g] for j in range(bs)] for i in range(per_pass)]
    batches = [collate(w) for w in windows]
    nodes = [sum(x["node_type"].numel() for x in w) for w in windows]
    base = rss_mb()
    for b in batches[: args.warmup]:
        step(b)
    sums: dict[str, float] = {}
    nan = False
    t0, c0 = time.perf_counter(), time.process_time()
    done_graphs = done_nodes = steps = 0
    for _ in range(args.passes):
        for b, nn_ in zip(batches, nodes):
            out = step(b)
            for k, v in out.items():
                if k.endswith("acc"):
                    continue
                v = float(v)
                nan |= not math.isfinite(v)
                sums[k] = sums.get(k, 0.0) + v
            done_graphs += bs
            done_nodes += nn_
            steps += 1
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {
        "graphs_per_s": done_graphs / wall,
        "nodes_per_s": done_nodes / wall,
        "cpu_s_per_graph": cpu / done_graphs,
        "steps": steps,
        "peak_rss_mb": rss_mb(),
        "rss_before_mb": base,
        "losses": {k: v / steps for k, v in sums.items()},
        "nan": nan,
    }


# ---------------------------------------------------------------------------------------------- driver
def load_graphs(root: Path, names: list[str], seed: int = 0) -> list[dict]:
    from geomask.circuits import read

    gen = torch.Generator().manual_seed(seed)
    out = []
    for name in names:
        g = read(root / f"{name}.aig", not_nodes="per_edge")
        out.append(
            {
                "name": name,
                "node_type": g.node_type,
                "edge_index": g.edge_index,
                "verilog_vec": torch.randn(VERILOG_DIM, generator=gen),
            }
        )
    return out


def spawn(python: str, which: str, data: Path, args: argparse.Namespace, batch: int, passes: int) -> dict:
    cmd = [python, __file__, "--worker", which, "--data", str(data), "--batch", str(batch)]
    cmd += ["--threads", str(args.threads), "--passes", str(passes), "--warmup", str(args.warmup)]
    cmd += ["--method", args.method, "--head-dropout", str(args.head_dropout)]
    if which == "reference":
        cmd += ["--reference", args.reference]
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1]) if which == "geomask" else ""
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=args.timeout)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        return {"error": f"exit {proc.returncode}: {' | '.join(tail)}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def fmt(r: dict) -> str:
    if "error" in r:
        return r["error"]
    losses = " ".join(f"{k}={v:.3f}" for k, v in sorted(r["losses"].items()))
    return (
        f"{r['graphs_per_s']:8.2f} graphs/s {r['nodes_per_s']:10.0f} nodes/s  cpu {1000 * r['cpu_s_per_graph']:7.1f} "
        f"ms/graph  peak RSS {r['peak_rss_mb']:7.0f} MB  nan={r['nan']}  {losses}"
    )


def best(runs: list[dict]) -> dict:
    ok = [r for r in runs if "error" not in r]
    return max(ok, key=lambda r: r["graphs_per_s"]) if ok else runs[-1]


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument(
        "--reference",
        default=os.environ.get("GEOMASK_MGVGA_REFERENCE"),
        help="local copy of github.com/wuhy68/MGVGA (default: $GEOMASK_MGVGA_REFERENCE)",
    )
    p.add_argument(
        "--reference-python",
        default=os.environ.get("GEOMASK_MGVGA_PYTHON"),
        help="a Python with the reference's dependencies (default: $GEOMASK_MGVGA_PYTHON)",
    )
    p.add_argument("--epfl", default=str(SHARED / "circuits" / "epfl"), help="EPFL AIGER folder")
    p.add_argument("--graphs", nargs="+", default=SMALL_EPFL)
    p.add_argument("--batch-sizes", nargs="+", type=int, default=[1, 10])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--passes", type=int, default=4, help="timed passes over the graphs")
    p.add_argument("--warmup", type=int, default=2, help="warm-up steps")
    p.add_argument("--repeats", type=int, default=3, help="runs per configuration (best kept), alternating sides")
    p.add_argument("--method", default="mgvga_single")
    p.add_argument("--head-dropout", type=float, default=0.1, help="geomask heads' dropout (reference: 0.1)")
    p.add_argument("--hyp", action=argparse.BooleanOptionalAction, default=True, help="one step on hyp.aig")
    p.add_argument("--timeout", type=float, default=3600)
    p.add_argument("--worker", choices=["geomask", "reference"], help=argparse.SUPPRESS)
    p.add_argument("--data", help=argparse.SUPPRESS)
    p.add_argument("--batch", type=int, default=1, help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    if args.worker:
        graphs = torch.load(args.data)
        fn = reference_worker if args.worker == "reference" else geomask_worker
        print(json.dumps(fn(args, graphs)))
        return

    epfl = Path(args.epfl)
    missing = [str(epfl / f"{g}.aig") for g in args.graphs if not (epfl / f"{g}.aig").is_file()]
    if missing:
        where = epfl if not epfl.is_dir() else ", ".join(missing)
        print(f"skipped: EPFL AIGER files not found ({where}; pass --epfl or set GEOMASK_SHARED_DATA)")
        return
    graphs = load_graphs(epfl, args.graphs)
    sizes = [g["node_type"].numel() for g in graphs]
    print(f"graphs: {len(graphs)} EPFL ({', '.join(args.graphs)}), {sum(sizes) / len(sizes):.0f} nodes on average")
    print(f"threads: {args.threads}, method: {args.method}, geomask head dropout {args.head_dropout}")
    ref_ok, why = True, ""
    if not args.reference:
        ref_ok, why = False, "no --reference nor GEOMASK_MGVGA_REFERENCE given"
    elif not (Path(args.reference) / "aigmae" / "modeling_vgmae.py").is_file():
        ref_ok, why = False, f"{args.reference}/aigmae/modeling_vgmae.py not found"
    elif not args.reference_python:
        ref_ok, why = False, "no --reference-python nor GEOMASK_MGVGA_PYTHON given"
    elif not Path(args.reference_python).exists():
        ref_ok, why = False, f"reference python {args.reference_python} not found"
    results: dict[str, dict[int, dict]] = {"reference": {}, "geomask": {}}
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "graphs.pt"
        torch.save(graphs, data)
        for bs in args.batch_sizes:
            runs: dict[str, list[dict]] = {"reference": [], "geomask": []}
            for _ in range(args.repeats):
                if ref_ok:
                    runs["reference"].append(spawn(args.reference_python, "reference", data, args, bs, args.passes))
                runs["geomask"].append(spawn(sys.executable, "geomask", data, args, bs, args.passes))
            for who in ("reference", "geomask"):
                if runs[who]:
                    results[who][bs] = best(runs[who])
                    print(f"{who:9s} batch {bs:3d}: {fmt(results[who][bs])}")
        if args.hyp and (epfl / "hyp.aig").is_file():
            hyp = load_graphs(epfl, ["hyp"])
            hdata = Path(tmp) / "hyp.pt"
            torch.save(hyp, hdata)
            saved = args.warmup
            args.warmup = 0
            r = spawn(sys.executable, "geomask", hdata, args, 1, 1)
            args.warmup = saved
            n = hyp[0]["node_type"].numel()
            print(f"geomask hyp.aig ({n} nodes), one training step: {fmt(r)}")
            if "error" not in r:
                print(f"hyp.aig step under 4 GB: {r['peak_rss_mb'] < 4096} ({r['peak_rss_mb']:.0f} MB peak RSS)")
    if not ref_ok:
        print(f"reference not run: {why}")
        print("ratio graphs/s geomask/reference: n/a")
        return
    ref1 = results["reference"].get(1, {})
    geo = [r for r in results["geomask"].values() if "error" not in r]
    if "error" in ref1 or not ref1 or not geo:
        print(f"reference not measured: {ref1.get('error', 'no batch-1 run')}")
        print("ratio graphs/s geomask/reference: n/a")
        return
    # same losses: the reference's parts (4 gate classes, geomask 5) are on the same scale
    g1 = results["geomask"].get(1, geo[0])
    for k in ("mgm_type", "mgm_degree", "vga_type"):
        a, b = ref1["losses"].get(k, float("nan")), g1["losses"].get(k, float("nan"))
        print(f"loss {k}: reference {a:.3f} geomask {b:.3f} (ratio {b / a:.2f})")
    for bs, r in sorted(results["geomask"].items()):
        if "error" not in r:
            wall = r["graphs_per_s"] / ref1["graphs_per_s"]
            cpu = ref1["cpu_s_per_graph"] / r["cpu_s_per_graph"]
            print(f"ratio geomask batch {bs}/reference batch 1: graphs/s {wall:.2f}, graphs per CPU-second {cpu:.2f}")
    top = max(geo, key=lambda r: r["graphs_per_s"])
    print(f"ratio graphs/s geomask/reference: {top['graphs_per_s'] / ref1['graphs_per_s']:.2f}")


if __name__ == "__main__":
    main()
