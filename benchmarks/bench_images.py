"""Benchmark: issue #12's three image speed goals in one run, ratios last.

* ``mae_step``: one MAE training step (forward + backward + AdamW) of geomask's ``mae`` against Hugging Face's
  ``ViTMAEForPreTraining`` at the same size with the same weights (:mod:`bench_mae`'s sizes and protocol);
* ``simmim_step``: one SimMIM training step of geomask's ``simmim`` against Hugging Face's
  ``ViTForMaskedImageModeling`` with the same weights (:func:`geomask.nn.convert_hf.convert_vit_mim`), at the same
  sizes (``tiny32``: ViT-Ti/4 on 32 x 32, batch 64, 8-pixel mask patches; ``small224``: ViT-S/16 on 224 x 224,
  batch 8, 32-pixel mask patches; ratio 0.6).  Each side draws a new SimMIM mask every step (Hugging Face has no
  mask generator: its step calls geomask's :func:`~geomask.masking.simmim_mask`, the same function SimMIM's
  masker uses), the first step's losses are checked equal on the same mask before timing;
* ``spark_encoder``: SparK's ResNet-18 encoder on the visible sites of 224-pixel images at ratio 0.6, batch 8,
  against the same weights run as SparK's masked dense emulation (:mod:`bench_spark`'s protocol).

Rounds alternate the two sides; the time per step is the best round's mean (the machine may be shared).  The last
lines are ``ratio mae_step geomask/hf: X``, ``ratio simmim_step geomask/hf: X`` (geometric means over the sizes)
and ``ratio spark_encoder sparse/dense: X``; X > 1 means geomask (the sparse encoder) is faster.  Goals: 1.0,
1.0, 1.5.

Usage::

    .venv/bin/python benchmarks/bench_images.py [--threads 1] [--rounds 7] [--sizes tiny32 small224] [--skip-spark]
"""

from __future__ import annotations

import argparse
import math
import subprocess
import sys
from pathlib import Path

import torch

from geomask.grids import GridBatch
from geomask.masking import simmim_mask
from geomask.methods import build_method
from geomask.nn.convert_hf import convert_vit_mim, simmim_keywords

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_mae import SIZES, alternate  # noqa: E402
from bench_mae import bench as mae_bench  # noqa: E402

HERE = Path(__file__).resolve().parent


def _mask_patch(size: str) -> int:
    """SimMIM's mask patch scaled to the input: two ViT tokens per mask-patch side (32 px on a ViT/16)."""
    return 2 * SIZES[size][1]


def build_simmim_pair(size: str, device: torch.device):
    """Hugging Face's ``ViTForMaskedImageModeling`` and geomask's ``simmim`` with the same weights."""
    from transformers import ViTConfig, ViTForMaskedImageModeling

    img, patch, dim, depth, heads = SIZES[size][:5]
    cfg = ViTConfig(
        image_size=img,
        patch_size=patch,
        encoder_stride=patch,
        hidden_size=dim,
        num_hidden_layers=depth,
        num_attention_heads=heads,
        intermediate_size=4 * dim,
        attn_implementation="sdpa",
    )
    torch.manual_seed(0)
    hf = ViTForMaskedImageModeling(cfg)
    with torch.no_grad():
        hf.vit.embeddings.mask_token.normal_(std=0.02)
    ours = build_method("simmim", **simmim_keywords(cfg), mask_patch_size=_mask_patch(size))
    ours.load_state_dict(convert_vit_mim(hf.state_dict()))
    return hf.to(device).train(), ours.to(device).train()


def simmim_bench(size: str, rounds: int, steps: int, device: torch.device) -> tuple[float, float]:
    """Best seconds per step ``(geomask, hf)`` of one SimMIM size (module docstring)."""
    hf, ours = build_simmim_pair(size, device)
    img, patch, batch = SIZES[size][0], SIZES[size][1], SIZES[size][-1]
    mp = _mask_patch(size)
    x = torch.randn(batch, 3, img, img, generator=torch.Generator().manual_seed(1)).to(device)
    g_hf = torch.Generator().manual_seed(0)

    def hf_mask() -> torch.Tensor:
        return simmim_mask(batch, img, mp, patch, 0.6, generator=g_hf).view(batch, -1).to(device)

    m = hf_mask()
    with torch.no_grad():
        diff = abs(float(hf(x, bool_masked_pos=m).loss) - float(ours.reconstruct(x, m).loss))
    opt_hf = torch.optim.AdamW(hf.parameters(), lr=1e-4, weight_decay=0.05)
    opt_gm = torch.optim.AdamW(ours.parameters(), lr=1e-4, weight_decay=0.05)
    gen = torch.Generator(device=device).manual_seed(0)
    data = GridBatch(x, patch)

    def step_hf():
        opt_hf.zero_grad(set_to_none=True)
        hf(x, bool_masked_pos=hf_mask()).loss.backward()
        opt_hf.step()

    def step_gm():
        opt_gm.zero_grad(set_to_none=True)
        ours(data, gen)["loss"].backward()
        opt_gm.step()

    t_hf, t_gm = alternate(step_hf, step_gm, rounds, steps, device)
    best_hf, best_gm = min(t for t, _ in t_hf), min(t for t, _ in t_gm)
    cpu_hf, cpu_gm = min(c for _, c in t_hf), min(c for _, c in t_gm)
    print(
        f"simmim {size} (batch {batch}, mask patch {mp}): geomask {best_gm * 1e3:.1f} ms/step, "
        f"hf {best_hf * 1e3:.1f} ms/step (CPU time geomask {cpu_gm * 1e3:.1f}, hf {cpu_hf * 1e3:.1f}; "
        f"wall per round geomask {[round(t * 1e3) for t, _ in t_gm]}, hf {[round(t * 1e3) for t, _ in t_hf]}); "
        f"first-step loss |diff| on the same mask {diff:.2e}",
        flush=True,
    )
    return best_gm, best_hf


def _geomean(values: list[float]) -> float:
    return math.exp(sum(math.log(v) for v in values) / len(values))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES))
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--steps", type=int, default=1, help="steps per round")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--skip-spark", action="store_true", help="leave out the SparK encoder benchmark")
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
    mae, simmim = [], []
    for size in args.sizes:
        t_gm, t_hf = mae_bench(size, args.rounds, args.steps, device)
        mae.append(t_hf / t_gm)
        t_gm, t_hf = simmim_bench(size, args.rounds, args.steps, device)
        simmim.append(t_hf / t_gm)
    spark = None
    if not args.skip_spark:  # its own process: a clean allocator and thread pool, its own output lines
        cmd = [sys.executable, str(HERE / "bench_spark.py"), "--threads", str(torch.get_num_threads())]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
        print(out, end="")
        spark = float(out.strip().splitlines()[-1].rsplit(":", 1)[1])
    for size, a, b in zip(args.sizes, mae, simmim):
        print(f"{size}: mae {a:.2f}, simmim {b:.2f}")
    print(f"ratio mae_step geomask/hf: {_geomean(mae):.2f}")
    print(f"ratio simmim_step geomask/hf: {_geomean(simmim):.2f}")
    if spark is not None:
        print(f"ratio spark_encoder sparse/dense: {spark:.2f}")


if __name__ == "__main__":
    main()
