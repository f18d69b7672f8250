"""Benchmark: seconds per GraphMAE pretraining epoch, geomask's ``graphmae`` vs a reference GraphMAE, in one run.

Datasets (raw files under ``../shared/data/graphs``, read by :func:`geomask.datasets.graphs.load_graph_set`):

* ``cora``: ``configs/graphmae_cora.yaml`` (GAT 1,433 → 4 × 128 → 4 × 128, one-head GAT decoder 512 → 1,433,
  mask 0.5, replace 0.05, SCE γ 3, Adam lr 1e-3 / wd 2e-4): one full-graph step per epoch;
* ``proteins``: ``configs/graphmae_proteins.yaml`` (GIN 3 layers, hidden 512, batch norm, one-layer GIN decoder,
  mask 0.5, SCE γ 1, Adam lr 1.5e-4): an epoch is a shuffled pass in batches of 32 graphs, collated each epoch
  as ``geomask.eval.graphs.pretrain`` does (both sides use the same collated PyG batches).

The reference is THUDM/GraphMAE (Hou et al., KDD 2022), the official code, where it can run: its code needs DGL, and
DGL does not load with this torch (2.13; dgl 2.1.0 looks for ``libgraphbolt_pytorch_2.13.0.so``), but it does in an
environment of its own with the torch it was built for.  ``--official DIR --official-python PY`` (or
``$GEOMASK_GRAPHMAE_REFERENCE`` / ``$GEOMASK_GRAPHMAE_PYTHON``: a local copy of THUDM/GraphMAE and the Python of a venv
with ``torch==2.1.2 torchdata==0.7.1 dgl==2.1.0 "numpy<2" "pandas<2.3" scipy scikit-learn pyyaml tqdm tensorboardX
pydantic``)
times the official model, optimiser and epoch loop on the graphs geomask reads (``graphmae_official_epoch.py``, run
by that Python; their ``copy_src`` aliased to DGL 1.x's ``copy_u``), and the ratios are then against it.  Without
them the reference is a faithful PyG / plain-torch re-implementation of their model, written in this file (printed
beside the official one when both run; it is slower than the official code: DGL's fused edge softmax and sparse
products beat PyG's scatter-based ones): their ``GATConv`` (feat dropout, a
bias-free ``fc``, ``attn_l`` / ``attn_r``, LeakyReLU 0.2, edge softmax over in-edges with self-loops, attention
dropout, ``u_mul_e`` + sum as gather → multiply → scatter-add, bias, optional residual / norm / activation, heads
concatenated), their GIN (``(1 + ε) h + Σ`` neighbours, then ``MLP(2)`` with norm and activation, and
``ApplyNodeFunc`` norm + activation except the decoder's last layer; input dropout per layer), their
``encoding_mask_noise`` (``randperm`` masks, ``[MASK]`` token added to zeroed rows, ``replace_rate`` random rows),
``encoder_to_decoder``, re-mask ``rep[mask] = 0`` and ``sce_loss``.  PyG's own ``softmax`` and
``torch_geometric.utils.scatter`` do the edge work, as PyG's GATConv would.

Optimisers: geomask's side is built by :func:`geomask.train.optimizers.build_optimizer` from the config's ``optim``
section, as ``geomask pretrain`` builds it (torch's fused Adam on CPU); the reference keeps plain
``torch.optim.Adam`` (its default for-loop implementation on CPU), as the authors' code does.

Timing: rounds alternate geomask and the PyG re-implementation (the latter first in even rounds), ``--epochs``
epochs a round, after one warm-up epoch each; the official code runs its own rounds the same way just before, in its
own process; the time per epoch is the best round's mean (the machine may be shared), for each thread count of
``--threads``.  Ratios come last: ``ratio graphmae_epoch_pyg_<dataset>`` against the PyG re-implementation, then
``ratio graphmae_epoch_<dataset> geomask/reference: X`` per dataset against the reference (the official code where it
ran for every thread count; the geometric mean over the thread counts), then ``ratio graphmae_epoch
geomask/reference: X`` (the geometric mean of all), X > 1 meaning geomask is faster.

Usage::

    .venv/bin/python benchmarks/bench_graphs.py [--threads 1,2] [--rounds 3] [--epochs 3] [--data DIR]
        [--official GRAPHMAE_DIR --official-python DGL_VENV/bin/python]

``--data`` defaults to ``$GEOMASK_SHARED_DATA/graphs`` (``../shared/data`` beside the checkout without it).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf
from torch import Tensor, nn
from torch_geometric.utils import add_self_loops, remove_self_loops, scatter, softmax

from geomask.datasets.graphs import collate_graph_batch, load_graph_set
from geomask.methods import build_method
from geomask.train.optimizers import build_optimizer

ROOT = Path(__file__).resolve().parents[1]
DATASETS = {"cora": ("Cora", "graphmae_cora.yaml"), "proteins": ("PROTEINS", "graphmae_proteins.yaml")}
OFFICIAL_CONFIG = {"cora": "cora", "proteins": "PROTEINS"}  # the sections of THUDM/GraphMAE's configs.yml


# ---------------------------------------------------------------- the reference (THUDM/GraphMAE, re-implemented)


class RefGATConv(nn.Module):
    """THUDM/GraphMAE's ``GATConv`` on PyG edges (self-loops already in ``edge_index``)."""

    def __init__(self, fin, fout, heads, feat_drop, attn_drop, residual=False, activation=None, norm=None):
        super().__init__()
        self.h, self.c = heads, fout
        self.fc = nn.Linear(fin, fout * heads, bias=False)
        self.attn_l = nn.Parameter(torch.empty(1, heads, fout))
        self.attn_r = nn.Parameter(torch.empty(1, heads, fout))
        self.bias = nn.Parameter(torch.zeros(heads * fout))
        self.feat_drop, self.attn_drop = nn.Dropout(feat_drop), nn.Dropout(attn_drop)
        self.res_fc = (
            (nn.Linear(fin, heads * fout, bias=False) if fin != heads * fout else nn.Identity()) if residual else None
        )
        self.norm = norm(heads * fout) if norm is not None else None
        self.activation = activation
        gain = nn.init.calculate_gain("relu")
        for p in (self.fc.weight, self.attn_l, self.attn_r):
            nn.init.xavier_normal_(p, gain=gain)

    def forward(self, edge_index: Tensor, feat: Tensor) -> Tensor:
        src, dst = edge_index
        h = self.feat_drop(feat)
        ft = self.fc(h).view(-1, self.h, self.c)
        el, er = (ft * self.attn_l).sum(-1), (ft * self.attn_r).sum(-1)
        e = F.leaky_relu(el[src] + er[dst], 0.2)
        a = self.attn_drop(softmax(e, dst, num_nodes=feat.shape[0]))
        rst = scatter(ft[src] * a.unsqueeze(-1), dst, 0, dim_size=feat.shape[0], reduce="sum")
        rst = rst + self.bias.view(1, self.h, self.c)
        if self.res_fc is not None:
            rst = rst + self.res_fc(h).view(h.shape[0], -1, self.c)
        rst = rst.flatten(1)
        if self.norm is not None:
            rst = self.norm(rst)
        return self.activation(rst) if self.activation is not None else rst


class RefGAT(nn.Module):
    def __init__(self, fin, hidden, fout, layers, heads, heads_out, feat_drop, attn_drop, encoding):
        super().__init__()
        dims = [fin] + [hidden * heads] * (layers - 1)
        self.layers = nn.ModuleList()
        for i in range(layers):
            last = i == layers - 1
            act = nn.PReLU() if (not last or encoding) else None
            c, h = (fout, heads_out) if last else (hidden, heads)
            self.layers.append(RefGATConv(dims[i], c, h, feat_drop, attn_drop, activation=act))

    def forward(self, edge_index: Tensor, h: Tensor) -> Tensor:
        for layer in self.layers:
            h = layer(edge_index, h)
        return h


class RefGIN(nn.Module):
    """THUDM/GraphMAE's GIN: ``MLP(2)`` with norm + PReLU inside, ``ApplyNodeFunc`` (norm + PReLU) after it."""

    def __init__(self, fin, hidden, fout, layers, dropout, encoding):
        super().__init__()
        self.dropout = dropout
        self.layers = nn.ModuleList()
        dims = [fin] + [hidden] * (layers - 1) + [fout]
        for i in range(layers):
            last = i == layers - 1
            a, b = dims[i], dims[i + 1]
            mlp = nn.Sequential(nn.Linear(a, hidden), nn.BatchNorm1d(hidden), nn.PReLU(), nn.Linear(hidden, b))
            if not last or encoding:
                mlp = nn.Sequential(mlp, nn.BatchNorm1d(b), nn.PReLU())
            self.layers.append(mlp)

    def forward(self, edge_index: Tensor, h: Tensor) -> Tensor:
        src, dst = edge_index
        for mlp in self.layers:
            h = F.dropout(h, self.dropout, self.training)
            h = mlp(h + scatter(h[src], dst, 0, dim_size=h.shape[0], reduce="sum"))
        return h


class RefGraphMAE(nn.Module):
    """THUDM/GraphMAE's ``PreModel`` (masking, encoder, ``encoder_to_decoder``, re-mask, decoder, SCE)."""

    def __init__(self, kind, fin, hidden, layers, heads, mask_rate, replace_rate, gamma, in_drop, attn_drop=0.1):
        super().__init__()
        self.kind, self.mask_rate, self.replace_rate, self.gamma = kind, mask_rate, replace_rate, gamma
        if kind == "gat":
            self.encoder = RefGAT(fin, hidden // heads, hidden // heads, layers, heads, heads, in_drop, attn_drop, True)
            self.decoder = RefGAT(hidden, hidden, fin, 1, heads, 1, in_drop, attn_drop, False)
        else:
            self.encoder = RefGIN(fin, hidden, hidden, layers, in_drop, True)
            self.decoder = RefGIN(hidden, hidden, fin, 1, in_drop, False)
        self.enc_mask_token = nn.Parameter(torch.zeros(1, fin))
        self.encoder_to_decoder = nn.Linear(hidden, hidden, bias=False)

    def forward(self, edge_index: Tensor, x: Tensor) -> Tensor:
        n = x.shape[0]
        perm = torch.randperm(n)
        k = int(self.mask_rate * n)
        mask_nodes = perm[:k]
        out_x = x.clone()
        if self.replace_rate > 0:
            pm = torch.randperm(k)
            token_nodes = mask_nodes[pm[: int((1 - self.replace_rate) * k)]]
            noise_nodes = mask_nodes[pm[-int(self.replace_rate * k) :]]
            out_x[token_nodes] = 0.0
            out_x[noise_nodes] = x[torch.randperm(n)[: int(self.replace_rate * k)]]
        else:
            token_nodes = mask_nodes
            out_x[mask_nodes] = 0.0
        out_x[token_nodes] += self.enc_mask_token
        rep = self.encoder_to_decoder(self.encoder(edge_index, out_x))
        rep[mask_nodes] = 0
        recon = self.decoder(edge_index, rep)
        a, b = F.normalize(recon[mask_nodes], dim=-1), F.normalize(x[mask_nodes], dim=-1)
        return (1 - (a * b).sum(-1)).pow_(self.gamma).mean()


# ---------------------------------------------------------------- epochs


def _configs(name: str) -> dict:
    return OmegaConf.to_container(OmegaConf.load(ROOT / "configs" / DATASETS[name][1]), resolve=True)


def build_pair(name: str, gs):
    cfg = _configs(name)
    m = dict(cfg["method"])
    m.pop("name")
    m["in_dim"] = gs.num_features
    torch.manual_seed(0)
    ours = build_method("graphmae", **m)
    ratio = m["masker"]["ratio"]
    ref = RefGraphMAE(
        m["encoder"], gs.num_features, m["hidden"], m["layers"], m.get("gat_heads", 1), ratio,
        m.get("replace_rate", 0.0), m["loss"]["gamma"], m["dropout"], m.get("attn_drop", 0.1),
    )  # fmt: skip
    o = cfg["optim"]
    # geomask's side: the optimiser geomask's training builds (fused Adam on CPU); the reference: plain torch Adam
    opt = build_optimizer(o["name"], ours.parameters(), float(o["lr"]), weight_decay=float(o["weight_decay"]))
    opt_ref = torch.optim.Adam(ref.parameters(), lr=o["lr"], weight_decay=o["weight_decay"])
    return (ours, opt), (ref, opt_ref), int(cfg["data"]["batch_size"])


def batches(gs, bs: int, gen: torch.Generator):
    graphs = gs.graphs()
    if gs.level == "node":
        return [collate_graph_batch(graphs)]
    order = torch.randperm(len(graphs), generator=gen).tolist()
    return [collate_graph_batch([graphs[i] for i in order[j : j + bs]]) for j in range(0, len(order), bs)]


def epoch_geomask(model, opt, gs, bs, gen) -> None:
    for b in batches(gs, bs, gen):
        loss = model(b, gen)["loss"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()


def epoch_reference(model, opt, gs, bs, gen, loops: bool) -> None:
    for b in batches(gs, bs, gen):
        ei = b.edge_index
        if loops:  # their node-task preprocessing: remove_self_loop().add_self_loop()
            ei = add_self_loops(remove_self_loops(ei)[0], num_nodes=b.num_nodes)[0]
        loss = model(ei, b.x)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()


def bench(name: str, data: Path, threads: int, rounds: int, epochs: int) -> tuple[float, float]:
    torch.set_num_threads(threads)
    gs = load_graph_set(data / DATASETS[name][0])
    (ours, o1), (ref, o2), bs = build_pair(name, gs)
    ours.train()
    ref.train()
    gen = torch.Generator().manual_seed(0)
    loops = ours.encoder.kind == "gat"
    runs = {
        "geomask": lambda: epoch_geomask(ours, o1, gs, bs, gen),
        "reference": lambda: epoch_reference(ref, o2, gs, bs, gen, loops),
    }
    for fn in runs.values():
        fn()  # warm-up (numba compilation, allocator)
    best = {k: math.inf for k in runs}
    for r in range(rounds):
        for key in ("reference", "geomask") if r % 2 == 0 else ("geomask", "reference"):
            t0 = time.perf_counter()
            for _ in range(epochs):
                runs[key]()
            best[key] = min(best[key], (time.perf_counter() - t0) / epochs)
    return best["geomask"], best["reference"]


def bench_official(name: str, data: Path, threads: int, rounds: int, epochs: int, code: Path, python: str) -> dict:
    """The official code's seconds per epoch (``graphmae_official_epoch.py`` under ``python``, DGL's environment), on
    the graphs geomask reads from ``data``; ``{"error": line}`` where it does not run."""
    gs = load_graph_set(data / DATASETS[name][0])
    with tempfile.TemporaryDirectory() as tmp:
        npz = Path(tmp) / f"{name}.npz"
        np.savez(npz, **{k: gs.tensors[k].numpy() for k in ("x", "edge_index", "node_ptr", "edge_ptr")})
        cmd = [python, str(Path(__file__).with_name("graphmae_official_epoch.py")), "--code", str(code)]
        cmd += ["--data", str(npz), "--config", OFFICIAL_CONFIG[name], "--threads", str(threads)]
        cmd += ["--rounds", str(rounds), "--epochs", str(epochs)]
        env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=3600)
    if proc.returncode != 0:
        lines = (proc.stderr or proc.stdout).strip().splitlines()
        return {"error": lines[-1] if lines else f"exit status {proc.returncode}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", default="1,2", help="comma-separated intra-op thread counts")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=3, help="epochs per round")
    ap.add_argument("--datasets", default="cora,proteins")
    shared = Path(os.environ.get("GEOMASK_SHARED_DATA") or ROOT.parent / "shared" / "data")
    ap.add_argument(
        "--data", type=Path, default=shared / "graphs", help="raw graph folders ($GEOMASK_SHARED_DATA/graphs)"
    )
    ap.add_argument(
        "--official",
        type=Path,
        default=os.environ.get("GEOMASK_GRAPHMAE_REFERENCE"),
        help="a local copy of THUDM/GraphMAE ($GEOMASK_GRAPHMAE_REFERENCE): time the official code too",
    )
    ap.add_argument(
        "--official-python",
        default=os.environ.get("GEOMASK_GRAPHMAE_PYTHON"),
        help="the Python of an environment with DGL for --official ($GEOMASK_GRAPHMAE_PYTHON)",
    )
    args = ap.parse_args(argv)
    official = args.official is not None and args.official_python is not None
    if (args.official is None) != (args.official_python is None):
        print("skipped official: --official and --official-python go together")
    if not args.data.is_dir():
        print(f"skipped: {args.data}: no graph data (pass --data or set GEOMASK_SHARED_DATA)")
        return 0
    names = [s for s in args.datasets.split(",") if s]
    for s in names:
        if s not in DATASETS:
            print(f"unknown dataset {s!r} (valid: {', '.join(DATASETS)})", file=sys.stderr)
            return 2
    threads = [int(t) for t in args.threads.split(",")]
    ratios: dict[str, list[float]] = {s: [] for s in names}  # against the PyG re-implementation
    vs_official: dict[str, list[float]] = {s: [] for s in names}
    for s in names:
        for t in threads:
            off = None
            if official:
                off = bench_official(s, args.data, t, args.rounds, args.epochs, args.official, args.official_python)
                if "error" in off:
                    print(f"{s:<9} threads {t}: official code did not run: {off['error']}")
                    off = None
            g, r = bench(s, args.data, t, args.rounds, args.epochs)
            ratios[s].append(r / g)
            line = f"{s:<9} threads {t}: geomask {g:.3f} s/epoch  PyG re-implementation {r:.3f} s/epoch"
            line += f"  ratio {r / g:.2f}"
            if off is not None:
                vs_official[s].append(off["seconds"] / g)
                line += f"  official {off['seconds']:.3f} s/epoch (torch {off['torch']}, DGL {off['dgl']})"
                line += f"  ratio {off['seconds'] / g:.2f}"
            print(line)

    def geo_mean(values) -> float:
        values = list(values)
        return math.exp(sum(map(math.log, values)) / len(values))

    use_official = official and all(len(v) == len(threads) for v in vs_official.values())
    for s in names:
        print(f"ratio graphmae_epoch_pyg_{s} geomask/pyg-reimplementation: {geo_mean(ratios[s]):.2f}")
    main_ratios = vs_official if use_official else ratios
    label = "official THUDM/GraphMAE" if use_official else "the PyG re-implementation"
    print(f"(reference: {label})")
    for s in names:
        print(f"ratio graphmae_epoch_{s} geomask/reference: {geo_mean(main_ratios[s]):.2f}")
    print(f"ratio graphmae_epoch geomask/reference: {geo_mean(geo_mean(v) for v in main_ratios.values()):.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
