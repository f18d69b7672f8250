"""FPS of S centres from N points plus k-NN grouping, batch B: geomask against open3d and fpsample.

The work of every contender: for each cloud, farthest point sampling from index 0, the k nearest points of
every centre, and the grouped points re-centred (``[B, S, k, 3]``).  Peers do FPS with
``open3d.geometry.PointCloud.farthest_point_down_sample`` (kNN with open3d's ``core.nns`` search) and with
``fpsample.bucket_fps_kdline_sampling`` (kNN with scipy's ``cKDTree``); fpsample is not a geomask dependency
and runs in its own interpreter (``--fpsample-python``) on the same data, written to a temporary file.

Data: ``geomask.points.synthetic`` objects (surfaces of primitive shapes, unit ball), seeded.
Times are the minimum over ``--repeats`` runs after one warm-up.  Usage::

    python benchmarks/bench_fps_knn.py [--fpsample-python PEERS/fpsample-venv/bin/python]

``--fpsample-python`` defaults to ``$GEOMASK_FPSAMPLE_PYTHON``; without either, fpsample is skipped (one line).
Without open3d only geomask is timed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from geomask.ops.fps import farthest_point_sampling
from geomask.points.patches import group_points
from geomask.points.synthetic import synthetic_objects

FPSAMPLE_SCRIPT = r"""
import json, sys, time
import numpy as np
import fpsample
from scipy.spatial import cKDTree
pos = np.load(sys.argv[1]); s, k, reps = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
def run():
    idx, groups = [], []
    for p in pos:
        c = fpsample.bucket_fps_kdline_sampling(p, s, h=7, start_idx=0).astype(np.int64)
        _, nb = cKDTree(p).query(p[c], k=k)
        groups.append(p[nb] - p[c][:, None, :])
        idx.append(c)
    return np.stack(idx), np.stack(groups)
run()
times = []
for _ in range(reps):
    t = time.perf_counter(); idx, g = run(); times.append(time.perf_counter() - t)
np.save(sys.argv[5], idx)
print(json.dumps({"time": min(times), "shape": list(g.shape)}))
"""


def _rowsort(a: np.ndarray) -> np.ndarray:
    return a[np.lexsort(a.T[::-1])]


def bench_geomask(pos: torch.Tensor, s: int, k: int, reps: int) -> tuple[float, np.ndarray]:
    group_points(pos, s, k)
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        out = group_points(pos, s, k)
        times.append(time.perf_counter() - t)
    return min(times), out.center_index.numpy()


def bench_open3d(pos: np.ndarray, s: int, k: int, reps: int) -> tuple[float, np.ndarray]:
    import open3d as o3d

    def run():
        idx, groups = [], []
        for p in pos:
            pc = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(p.astype(np.float64)))
            centres = np.asarray(pc.farthest_point_down_sample(s).points, dtype=np.float32)
            nns = o3d.core.nns.NearestNeighborSearch(o3d.core.Tensor(p))
            nns.knn_index()
            nb, _ = nns.knn_search(o3d.core.Tensor(centres), k)
            groups.append(p[nb.numpy()] - centres[:, None, :])
            idx.append(centres)
        return np.stack(idx), np.stack(groups)

    run()
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        centres, _ = run()
        times.append(time.perf_counter() - t)
    return min(times), centres


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--points", type=int, default=8192)
    ap.add_argument("--centres", type=int, default=512)
    ap.add_argument("--k", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--fpsample-python",
        default=os.environ.get("GEOMASK_FPSAMPLE_PYTHON"),
        help="a Python with fpsample and scipy (default: $GEOMASK_FPSAMPLE_PYTHON)",
    )
    args = ap.parse_args(argv)

    pos_t, _ = synthetic_objects(args.batch, args.points, seed=args.seed)
    pos = pos_t.numpy()
    print(f"data: {args.batch} synthetic objects x {args.points} points; FPS {args.centres} + {args.k}-NN")
    print(f"torch threads {torch.get_num_threads()}")

    t_geo, idx_geo = bench_geomask(pos_t, args.centres, args.k, args.repeats)
    print(f"geomask   fps+knn: {t_geo * 1e3:8.1f} ms")
    t_o3d, centres_o3d = bench_open3d(pos, args.centres, args.k, args.repeats)
    ours = np.take_along_axis(pos, idx_geo[..., None], 1)
    same = np.mean([np.array_equal(_rowsort(a), _rowsort(b)) for a, b in zip(ours, centres_o3d)])
    print(f"open3d    fps+knn: {t_o3d * 1e3:8.1f} ms   (same centre set as geomask: {same:.3f})")

    t_fps = None
    py = Path(args.fpsample_python) if args.fpsample_python else None
    if py is not None and py.exists():
        with tempfile.TemporaryDirectory() as tmp:
            data, out = Path(tmp) / "pos.npy", Path(tmp) / "idx.npy"
            np.save(data, pos)
            cmd = [str(py), "-c", FPSAMPLE_SCRIPT, str(data), str(args.centres), str(args.k), str(args.repeats)]
            res = subprocess.run([*cmd, str(out)], capture_output=True, text=True, check=False)
            if res.returncode == 0:
                t_fps = json.loads(res.stdout.strip().splitlines()[-1])["time"]
                # fpsample's kdline variant picks its own start; compare with geomask from that start
                theirs = np.load(out)
                mine = farthest_point_sampling(pos_t, args.centres, start=torch.from_numpy(theirs[:, 0])).numpy()
                same = np.mean(np.sort(theirs, 1) == np.sort(mine, 1))
                print(f"fpsample  fps+knn: {t_fps * 1e3:8.1f} ms   (same centre set as geomask: {same:.3f})")
            else:
                print(f"fpsample failed: {res.stderr.strip().splitlines()[-1:]}", file=sys.stderr)
    else:
        why = f"no interpreter at {py}" if py is not None else "no --fpsample-python nor GEOMASK_FPSAMPLE_PYTHON"
        print(f"fpsample skipped: {why}")

    print(f"ratio fps+knn geomask/open3d: {t_o3d / t_geo:.2f}")
    if t_fps is not None:
        print(f"ratio fps+knn geomask/fpsample: {t_fps / t_geo:.2f}")


if __name__ == "__main__":
    main()
