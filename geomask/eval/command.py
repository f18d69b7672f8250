"""``geomask eval qor|equivalence|probability SRC... --json OUT``: the circuit evaluations on the command line.

The lead wires :func:`add_eval_parser` into :mod:`geomask.cli`.  Each subcommand loads the designs, runs
:mod:`geomask.eval.protocol`'s comparison of the selected methods with one budget and the same seeds, writes
the JSON (``{"methods": {NAME: {SPLIT: {METRIC: mean, METRIC_std: std}}}, "baseline": ..., "data": ...,
"config": ...}``), prints a table and writes plots into ``--out``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from geomask.errors import GeomaskError
from geomask.io.atomic import atomic_write_text

if TYPE_CHECKING:  # the protocol pulls in torch_geometric: load it when a task runs, not for --help
    from geomask.eval.protocol import Budget

# Must equal geomask.eval.protocol.METHOD_NAMES (a test checks it).
METHOD_NAMES = ("scratch", "mgm", "mgvga", "mgvga_single", "graphmae")

__all__ = ["add_eval_parser", "cmd_eval", "main", "results_table"]

_TABLE_METRICS = {
    "qor": ("z_mse", "z_mae", "mape", "legacy_mape", "top1", "top5", "top10"),
    "equivalence": ("auc", "precision", "recall", "f1"),
    "probability": ("mae", "mae_and"),
}


def results_table(result: dict[str, Any], task: str) -> str:
    """The result as an aligned text table: one row per (method or baseline, split), ``mean ± std``."""
    metrics = _TABLE_METRICS[task]
    rows = [("method", "split", *metrics)]
    entries = [(n, s, m) for n, splits in result["methods"].items() for s, m in splits.items()]
    entries += [("baseline", s, m) for s, m in result.get("baseline", {}).items()]
    for name, split, m in entries:
        rows.append((name, split, *(f"{m[k]:.4g} ± {m.get(k + '_std', 0.0):.2g}" if k in m else "" for k in metrics)))
    width = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, width)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in width))
    return "\n".join(lines)


def _budget(args: argparse.Namespace) -> Budget:
    from geomask.eval.protocol import Budget

    model: dict[str, Any] = {"encoder": args.encoder, "hidden": args.hidden, "layers": args.layers}
    ckpts = {}
    for spec in args.checkpoint or []:
        name, sep, path = spec.partition("=")
        if not sep or name not in METHOD_NAMES:
            raise GeomaskError(f"--checkpoint {spec!r}: expected METHOD=PATH with METHOD in {', '.join(METHOD_NAMES)}")
        ckpts[name] = path
    return Budget(
        methods=tuple(args.methods),
        seeds=tuple(args.seeds),
        pretrain_steps=args.pretrain_steps,
        finetune_steps=args.finetune_steps,
        finetune_encoder=getattr(args, "finetune_encoder", False),
        batch_size=args.batch_size,
        max_nodes=args.max_nodes,
        lr=args.lr,
        head_lr=args.head_lr,
        model=model,
        checkpoints=ckpts,
    )


def cmd_eval(args: argparse.Namespace) -> int:
    """Run one evaluation subcommand (``args.task``)."""
    from geomask.eval.plots import write_plots
    from geomask.eval.protocol import load_designs

    budget = _budget(args)
    progress = not args.quiet
    load = dict(
        text_encoder=args.text_encoder, verilog=budget.needs_verilog, cache=args.embedding_cache, jobs=args.jobs
    )
    designs = load_designs(args.src, **load)
    pre = load_designs(args.pretrain_src, **load) if args.pretrain_src else None
    result: dict[str, Any]
    if args.task == "qor":
        import numpy as np

        from geomask.eval.qor import QorLabels, default_recipes, label_qor, read_qor_csv, run_qor

        if args.folds < 1:
            raise GeomaskError(f"--folds must be at least 1, got {args.folds}")
        train = load_designs(args.train_src, **load) if args.train_src else []
        both = sorted({d.name for d in designs} & {d.name for d in train})
        if both:
            raise GeomaskError(f"--train-src: designs also evaluated: {', '.join(both)}")
        if args.qor_csv:
            every = read_qor_csv(args.qor_csv)
            order = {d.name: d for d in designs + train}
            missing = sorted(set(every.designs) - set(order))
            if missing:
                raise GeomaskError(
                    f"{args.qor_csv}: designs without a source among SRC or --train-src: {', '.join(missing)}"
                )
            known = set(every.designs)
            designs = [d for d in designs if d.name in known]
            train = [d for d in train if d.name in known]
            labels = every.select([d.name for d in designs])
            train_labels = every.select([d.name for d in train])
        else:
            recipes = default_recipes(args.recipes, args.recipe_length, args.recipe_seed)
            labels, failed = label_qor(designs, recipes, jobs=args.jobs, progress=progress)
            train_labels, failed_train = (
                label_qor(train, recipes, jobs=args.jobs, progress=progress)
                if train
                else (QorLabels([], recipes, np.zeros((0, len(recipes))), np.zeros((0, len(recipes)))), [])
            )
            for name, msg in failed + failed_train:
                print(f"warning: {name}: left out of QoR ({msg})", file=sys.stderr)
            designs = [d for d in designs if d.name in set(labels.designs)]
            train = [d for d in train if d.name in set(train_labels.designs)]
        result = run_qor(
            designs,
            labels,
            budget,
            pre,
            folds=args.folds,
            progress=progress,
            train_designs=train,
            train_labels=train_labels,
        )
    elif args.task == "equivalence":
        from geomask.eval.equivalence import run_equivalence

        result = run_equivalence(designs, budget, pre, progress=progress)
    else:
        from geomask.eval.probability import run_probability

        result = run_probability(designs, budget, pre, progress=progress)
    if args.out:
        for p in write_plots(result, args.out, args.task):
            print(f"wrote {p}", file=sys.stderr)
    result.pop("details", None)
    result["config"] = {
        "task": args.task,
        "sources": [str(s) for s in args.src],
        "pretrain_sources": [str(s) for s in args.pretrain_src or []] or "the evaluated designs (no labels)",
        "encoder": "fine-tuned with the head" if budget.finetune_encoder else "frozen",
        "methods": list(budget.methods),
        "seeds": list(budget.seeds),
        "pretrain_steps": budget.pretrain_steps,
        "finetune_steps": budget.finetune_steps,
        "model": budget.model,
        **(
            {
                "recipes": int(labels.recipes.shape[0]),
                "designs": labels.designs,
                "train_designs": list(train_labels.designs),
            }
            if args.task == "qor"
            else {}
        ),
    }
    text = json.dumps(result, indent=1, allow_nan=True)
    atomic_write_text(Path(args.json), text + "\n")
    print(results_table(result, args.task))
    print(f"wrote {args.json}")
    return 0


def add_eval_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``eval`` with subcommands ``qor``, ``equivalence`` and ``probability`` (each sets ``func``)."""
    ev = subparsers.add_parser(
        "eval",
        help="evaluations: circuits (qor, equivalence, probability) and scans (probe, weak)",
        description="Downstream evaluations. Each compares methods with the same budget and seeds in one run and "
        "writes {'methods': {NAME: {SPLIT: {METRIC: value}}}} to --json, a table, and plots.",
    )
    sub = ev.add_subparsers(dest="task", metavar="TASK", required=True)
    helps = {
        "qor": "QoR prediction (OpenABC-D protocol): AND count and levels after ABC recipes",
        "equivalence": "logic equivalence identification of node pairs (zero-shot and trained head)",
        "probability": "signal probability regression against bit-parallel simulation",
    }
    from geomask.eval.scan_command import add_scan_eval_parsers

    add_scan_eval_parsers(sub)
    for task, text in helps.items():
        p = sub.add_parser(task, help=text, description=text + ". Compares " + ", ".join(METHOD_NAMES) + ".")
        p.add_argument("src", nargs="+", metavar="SRC", help="designs: AIGER/.bench files, Verilog files or folders")
        p.add_argument("--json", required=True, metavar="OUT", help="write the metrics here")
        p.add_argument("--out", default=None, metavar="DIR", help="write plots here")
        p.add_argument("--methods", nargs="+", default=list(METHOD_NAMES), choices=METHOD_NAMES, metavar="M")
        p.add_argument("--seeds", nargs="+", type=int, default=[0], metavar="S")
        p.add_argument("--pretrain-steps", type=int, default=200, metavar="N")
        p.add_argument("--finetune-steps", type=int, default=300, metavar="N", help="steps of the downstream head")
        p.add_argument(
            "--pretrain-src",
            nargs="*",
            default=None,
            metavar="SRC",
            help="pretraining designs (default: the evaluated designs, without labels)",
        )
        p.add_argument(
            "--checkpoint",
            nargs="*",
            default=None,
            metavar="METHOD=PATH",
            help="load a `geomask pretrain` run or checkpoint instead of pretraining METHOD",
        )
        p.add_argument("--encoder", default="deepgcn", help="deepgcn, gcn, gin or gat (default deepgcn)")
        p.add_argument("--hidden", type=int, default=64)
        p.add_argument("--layers", type=int, default=7)
        p.add_argument("--batch-size", type=int, default=8, help="graphs per pretraining batch")
        p.add_argument("--max-nodes", type=int, default=200_000, help="node budget of one batch")
        p.add_argument("--lr", type=float, default=1e-3, help="pretraining learning rate")
        p.add_argument("--head-lr", type=float, default=3e-3, help="downstream head learning rate")
        p.add_argument("--text-encoder", default=None, help="Verilog text encoder (default: the offline MiniLM)")
        p.add_argument("--embedding-cache", default=None, metavar="DIR", help="cache Verilog embeddings here")
        p.add_argument("--jobs", type=int, default=1, help="parallel yosys / ABC processes")
        p.add_argument("--quiet", action="store_true", help="no progress bars")
        if task == "probability":
            p.add_argument(
                "--finetune-encoder",
                action="store_true",
                help="train the encoder with the head (--finetune-steps steps, encoder at --lr) instead of a head "
                "on frozen embeddings",
            )
        if task == "qor":
            p.add_argument("--recipes", type=int, default=30, metavar="N", help="random recipes per design")
            p.add_argument("--recipe-length", type=int, default=20, metavar="L")
            p.add_argument("--recipe-seed", type=int, default=0)
            p.add_argument(
                "--folds",
                type=int,
                default=3,
                help="k of the unseen_designs k-fold over SRC (1 with --train-src: test every SRC design at once)",
            )
            p.add_argument(
                "--train-src",
                nargs="+",
                default=None,
                metavar="SRC",
                help="designs whose QoR labels only train the head (both splits), never tested: e.g. a labelled "
                "corpus beside held-out benchmarks",
            )
            p.add_argument(
                "--qor-csv",
                default=None,
                metavar="CSV",
                help="labels from `geomask prep circuits` (qor.csv) instead of running ABC",
            )
        p.set_defaults(func=cmd_eval, task=task)
    return ev


def main(argv: list[str] | None = None) -> int:
    """``main(["qor", SRC, ..., "--json", OUT])``: the ``eval`` command alone (for the ``tools/`` scripts).

    Errors print one line (``error: ...``) and return 1.
    """
    parser = argparse.ArgumentParser(prog="geomask")
    add_eval_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["eval", *(sys.argv[1:] if argv is None else argv)])
    try:
        return cmd_eval(args)
    except (GeomaskError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
