"""Benchmark: one MAE training step (forward + backward + AdamW) of geomask's ``mae`` vs Hugging Face's
``ViTMAEForPreTraining`` at the same size, with the same weights, in one run.

Sizes (``--sizes``):

* ``tiny32``: ViT-Ti/4 (width 192, 12 blocks, 3 heads) on 32 x 32 images, batch 64, decoder 128 wide, 2 blocks;
* ``small224``: ViT-S/16 (width 384, 12 blocks, 6 heads) on 224 x 224 images, batch 8, decoder 256 wide, 4 blocks.

Both models: mask ratio 0.75, ``norm_pix`` loss, LayerNorm eps 1e-6, Hugging Face's ``sdpa`` attention; geomask's
weights are Hugging Face's converted (:mod:`geomask.nn.convert_hf`), and the first step's losses are checked equal
on the same noise before timing.  A step is each library's own: geomask's ``method(batch, generator)`` (its masker
draws the mask), Hugging Face's ``model(pixel_values)`` (it draws its noise), then ``backward`` and
``AdamW.step``.  Rounds alternate the two (Hugging Face first in even rounds), ``--steps`` steps a round; the time
per step is the best round's mean (the machine may be shared; the process CPU time per step is printed beside it,
a steadier measure on a busy machine with one thread).  Ratios come last, one per size, as
``ratio mae_<size> geomask/hf: X``, then ``ratio mae: X`` (their geometric mean), X > 1 meaning geomask is faster.

Usage::

    .venv/bin/python benchmarks/bench_mae.py [--threads 1] [--rounds 7] [--steps 1] [--device cpu]
"""

from __future__ import annotations

import argparse
import math
import time

import torch

from geomask.grids import GridBatch, sincos_pos_embed
from geomask.methods import build_method
from geomask.nn.convert_hf import convert_vit_mae, mae_keywords

SIZES = {
    # name: (image, patch, width, depth, heads, decoder width, decoder depth, decoder heads, batch)
    "tiny32": (32, 4, 192, 12, 3, 128, 2, 4, 64),
    "small224": (224, 16, 384, 12, 6, 256, 4, 8, 8),
}


def build_pair(size: str, device: torch.device):
    """Hugging Face's model and geomask's with the same weights (fixed positions set to MAE's sin-cos)."""
    from transformers import ViTMAEConfig, ViTMAEForPreTraining

    img, patch, dim, depth, heads, ddim, ddepth, dheads, _ = SIZES[size]
    cfg = ViTMAEConfig(
        image_size=img,
        patch_size=patch,
        hidden_size=dim,
        num_hidden_layers=depth,
        num_attention_heads=heads,
        intermediate_size=4 * dim,
        decoder_hidden_size=ddim,
        decoder_num_hidden_layers=ddepth,
        decoder_num_attention_heads=dheads,
        decoder_intermediate_size=4 * ddim,
        mask_ratio=0.75,
        norm_pix_loss=True,
        layer_norm_eps=1e-6,
        attn_implementation="sdpa",
    )
    torch.manual_seed(0)
    hf = ViTMAEForPreTraining(cfg)
    grid = (img // patch, img // patch)
    with torch.no_grad():  # random init leaves them at zero in some transformers versions
        hf.vit.embeddings.position_embeddings.copy_(sincos_pos_embed(dim, grid, True)[None])
        hf.decoder.decoder_pos_embed.copy_(sincos_pos_embed(ddim, grid, True)[None])
    ours = build_method("mae", **mae_keywords(cfg))
    ours.load_state_dict(convert_vit_mae(hf.state_dict()))
    return hf.to(device).train(), ours.to(device).train()


def check_parity(hf, ours, x: torch.Tensor) -> float:
    noise = torch.rand(x.size(0), ours.encoder.image_grid[0] * ours.encoder.image_grid[1], device=x.device)
    with torch.no_grad():
        a = float(hf(x, noise=noise).loss)
        b = float(ours.reconstruct(x, noise=noise).loss)
    return abs(a - b)


def timed_steps(step, steps: int, device: torch.device) -> tuple[float, float]:
    """Wall-clock and process CPU seconds per step."""
    if device.type == "cuda":
        torch.cuda.synchronize()
    t, c = time.perf_counter(), time.process_time()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - t) / steps, (time.process_time() - c) / steps


def alternate(step_hf, step_gm, rounds: int, steps: int, device: torch.device) -> tuple[list, list]:
    """``(hf, geomask)`` lists of ``(wall, CPU)`` seconds per step, one per round, the two sides alternating (Hugging
    Face first in even rounds) after one warm-up step each."""
    step_hf(), step_gm()  # warm-up
    t_hf, t_gm = [], []
    for r in range(rounds):
        order = [(step_hf, t_hf), (step_gm, t_gm)]
        for fn, out in order if r % 2 == 0 else order[::-1]:
            out.append(timed_steps(fn, steps, device))
    return t_hf, t_gm


def bench(size: str, rounds: int, steps: int, device: torch.device) -> tuple[float, float]:
    hf, ours = build_pair(size, device)
    img, batch = SIZES[size][0], SIZES[size][-1]
    x = torch.randn(batch, 3, img, img, generator=torch.Generator().manual_seed(1)).to(device)
    diff = check_parity(hf, ours, x)
    opt_hf = torch.optim.AdamW(hf.parameters(), lr=1.5e-4, betas=(0.9, 0.95), weight_decay=0.05)
    opt_gm = torch.optim.AdamW(ours.parameters(), lr=1.5e-4, betas=(0.9, 0.95), weight_decay=0.05)
    gen = torch.Generator(device=device).manual_seed(0)
    data = GridBatch(x, SIZES[size][1])

    def step_hf():
        opt_hf.zero_grad(set_to_none=True)
        hf(x).loss.backward()
        opt_hf.step()

    def step_gm():
        opt_gm.zero_grad(set_to_none=True)
        ours(data, gen)["loss"].backward()
        opt_gm.step()

    t_hf, t_gm = alternate(step_hf, step_gm, rounds, steps, device)
    best_hf, best_gm = min(t for t, _ in t_hf), min(t for t, _ in t_gm)
    cpu_hf, cpu_gm = min(c for _, c in t_hf), min(c for _, c in t_gm)
    print(
        f"mae {size} (batch {batch}): geomask {best_gm * 1e3:.1f} ms/step, hf {best_hf * 1e3:.1f} ms/step "
        f"(CPU time geomask {cpu_gm * 1e3:.1f}, hf {cpu_hf * 1e3:.1f}; wall per round geomask "
        f"{[round(t * 1e3) for t, _ in t_gm]}, hf {[round(t * 1e3) for t, _ in t_hf]}); "
        f"first-step loss |diff| on the same noise {diff:.2e}",
        flush=True,
    )
    return best_gm, best_hf


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES))
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--steps", type=int, default=1, help="steps per round")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    try:
        import transformers
    except ImportError:
        print("skipped: transformers is not installed")
        return
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    print(
        f"torch {torch.__version__}, transformers {transformers.__version__}, device {device}, "
        f"{torch.get_num_threads()} threads",
        flush=True,
    )
    ratios = {}
    for size in args.sizes:
        t_gm, t_hf = bench(size, args.rounds, args.steps, device)
        ratios[size] = t_hf / t_gm
    for size, r in ratios.items():
        print(f"ratio mae_{size} geomask/hf: {r:.2f}")
    print(f"ratio mae: {math.exp(sum(math.log(r) for r in ratios.values()) / len(ratios)):.2f}")


if __name__ == "__main__":
    main()
