"""Benchmark: SparK's encoder on the visible sites (geomask's sparse ResNet) vs SparK's masked dense emulation.

One ResNet-18 (``geomask.nn.sparse_cnn``), 224 x 224 images, batch 8, 60 % of the 7 x 7 coarsest cells masked
(``random_tokens``: 29 of 49, so 41 % of the pixels are visible).  Two ways to run the same weights:

* **sparse** -- the network on the visible pixel sites only (:func:`geomask.grids.to_sparse`): kernel maps built
  for every new mask (included in the time), no work on the masked sites;
* **dense** -- its dense twin (:meth:`SparseCNN.to_dense`, ``torch.nn.Conv2d`` etc.) as SparK's own code runs
  it: the whole grid convolved, the output re-masked after every convolution and pooling, BatchNorm over the
  active sites only (``SparseCNN.forward(x, active)``).

Both give the same features (checked before timing: the largest difference is printed).  A step is forward +
backward of the sum of every stage's output; a new mask every step, drawn the same for both.  Rounds alternate the
two, ``--steps`` steps a round; the time per step is the best round's mean (the machine may be shared).  The ratio
comes last: ``ratio spark_encoder sparse/dense: X`` (dense time / sparse time; X > 1: the sparse encoder is
faster; the goal is 1.5, since 60 % of the work is skipped).  A forward-only ratio is printed before it.

Usage::

    .venv/bin/python benchmarks/bench_spark.py [--threads 0] [--rounds 5] [--steps 2] [--batch 8] [--size 224]
"""

from __future__ import annotations

import argparse
import time

import torch

from geomask.grids import patch_mask_to_sites, to_sparse
from geomask.masking import RandomTokenMasker, TokenGridLayout
from geomask.nn.sparse_cnn import build_sparse_cnn


def masks(batch: int, grid: int, step: int) -> torch.Tensor:
    """``[B, grid, grid]`` True = masked, 60 % of every image's cells (the same for both runs of a step)."""
    layout = TokenGridLayout(batch, (grid, grid))
    return RandomTokenMasker(0.6)(layout, torch.Generator().manual_seed(step)).view(batch, grid, grid)


def run(net, twin, x: torch.Tensor, mask: torch.Tensor, mode: str, backward: bool) -> None:
    ratio = net.downsample_ratio
    if mode == "sparse":
        outs = net(to_sparse(x, patch_mask_to_sites(mask, ratio, mask.shape[1:])))
        total = sum(o.feats.sum() for o in outs)
    else:
        outs = twin(x, ~mask)
        total = sum(o.sum() for o in outs)
    if backward:
        total.backward()


def timed(net, twin, x, mode: str, backward: bool, steps: int, offset: int) -> float:
    grid = x.size(2) // net.downsample_ratio
    start = time.perf_counter()
    for s in range(steps):
        run(net, twin, x, masks(x.size(0), grid, offset + s), mode, backward)
    return (time.perf_counter() - start) / steps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--size", type=int, default=224)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    net = build_sparse_cnn("resnet18")
    twin = net.to_dense()
    x = torch.randn(args.batch, 3, args.size, args.size, generator=torch.Generator().manual_seed(1))
    grid = args.size // net.downsample_ratio
    m = masks(args.batch, grid, 0)
    with torch.no_grad():
        outs = net(to_sparse(x, patch_mask_to_sites(m, net.downsample_ratio, (grid, grid))))
        douts = twin(x, ~m)
    diff = max(float((o.to_dense(d.shape[2:], (0, 0)) - d).abs().max()) for o, d in zip(outs, douts))
    visible = float((~m).float().mean())
    print(
        f"resnet18 at {args.size}, batch {args.batch}, {grid}x{grid} cells, {visible:.0%} visible; "
        f"{torch.get_num_threads()} threads; sparse vs emulation max |diff| {diff:.1e}"
    )
    results = {}
    for backward in (False, True):
        best = {"sparse": float("inf"), "dense": float("inf")}
        for r in range(args.rounds):
            order = ("sparse", "dense") if r % 2 else ("dense", "sparse")
            for mode in order:
                if backward:
                    t = timed(net, twin, x, mode, True, args.steps, 100 * r)
                else:
                    with torch.no_grad():
                        t = timed(net, twin, x, mode, False, args.steps, 100 * r)
                best[mode] = min(best[mode], t)
        kind = "forward+backward" if backward else "forward"
        print(f"{kind}: sparse {best['sparse'] * 1e3:.0f} ms/step, dense emulation {best['dense'] * 1e3:.0f} ms/step")
        results[kind] = best["dense"] / best["sparse"]
    print(f"ratio spark_encoder_forward sparse/dense: {results['forward']:.2f}")
    print(f"ratio spark_encoder sparse/dense: {results['forward+backward']:.2f}")


if __name__ == "__main__":
    main()
