#!/usr/bin/env python
"""The main job on the embedded default data (what ``make demo`` runs).

1. Build the embedded circuit corpus: the generated Verilog designs in ``data/corpus/verilog/`` → AIGs through
   yosys → an AIG dataset (``geomask prep circuits``), and print its table.
2. Label seeded random ABC recipes (the OpenABC-D alphabet; the ``varied`` family by default: 1 .. 20 steps and a
   per-recipe op mix, so that recipes matter) on a held-out set of designs and on the pretraining designs →
   ``qor.csv``, and print how much recipes matter in those labels (median spread, cross-design rank correlation).
3. Pretrain briefly, with the same budget and seed, no pretraining (scratch), MGM, MGVGA (Verilog chunks),
   MGVGA (single vector) and GraphMAE on the other corpus designs (Verilog embedded by the offline default text
   encoder), then run the QoR evaluation (OpenABC-D protocol: unseen recipes, unseen designs) on the held-out
   designs, the QoR head also training on the pretraining designs' labels (``--train-src``; the held-out
   designs are never trained on in the split that tests them): results table, ``qor.json`` and plots in
   ``--out``.

Everything goes to ``--out`` (default ``out/demo``); finished steps are reused by a second run.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from geomask.circuits.recipes import RECIPE_FAMILIES
from geomask.cli import format_table
from geomask.cli import main as geomask_main
from geomask.datasets.prep_circuits import find_designs, prep_circuits

ROOT = Path(__file__).resolve().parents[1]


def pick(sources: list[Path], n: int, index: Path) -> list[Path]:
    """``n`` designs spread over families, with at least 150 ANDs (so recipes change them), deterministically."""
    import csv

    ands = {}
    if index.exists():
        with open(index, newline="") as f:
            ands = {r["name"]: int(r["ands"]) for r in csv.DictReader(f)}
    big = [s for s in sources if ands.get(s.stem, 200) >= 150]
    step = max(1, len(big) // n)
    return big[::step][:n]


def label_summary(qor_csv: Path, groups: dict[str, list[Path]]) -> str:
    """One line per group of designs: how much recipes matter in its labels (:func:`label_stats`)."""
    from geomask.eval.metrics import label_stats
    from geomask.eval.qor import read_qor_csv

    every = read_qor_csv(qor_csv)
    lines = []
    for name, sources in groups.items():
        keys = [d.key for d in find_designs(sources) if d.key in set(every.designs)]
        if not keys:
            continue
        s = label_stats(every.select(keys).ands)
        lines.append(
            f"  {name}: {s['designs']:.0f} designs x {s['recipes']:.0f} recipes, {s['constant_designs']:.0f} constant, "
            f"median spread {s['spread_median']:.2g} %, cross-design rank correlation {s['rank_correlation']:.2g}"
        )
    return "\n".join(lines)


def closing_sentence(result: dict, metric: str = "z_mae") -> str:
    """One sentence on what the QoR table shows, from its numbers: the best method per split (lowest
    ``metric``) against the constant baseline (which predicts every design's mean, z = 0)."""
    base = result.get("baseline", {})
    splits = list(dict.fromkeys(s for per in result["methods"].values() for s in per))
    parts = []
    for split in splits:
        scores = {n: per[split][metric] for n, per in result["methods"].items() if metric in per.get(split, {})}
        if not scores:
            continue
        best = min(scores, key=scores.get)
        v, b = scores[best], base.get(split, {}).get(metric)
        if b is None:
            parts.append(f"on {split} {best} is best ({v:.3g})")
        elif v < b:
            below = 100 * (b - v) / b
            pct = f"{below:.0f}" if below >= 1 else f"{below:.1g}"  # 0.3 %, not 0 %
            parts.append(f"on {split} {best} is best at {v:.3g}, {pct}% below the constant baseline's {b:.3g}")
        else:
            parts.append(f"on {split} no method beats the constant baseline ({b:.3g}; the best, {best}, has {v:.3g})")
    if not parts:
        return f"The table has no {metric} to compare."
    return f"What the table shows ({metric}, lower is better): " + "; ".join(parts) + "."


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", type=Path, default=ROOT / "data" / "corpus" / "verilog")
    ap.add_argument("--out", type=Path, default=ROOT / "out" / "demo")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--qor-designs", type=int, default=24, help="held-out designs for the QoR evaluation")
    ap.add_argument("--pretrain-designs", type=int, default=120, help="corpus designs to pretrain on")
    ap.add_argument(
        "--train-designs",
        type=int,
        default=120,
        help="pretraining designs whose QoR labels also train the QoR head (0: only the held-out designs' folds)",
    )
    ap.add_argument("--recipes", type=int, default=30, help="ABC recipes per QoR design")
    ap.add_argument(
        "--recipe-family",
        choices=RECIPE_FAMILIES,
        default="varied",
        help="QoR recipes: varied (lengths 1..20, per-recipe op mixes) or uniform (OpenABC-D's, where recipes "
        "barely matter); uniform labels go to OUT/qor, varied to OUT/qor_varied",
    )
    ap.add_argument("--pretrain-steps", type=int, default=150)
    ap.add_argument("--finetune-steps", type=int, default=300)
    ap.add_argument("--corpus-only", action="store_true", help="stop after building the corpus")
    args = ap.parse_args()

    sources = sorted(args.corpus.glob("*.v"))
    if not sources:
        print(f"error: no Verilog designs in {args.corpus} (run tools/gen_corpus.py)", file=sys.stderr)
        return 1
    t0 = time.time()
    print(f"[1/3] corpus: {len(sources)} Verilog designs → AIGs (yosys) → {args.out / 'corpus'}", flush=True)
    report = prep_circuits(sources, args.out / "corpus", recipes=0, jobs=args.jobs, latches="cut")  # graphs only
    print(format_table(report.rows))
    ands = [r["ands"] for r in report.rows]
    print(
        f"{len(report.rows)} designs, {sum(ands)} ANDs in all (min {min(ands)}, max {max(ands)}); "
        f"{time.time() - t0:.0f} s",
        flush=True,
    )
    for _src, msg in report.failures:
        print(f"error: {msg}", file=sys.stderr)
    if args.corpus_only:
        return 1 if report.failures else 0

    held = pick(sources, args.qor_designs, args.corpus.parent / "index.csv")
    rest = [s for s in sources if s not in set(held)]
    pre = rest[:: max(1, len(rest) // args.pretrain_designs)][: args.pretrain_designs]
    train = pre[: args.train_designs]
    print(
        f"[2/3] QoR labels: {len(held)} held-out and {len(train)} training designs × {args.recipes} ABC recipes "
        f"({args.recipe_family})",
        flush=True,
    )
    qor_dir = args.out / ("qor" if args.recipe_family == "uniform" else f"qor_{args.recipe_family}")
    qor = prep_circuits(
        held + train,
        qor_dir,
        recipes=args.recipes,
        recipe_length=20,
        recipe_family=args.recipe_family,
        seed=0,
        jobs=args.jobs,
        latches="cut",
    )
    print(f"{sum(r.get('labels', 0) for r in qor.rows)} labels in {qor_dir / 'qor.csv'}; {time.time() - t0:.0f} s")
    if (qor_dir / "qor.csv").exists():
        print(label_summary(qor_dir / "qor.csv", {"held-out": held, "training": train}), flush=True)
    print(
        f"[3/3] pretrain 5 methods on {len(pre)} designs ({args.pretrain_steps} steps each), QoR evaluation", flush=True
    )
    code = geomask_main(
        [
            "eval", "qor", *map(str, held),
            "--qor-csv", str(qor_dir / "qor.csv"),
            "--pretrain-src", *map(str, pre),
            *(["--train-src", *map(str, train)] if train else []),
            "--pretrain-steps", str(args.pretrain_steps),
            "--finetune-steps", str(args.finetune_steps),
            "--hidden", "32", "--layers", "4", "--seeds", "0",
            "--embedding-cache", str(args.out / "embeddings"),
            "--jobs", str(args.jobs),
            "--json", str(args.out / "qor.json"),
            "--plots", str(args.out / "plots"),
        ]
    )  # fmt: skip
    print(f"demo finished in {time.time() - t0:.0f} s: {args.out / 'qor.json'}, plots in {args.out / 'plots'}")
    if code == 0 and (args.out / "qor.json").exists():
        print(closing_sentence(json.loads((args.out / "qor.json").read_text())))
    return code or (1 if report.failures or qor.failures else 0)


if __name__ == "__main__":
    sys.exit(main())
