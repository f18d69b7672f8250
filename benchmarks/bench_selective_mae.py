"""Benchmark: one training step (forward + backward + AdamW) of ``selective_mae`` vs ``mae`` at equal size, in one run.

Sizes (``--sizes``):

* ``cpu32``: the shipped CPU configs' model (ViT/4 of width 128, 4 blocks, 4 heads, on 32 x 32 images, batch 64,
  decoder 64 wide, 2 blocks);
* ``base224``: ViT-B/16 at 224 with the 8-block 512-wide decoder, batch 2 (the paper's model).

Both methods with their own defaults: MAE masks 75 % and decodes all ``1 + L`` tokens; SelectiveMAE masks 85 %
(PSTS) and decodes ``1 + K + R`` tokens (``R`` = 25 % of ``L``), so its step also pays for the gradient-energy score
and the similarity expansion.  Rounds alternate the two (MAE first in even rounds), ``--steps`` steps a round; the
time per step is the best round's mean (a shared machine: the process CPU time per step is printed beside it).
The last line is ``ratio selective_mae_step mae/selective: X`` for the last size: MAE's time over SelectiveMAE's, so
X > 1 means SelectiveMAE is faster (the training speed-up at equal steps).

Usage::

    .venv/bin/python benchmarks/bench_selective_mae.py [--sizes cpu32 base224] [--threads 1] [--rounds 3] [--steps 2]
"""

from __future__ import annotations

import argparse
import time

import torch

from geomask.grids import GridBatch
from geomask.methods import build_method

SIZES = {
    # name: (image, patch, width, depth, heads, decoder width, decoder depth, decoder heads, batch)
    "cpu32": (32, 4, 128, 4, 4, 64, 2, 4, 64),
    "base224": (224, 16, 768, 12, 12, 512, 8, 16, 2),
}


def build(name: str, size: str, device: torch.device):
    image, patch, dim, depth, heads, ddim, ddepth, dheads, _ = SIZES[size]
    torch.manual_seed(0)
    kw = dict(image_size=image, patch_size=patch, dim=dim, depth=depth, heads=heads)
    kw.update(decoder_dim=ddim, decoder_depth=ddepth, decoder_heads=dheads)
    return build_method(name, **kw).to(device)


def step_fn(method, x: GridBatch):
    opt = torch.optim.AdamW(method.parameters(), lr=1e-4)
    count = [0]

    def step() -> None:
        loss = method(x, torch.Generator().manual_seed(count[0]))["loss"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        count[0] += 1

    return step


def timed(step, steps: int, device: torch.device) -> tuple[float, float]:
    """Mean wall and process-CPU milliseconds per step over ``steps`` steps."""
    if device.type == "cuda":
        torch.cuda.synchronize()
    w, c = time.perf_counter(), time.process_time()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - w) * 1e3 / steps, (time.process_time() - c) * 1e3 / steps


def bench_selective_mae(size: str, rounds: int = 3, steps: int = 2, device: str = "cpu") -> dict[str, float]:
    """ms per training step of ``mae`` and ``selective_mae`` at ``size`` (best round) and the speed-up (MAE's time
    over SelectiveMAE's)."""
    dev = torch.device(device)
    image, batch = SIZES[size][0], SIZES[size][-1]
    x = GridBatch(torch.rand(batch, 3, image, image, generator=torch.Generator().manual_seed(0)).to(dev), 1)
    steps_of = {name: step_fn(build(name, size, dev), x) for name in ("mae", "selective_mae")}
    for step in steps_of.values():  # warm-up
        step()
    best = {name: (float("inf"), float("inf")) for name in steps_of}
    for r in range(rounds):
        order = ("mae", "selective_mae") if r % 2 == 0 else ("selective_mae", "mae")
        for name in order:
            t = timed(steps_of[name], steps, dev)
            best[name] = min(best[name], t)
    out = {f"{n}_ms": best[n][0] for n in best} | {f"{n}_cpu_ms": best[n][1] for n in best}
    out["ratio"] = best["mae"][0] / best["selective_mae"][0]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    ratio = None
    for size in args.sizes:
        r = bench_selective_mae(size, args.rounds, args.steps, args.device)
        print(
            f"{size}: mae {r['mae_ms']:.1f} ms/step (cpu {r['mae_cpu_ms']:.1f}), selective_mae "
            f"{r['selective_mae_ms']:.1f} ms/step (cpu {r['selective_mae_cpu_ms']:.1f}), speed-up {r['ratio']:.2f}"
        )
        ratio = r["ratio"]
    print(f"ratio selective_mae_step mae/selective: {ratio:.2f}")


if __name__ == "__main__":
    main()
