"""Benchmark: geomask's 3x3x3 submanifold sparse convolution vs spconv (CPU) and dense conv3d, in one run.

On a ScanNet scan (``*_vert_all.npy``: float rows ``x, y, z, r, g, b``) voxelized with a quick ``unique`` at
each voxel size, for each channel width ``C → C``:

* geomask: kernel-map build alone, forward with the map built (fresh tensor), forward with the cached map,
  forward + backward (cached map) of the layer alone: the backward of a fixed output gradient, no loss (a loss's
  elementwise ops are torch's, and on two threads OpenMP's spinning threads slow those: 2 cm, 32 channels,
  ``square().sum()`` as the loss took 14.8 → 9.9 ms from one thread to two, the layer alone 11.8 → 6.1 ms);
* spconv (``SubMConv3d``, its CPU build, run in a subprocess with ``--spconv-python``, the same weights,
  parity checked): forward with its indice pairs built, and with them cached (its CPU backward needs CUDA);
* dense ``conv3d`` (padding 1) forward + backward (a fixed output gradient too) over the bounding grid, or, when
  that would need more than ``--dense-max-gb``, over a centred crop, with geomask timed on the same crop.

``--scaling T`` adds geomask alone at 1 and at ``T`` threads in alternating rounds (``ratio threads_Tv1_*``: the
speed-up of ``T`` threads over one), and says whether the forward output and both gradients have the same bits at
both thread counts.

Both sides run with ``--threads`` torch threads (default 1: spconv's CPU kernels give wrong sums with more,
which the parity line shows); ``--spconv-threads`` sets spconv's apart (e.g. geomask on 2 cores against spconv
on the one it runs correctly on). Times are the best of ``--repeats`` (the machine may be shared). Ratios come
last, one per line, as ``ratio NAME: X`` with X > 1 meaning geomask is faster (for
``kernel_map_vs_third_fwdbwd``: the map is built in less than a third of one forward + backward; with ``--scaling``
and one thread, both are the best over the first round and the one-thread scaling rounds alike: the first map
builds of a process run slower, 2 cm 4.4 ms against 3.4 ms in later rounds, as the allocator's heap grows).

Usage::

    .venv/bin/python benchmarks/bench_sparse_conv.py --spconv-python PEERS/spconv-venv/bin/python

``--scan`` defaults to the ScanNet scan under ``$GEOMASK_SHARED_DATA`` (``../shared/data`` beside the checkout
without it), ``--spconv-python`` to ``$GEOMASK_SPCONV_PYTHON`` (without either, spconv is skipped).  A missing
scan prints one ``skipped: ...`` line and exits 0.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from geomask.sparse import SparseConv, SparseTensor

# ../shared/data beside the checkout, or $GEOMASK_SHARED_DATA
SHARED = Path(os.environ.get("GEOMASK_SHARED_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data")
DEFAULT_SCAN = SHARED / "scans" / "scannet" / "scene0000_00_vert_all.npy"

SPCONV_SCRIPT = r"""
import json, sys, time, warnings
warnings.filterwarnings("ignore")
import numpy as np, torch
import spconv.pytorch as spconv
torch.set_num_threads(int(sys.argv[3]))
d = np.load(sys.argv[1])
grid, feats, weight, repeats = d["grid"], d["feats"], d["weight"], int(sys.argv[4])
c_in, c_out = weight.shape[1], weight.shape[2]
idx = torch.from_numpy(np.concatenate([np.zeros((len(grid), 1), np.int32), grid.astype(np.int32)], 1))
f = torch.from_numpy(feats)
shape = (grid.max(0) + 1).tolist()
conv = spconv.SubMConv3d(c_in, c_out, 3, bias=False, indice_key="k")
with torch.no_grad():  # ours [K, C_in, C_out] (offsets row-major) -> spconv's [C_out, 3, 3, 3, C_in]
    conv.weight.copy_(torch.from_numpy(weight).reshape(3, 3, 3, c_in, c_out).permute(4, 0, 1, 2, 3))
def best(fn):
    fn()
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter(); fn(); ts.append(time.perf_counter() - t0)
    return min(ts)
with torch.no_grad():
    fresh = lambda: conv(spconv.SparseConvTensor(f, idx, shape, 1))
    t_fresh = best(fresh)
    x = spconv.SparseConvTensor(f, idx, shape, 1)
    out = conv(x)
    t_cached = best(lambda: conv(x))
np.save(sys.argv[2], out.features.numpy())
err = ""
try:
    f2 = f.clone().requires_grad_(True)
    conv(spconv.SparseConvTensor(f2, idx, shape, 1)).features.sum().backward()
except Exception as e:
    err = (type(e).__name__ + ": " + str(e)).splitlines()[0][:160]
print(json.dumps({"fresh": t_fresh, "cached": t_cached, "backward_error": err}))
"""


def best_of(fn: Callable[[], object], repeats: int, warm_up: bool = True) -> float:
    """Best wall time of ``repeats`` calls (after one warm-up call), in seconds."""
    if warm_up:
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def load_scan(path: Path) -> np.ndarray:
    """xyz ``[P, 3]`` float64 of a ``*_vert_all.npy`` scan (rows ``x, y, z, r, g, b``; checked)."""
    arr = np.load(path)
    if arr.ndim != 2 or arr.shape[1] < 3 or not np.issubdtype(arr.dtype, np.floating):
        raise SystemExit(f"{path}: expected float rows with xyz first, got {arr.shape} {arr.dtype}")
    return arr[:, :3].astype(np.float64)


def voxelize(xyz: np.ndarray, voxel: float) -> torch.Tensor:
    """Unique voxel grid coordinates ``[V, 3]`` (int64, origin at the minimum corner, lexicographic order)."""
    grid = torch.from_numpy(np.floor((xyz - xyz.min(0)) / voxel).astype(np.int64))
    return torch.unique(grid, dim=0)


def time_geomask(grid: torch.Tensor, feats: torch.Tensor, weight: torch.Tensor, repeats: int) -> dict:
    c_in, c_out = weight.shape[1], weight.shape[2]
    coords = torch.cat([torch.zeros(len(grid), 1, dtype=torch.long), grid], 1)
    conv = SparseConv(c_in, c_out, 3, bias=False)
    with torch.no_grad():
        conv.weight.copy_(weight)
    res = {"map": best_of(lambda: SparseTensor(coords, feats).kernel_map(3), repeats)}
    with torch.no_grad():
        res["fwd_fresh"] = best_of(lambda: conv(SparseTensor(coords, feats)), repeats)
        x = SparseTensor(coords, feats)
        res["out"] = conv(x).feats
        res["fwd_cached"] = best_of(lambda: conv(x), repeats)
    xg = SparseTensor(coords, feats.clone().requires_grad_(True), cache=x.cache)
    grad_out = torch.randn(len(grid), c_out, generator=torch.Generator().manual_seed(0))

    def fwd_bwd() -> None:
        conv.zero_grad(set_to_none=True)
        xg.feats.grad = None
        conv(xg).feats.backward(grad_out)

    res["fwdbwd"] = best_of(fwd_bwd, repeats)
    res["grads"] = (xg.feats.grad, conv.weight.grad)
    res["edges"] = x.kernel_map(3).index.num_edges
    return res


def time_scaling(
    grid: torch.Tensor, feats: torch.Tensor, weight: torch.Tensor, repeats: int, threads: int, rounds: int
) -> dict[int, dict]:
    """geomask's kernel map, forward (map included) and forward + backward at 1 and at ``threads`` torch threads
    in alternating rounds (the best of each over all rounds: a shared machine's load hits both alike); ``same``:
    whether the forward output and both gradients have the same bits at every thread count, in every round."""
    before = torch.get_num_threads()
    best: dict[int, dict] = {}
    try:
        for _ in range(rounds):
            for n in (1, threads):
                torch.set_num_threads(n)
                res = time_geomask(grid, feats, weight, repeats)
                keep = best.setdefault(n, res)
                for key in ("map", "fwd_fresh", "fwdbwd"):
                    keep[key] = min(keep[key], res[key])
                first = best[1]
                same = torch.equal(res["out"], first["out"]) and all(
                    torch.equal(a, b) for a, b in zip(res["grads"], first["grads"])
                )
                best[1]["same"] = best[1].get("same", True) and same
    finally:
        torch.set_num_threads(before)
    return best


def time_dense(grid: torch.Tensor, feats: torch.Tensor, weight: torch.Tensor, repeats: int) -> float:
    """Forward + backward of dense conv3d (padding 1) over the bounding grid of ``grid``."""
    c_in, c_out = weight.shape[1], weight.shape[2]
    size = (grid.max(0).values + 1).tolist()
    dense = torch.zeros(1, *size, c_in)
    dense[(torch.zeros(len(grid), dtype=torch.long), *grid.unbind(1))] = feats
    dense = dense.movedim(-1, 1).contiguous().requires_grad_(True)
    w = weight.reshape(3, 3, 3, c_in, c_out).permute(4, 3, 0, 1, 2).contiguous().requires_grad_(True)
    grad_out = torch.ones(1, c_out, *size)

    def fwd_bwd() -> None:
        dense.grad = w.grad = None
        F.conv3d(dense, w, padding=1).backward(grad_out)

    return best_of(fwd_bwd, repeats, warm_up=False)


def crop(grid: torch.Tensor, max_voxels: int) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
    """The fullest box of the bounding grid holding at most ``max_voxels`` cells: (mask, shifted grid, box).

    The box keeps the grid's proportions; its corner is the best of a 6 x 6 x 6 lattice of candidates.
    """
    size = (grid.max(0).values + 1).double()
    scale = min(1.0, (max_voxels / float(size.prod())) ** (1 / 3))
    box = torch.clamp((size * scale).floor(), min=1).long()
    room = size.long() - box
    axes = [torch.linspace(0, int(r), 6).round().long().unique() for r in room]
    corners = torch.stack(torch.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3)
    counts = torch.stack([((grid >= c) & (grid < c + box)).all(1).sum() for c in corners])
    lo = corners[int(counts.argmax())]
    mask = ((grid >= lo) & (grid < lo + box)).all(1)
    return mask, grid[mask] - lo, box.tolist()


def run_spconv(python: str, grid, feats, weight, threads: int, repeats: int) -> tuple[dict, np.ndarray] | str:
    with tempfile.TemporaryDirectory() as tmp:
        inp, out = Path(tmp) / "in.npz", Path(tmp) / "out.npy"
        np.savez(inp, grid=grid.numpy(), feats=feats.numpy(), weight=weight.numpy())
        script = Path(tmp) / "spconv_side.py"
        script.write_text(SPCONV_SCRIPT)
        proc = subprocess.run(
            [python, str(script), str(inp), str(out), str(threads), str(repeats)],
            capture_output=True,
            text=True,
            timeout=1800,
            cwd=tmp,
        )
        if proc.returncode != 0:
            return f"spconv subprocess failed: {proc.stderr.strip().splitlines()[-1:]}"
        return json.loads(proc.stdout.strip().splitlines()[-1]), np.load(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scan", type=Path, default=DEFAULT_SCAN, help="a *_vert_all.npy ScanNet scan")
    ap.add_argument("--voxel", type=float, nargs="+", default=[0.02, 0.05])
    ap.add_argument("--channels", type=int, nargs="+", default=[32, 64])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--dense-repeats", type=int, default=1)
    ap.add_argument("--dense-max-gb", type=float, default=2.0, help="memory cap of dense fwd+bwd; crop above it")
    ap.add_argument(
        "--spconv-python",
        default=os.environ.get("GEOMASK_SPCONV_PYTHON"),
        help="a Python with spconv (default: $GEOMASK_SPCONV_PYTHON)",
    )
    ap.add_argument(
        "--threads", type=int, default=1, help="torch threads on both sides (spconv's CPU build races above 1)"
    )
    ap.add_argument(
        "--spconv-threads", type=int, default=None, help="spconv's threads when they should differ from --threads"
    )
    ap.add_argument(
        "--scaling",
        type=int,
        default=0,
        metavar="T",
        help="also time geomask at 1 and at T threads in alternating rounds: ratio threads_Tv1_* (T/1 speed-up)",
    )
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds of --scaling")
    args = ap.parse_args(argv)
    if not args.scan.exists():
        print(f"skipped: scan not found: {args.scan} (pass --scan or set GEOMASK_SHARED_DATA)")
        return 0
    torch.set_num_threads(args.threads)
    xyz = load_scan(args.scan)
    sp_threads = args.threads if args.spconv_threads is None else args.spconv_threads
    print(
        f"scan {args.scan.name}: {len(xyz)} points; torch {torch.__version__}, geomask {args.threads} threads, "
        f"spconv {sp_threads}"
    )
    gen = torch.Generator().manual_seed(0)
    ratios: list[tuple[str, float]] = []
    for voxel in args.voxel:
        grid = voxelize(xyz, voxel)
        size = (grid.max(0).values + 1).tolist()
        tag = f"{round(voxel * 100)}cm"
        print(f"\n[{tag}] {len(grid)} voxels, bounding grid {size}")
        for c in args.channels:
            feats = torch.randn(len(grid), c, generator=gen)
            weight = torch.randn(27, c, c, generator=gen) / math.sqrt(27 * c)
            g = time_geomask(grid, feats, weight, args.repeats)
            print(
                f"  geomask {c}->{c}: kernel map {g['map'] * 1e3:.1f} ms ({g['edges']} edges), "
                f"forward {g['fwd_fresh'] * 1e3:.1f} ms with map / {g['fwd_cached'] * 1e3:.1f} ms cached, "
                f"forward+backward {g['fwdbwd'] * 1e3:.1f} ms"
            )
            name = f"{tag}_{c}"
            map_s, fwdbwd_s = g["map"], g["fwdbwd"]
            if args.scaling > 1:
                sc = time_scaling(grid, feats, weight, args.repeats, args.scaling, args.rounds)
                one, many = sc[1], sc[args.scaling]
                if args.threads == 1:  # the map's and forward+backward's best over every one-thread round alike
                    map_s, fwdbwd_s = min(map_s, one["map"]), min(fwdbwd_s, one["fwdbwd"])
                print(
                    f"  geomask threads 1 -> {args.scaling}: kernel map {one['map'] * 1e3:.1f} -> "
                    f"{many['map'] * 1e3:.1f} ms, forward {one['fwd_fresh'] * 1e3:.1f} -> "
                    f"{many['fwd_fresh'] * 1e3:.1f} ms, forward+backward {one['fwdbwd'] * 1e3:.1f} -> "
                    f"{many['fwdbwd'] * 1e3:.1f} ms; output and gradients bit-identical: "
                    f"{'yes' if one['same'] else 'NO'}"
                )
                for key, label in (("map", "kernel_map"), ("fwd_fresh", "forward"), ("fwdbwd", "fwdbwd")):
                    ratios.append((f"threads_{args.scaling}v1_{label}_{name}", one[key] / many[key]))
            ratios.append((f"kernel_map_vs_third_fwdbwd_{name}", fwdbwd_s / 3 / map_s))
            if args.spconv_python:
                sp = run_spconv(args.spconv_python, grid, feats, weight, sp_threads, args.repeats)
                if isinstance(sp, str):
                    print(f"  spconv: {sp}")
                else:
                    sp_t, sp_out = sp
                    err = float((torch.from_numpy(sp_out) - g["out"]).abs().max())
                    print(
                        f"  spconv  {c}->{c}: forward {sp_t['fresh'] * 1e3:.1f} ms with indice pairs / "
                        f"{sp_t['cached'] * 1e3:.1f} ms cached; max |diff| vs geomask {err:.2e}; "
                        f"backward: {sp_t['backward_error'] or 'ran'}"
                    )
                    ratios.append((f"forward_vs_spconv_{name}", sp_t["fresh"] / g["fwd_fresh"]))
                    ratios.append((f"forward_cached_vs_spconv_cached_{name}", sp_t["cached"] / g["fwd_cached"]))
            else:
                print("  spconv: skipped (no --spconv-python nor GEOMASK_SPCONV_PYTHON)")
            need_gb = float(torch.tensor(size).prod()) * c * 4 * 5 / 2**30
            if need_gb > args.dense_max_gb:
                mask, sub, box = crop(grid, int(args.dense_max_gb * 2**30 / (c * 4 * 5)))
                gc = time_geomask(sub, feats[mask], weight, args.repeats)
                where = f"crop {box} ({int(mask.sum())} voxels; full grid needs ~{need_gb:.1f} GB > cap)"
                dname = f"{name}_crop"
            else:
                sub, gc, where, dname = grid, g, "full bounding grid", name
            td = time_dense(sub, feats[: len(sub)] if sub is grid else feats[mask], weight, args.dense_repeats)
            print(
                f"  dense conv3d forward+backward on {where}: {td * 1e3:.1f} ms "
                f"(geomask on the same sites {gc['fwdbwd'] * 1e3:.1f} ms)"
            )
            ratios.append((f"fwdbwd_vs_dense_conv3d_{dname}", td / gc["fwdbwd"]))
    print()
    for name, value in ratios:
        print(f"ratio {name}: {value:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
