"""``geomask eval qor|equivalence|probability SRC... --json OUT``: the circuit evaluations on the command line.

The lead wires :func:`add_eval_parser` into :mod:`geomask.cli`.  Each subcommand loads the designs, runs
:mod:`geomask.eval.protocol`'s comparison of the selected methods with one budget and the same seeds, writes
the JSON (``{"methods": {NAME: {SPLIT: {METRIC: mean, METRIC_std: std, METRIC_seeds: [per seed]}}},
"baseline": ..., "data": ..., "config": ...}``), prints a table and writes plots into ``--out``.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from geomask.arguments import nonnegative_int, positive_float, positive_int
from geomask.circuits.recipes import DEFAULT_RECIPE_LENGTH, DEFAULT_RECIPES, RECIPE_FAMILIES
from geomask.errors import GeomaskError, UsageError
from geomask.io.atomic import atomic_write_text

if TYPE_CHECKING:  # the protocol pulls in torch_geometric: load it when a task runs, not for --help
    from geomask.eval.protocol import Budget

# Must equal geomask.eval.protocol.METHOD_NAMES (a test checks it).
METHOD_NAMES = ("scratch", "mgm", "mgvga", "mgvga_single", "graphmae")

__all__ = ["add_eval_parser", "cmd_eval", "results_table"]

ENCODERS = ("deepgcn", "gcn", "gin", "gat")
_BUDGET_NOTE = (
    "Every method gets the same budget (--pretrain-steps, --finetune-steps) and the same seeds; the defaults are a "
    "CPU-sized smoke budget, raise them for a real comparison."
)
_EXAMPLES = {
    "qor": "examples:\n"
    "  geomask eval qor epfl/ctrl.aig epfl/router.aig epfl/int2float.aig --json qor.json --plots plots/\n"
    "  geomask eval qor held_out/ --train-src corpus/ --folds 1 --json qor.json --seeds 0 1 2",
    "equivalence": "example:\n  geomask eval equivalence epfl/ctrl.aig epfl/dec.aig --json eq.json --methods mgm\n",
    "probability": "example:\n  geomask eval probability epfl/ctrl.aig epfl/dec.aig --json p.json --finetune-encoder\n",
}

_TABLE_METRICS = {
    "qor": ("z_mse", "z_mae", "z_mae_varying", "mape", "legacy_mape", "top1", "top5", "top10", "regret"),
    "equivalence": ("auc", "precision", "recall", "f1"),
    "probability": ("mae", "mae_and"),
}


def results_table(result: dict[str, Any], task: str) -> str:
    """The result as an aligned text table: one row per (method or baseline, split), ``mean ± std`` over seeds.

    With a single seed (``result["config"]["seeds"]``, or no ``*_std`` entries) the cells are plain means.
    A Verilog method pretrained without Verilog (``result["verilog"][name]`` False) shows as ``NAME (no Verilog)``.
    ``legacy_mape`` (OpenABC-D's formula: no percent, and about 1e13 where a true z-score is near 0) stays in
    the JSON but not in the table, which says so in its last line.
    """
    json_only = ("legacy_mape",)
    metrics = [k for k in _TABLE_METRICS[task] if k not in json_only]
    seeds = result.get("config", {}).get("seeds")
    spread = seeds is None or len(seeds) > 1
    rows = [("method", "split", *metrics)]
    no_verilog = [n for n, seen in result.get("verilog", {}).items() if not seen]  # MGVGA without its Verilog
    entries = [
        (f"{n} (no Verilog)" if n in no_verilog else n, s, m)
        for n, splits in result["methods"].items()
        for s, m in splits.items()
    ]
    entries += [("baseline", s, m) for s, m in result.get("baseline", {}).items()]
    entries += [("good recipe", s, m) for s, m in result.get("good_recipe", {}).items()]
    entries += [("mean of others", s, m) for s, m in result.get("mean_of_others", {}).items()]

    def cell(m: dict[str, float], k: str) -> str:
        if k not in m:
            return ""
        if spread and f"{k}_std" in m:
            return f"{m[k]:.4g} ± {m[f'{k}_std']:.2g}"
        return f"{m[k]:.4g}"

    for name, split, m in entries:
        rows.append((name, split, *(cell(m, k) for k in metrics)))
    width = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, width)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in width))
    notes = [f"mean ± std over {len(seeds)} seeds" if spread else "1 seed"] if seeds is not None else []
    if any(n in result["methods"] for n in no_verilog):
        notes.append("(no Verilog): pretrained without Verilog, MGM losses only; JSON 'verilog': false")
    hidden = [k for k in json_only if any(k in m for _, _, m in entries)]
    if hidden:
        notes.append(f"{', '.join(hidden)}: in the JSON only")
    labels = result.get("labels")
    if labels:
        notes.append(
            f"labels: {labels['designs']:.0f} designs x {labels['recipes']:.0f} recipes, "
            f"{labels['constant_designs']:.0f} constant, median spread {labels['spread_median']:.2g} %, "
            f"cross-design rank correlation {labels['rank_correlation']:.2g}"
        )
    if notes:
        lines.append(f"({'; '.join(notes)})")
    return "\n".join(lines)


def _budget(args: argparse.Namespace) -> Budget:
    from geomask.eval.protocol import Budget

    model: dict[str, Any] = {"encoder": args.encoder, "hidden": args.hidden, "layers": args.layers}
    ckpts = {}
    for spec in args.checkpoint or []:
        name, sep, path = spec.partition("=")
        if not sep or name not in METHOD_NAMES:
            raise UsageError(f"--checkpoint {spec!r}: expected METHOD=PATH with METHOD in {', '.join(METHOD_NAMES)}")
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


def _distinct_train_names(designs: list, train: list) -> list:
    """``--train-src`` designs, each named apart from the evaluated ones.

    A training design that is the same circuit as an evaluated one (:meth:`~geomask.io.aig.AIG.same_structure`) is a
    leak: a usage error naming both files. One that only shares a name (OpenCores' ``i2c`` beside EPFL's) is renamed
    ``NAME_FOLDER`` (its parent folder; then a counter) with one ``warning:`` line, so labels and results keep the two
    apart."""
    taken = {d.name: d for d in designs}
    same = [(d, taken[d.name]) for d in train if d.name in taken and d.aig.same_structure(taken[d.name].aig)]
    if same:
        pairs = "; ".join(f"{t.path} is {e.path}" for t, e in same)
        raise UsageError(f"--train-src: designs also evaluated (the same circuit): {pairs}")
    used = {d.name for d in designs} | {d.name for d in train}
    out = []
    for d in train:
        if d.name in taken:
            base = f"{d.name}_{d.path.parent.name or 'train'}"
            new, k = base, 2
            while new in used:
                new, k = f"{base}_{k}", k + 1
            print(
                f"warning: --train-src design {d.name} ({d.path}) is named {new} here: SRC has another circuit of "
                f"that name ({taken[d.name].path})",
                file=sys.stderr,
            )
            used.add(new)
            d.graph.name = new
            d = replace(d, name=new)
        out.append(d)
    return out


def cmd_eval(args: argparse.Namespace) -> int:
    """Run one evaluation subcommand (``args.task``)."""
    from geomask.eval.plots import write_plots
    from geomask.eval.protocol import load_designs

    budget = _budget(args)
    progress = not args.quiet
    unread: list[str] = []

    def load(sources: list[str], option: str = "") -> list:
        """The designs of ``sources``: one ``error:`` line per source or design that cannot be read (left out, the
        rest go on); none readable: an error (one line when a single source was given)."""
        failed: list[tuple[str, str]] = []

        def skip(key: str, path: Path, error: GeomaskError) -> None:
            text = str(error)
            failed.append((key, text if str(path) in text else f"{path}: {text}"))

        with warnings.catch_warnings(record=True) as notes:  # what a conversion changed or left out, one line each
            warnings.simplefilter("always", UserWarning)
            found = load_designs(
                sources,
                text_encoder=args.text_encoder,
                verilog=budget.needs_verilog,
                cache=args.embedding_cache,
                jobs=args.jobs,
                on_error=skip,
            )
        for note in notes:
            print(f"warning: {' '.join(str(note.message).split())}", file=sys.stderr)
        where = f" of {option}" if option else ""
        if not found and len(failed) == 1:
            raise GeomaskError(failed[0][1] + (f" ({option})" if option else ""))
        for key, text in failed:
            print(f"error: {text} (left out{where})", file=sys.stderr)
            unread.append(key)
        if not found:
            raise GeomaskError(f"no design{where} could be read (see the error lines above)")
        return found

    designs = load(args.src)
    pre = load(args.pretrain_src, "--pretrain-src") if args.pretrain_src else None
    result: dict[str, Any]
    if args.task == "qor":
        import numpy as np

        from geomask.eval.qor import QorLabels, default_recipes, label_qor, read_qor_csv, run_qor

        if args.folds < 1:
            raise UsageError(f"--folds must be at least 1, got {args.folds}")
        train = _distinct_train_names(designs, load(args.train_src, "--train-src") if args.train_src else [])
        if args.qor_csv:
            every = read_qor_csv(args.qor_csv)
            order = {d.name: d for d in designs + train}
            missing = sorted(set(every.designs) - set(order) - set(unread))
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
            recipes = default_recipes(args.recipes, args.recipe_length, args.recipe_seed, args.recipe_family)
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
            if args.write_qor_csv:  # the ABC labels of SRC and --train-src, for --qor-csv next time
                from geomask.eval.qor import write_qor_csv

                write_qor_csv(labels.concat(train_labels), args.write_qor_csv)
                print(f"wrote {args.write_qor_csv}", file=sys.stderr)
        result = run_qor(
            designs,
            labels,
            budget,
            pre,
            folds=args.folds,
            progress=progress,
            train_designs=train,
            train_labels=train_labels,
            encoding=args.recipe_encoding,
            target=args.target,
            head=args.qor_head,
            stats_model=args.design_stats,
        )
    elif args.task == "equivalence":
        from geomask.eval.equivalence import run_equivalence

        result = run_equivalence(designs, budget, pre, progress=progress)
    else:
        from geomask.eval.probability import check_val_designs, run_probability

        try:
            check_val_designs(len(designs), args.val_designs, budget.finetune_encoder)
        except ValueError as e:
            raise UsageError(f"--val-designs: {e}") from None
        result = run_probability(
            designs, budget, pre, progress=progress, val_designs=args.val_designs, val_every=args.val_every
        )
    if args.plots:
        for p in write_plots(result, args.plots, args.task):
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
                "recipe_family": f"from {args.qor_csv}" if args.qor_csv else args.recipe_family,
                "recipe_encoding": args.recipe_encoding,
                "target": args.target,
                "head": args.qor_head,
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
    from geomask.eval.graph_command import add_graph_eval_parser  # issue #14: GraphMAE on Cora/CiteSeer/TU graphs

    add_graph_eval_parser(sub)
    from geomask.eval.object_command import add_object_eval_parser  # issue #11: real objects from labelled scans

    add_object_eval_parser(sub)
    from geomask.eval.sequence_command import add_sequence_eval_parsers  # issue #13: eval text, eval sequences

    add_sequence_eval_parsers(sub)
    from geomask.eval.pairing_command import add_pairing_parser  # issue #13: eval pairing (DiffPALM)

    add_pairing_parser(sub)
    from geomask.eval.ripp_command import add_ripp_eval_parser  # issue #13: eval ripp (peptide task transfer)

    add_ripp_eval_parser(sub)
    from geomask.eval.image_command import add_image_eval_parser  # issue #12: image methods' probes, fine-tune

    add_image_eval_parser(sub)
    for task, text in helps.items():
        p = sub.add_parser(
            task,
            help=text,
            description=text + ". Compares " + ", ".join(METHOD_NAMES) + ". " + _BUDGET_NOTE,
            epilog=_EXAMPLES[task],
        )
        p.add_argument("src", nargs="+", metavar="SRC", help="designs: AIGER/.bench files, Verilog files or folders")
        p.add_argument("--json", required=True, metavar="OUT", help="write the metrics here (JSON)")
        p.add_argument(
            "--plots", "--out", dest="plots", default=None, metavar="DIR", help="write plots (PNG) into this folder"
        )
        p.add_argument(
            "--methods",
            nargs="+",
            default=list(METHOD_NAMES),
            choices=METHOD_NAMES,
            metavar="M",
            help="methods to compare",
        )
        p.add_argument("--seeds", nargs="+", type=int, default=[0], metavar="S", help="one run per seed (mean ± std)")
        p.add_argument(
            "--pretrain-steps", type=nonnegative_int, default=200, metavar="N", help="pretraining steps per method"
        )
        p.add_argument(
            "--finetune-steps", type=positive_int, default=300, metavar="N", help="steps of the downstream head"
        )
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
        p.add_argument("--encoder", default="deepgcn", choices=ENCODERS, help="the graph encoder of every method")
        p.add_argument("--hidden", type=positive_int, default=64, metavar="H", help="encoder width")
        p.add_argument("--layers", type=positive_int, default=7, metavar="L", help="encoder layers")
        p.add_argument("--batch-size", type=positive_int, default=8, metavar="B", help="graphs per pretraining batch")
        p.add_argument("--max-nodes", type=positive_int, default=200_000, metavar="N", help="node budget of one batch")
        p.add_argument("--lr", type=positive_float, default=1e-3, help="pretraining learning rate")
        p.add_argument("--head-lr", type=positive_float, default=3e-3, help="downstream head learning rate")
        p.add_argument("--text-encoder", default=None, help="Verilog text encoder (default: the offline MiniLM)")
        p.add_argument("--embedding-cache", default=None, metavar="DIR", help="cache Verilog embeddings here")
        p.add_argument("--jobs", type=positive_int, default=1, metavar="J", help="parallel yosys / ABC processes")
        p.add_argument("--quiet", action="store_true", help="no progress bars")
        if task in ("probability", "qor", "equivalence"):
            p.add_argument(
                "--finetune-encoder",
                action="store_true",
                help="train the encoder with the head (--finetune-steps steps, encoder at --lr) instead of a head "
                "on frozen embeddings",
            )
        if task == "probability":
            p.add_argument(
                "--val-designs",
                type=int,
                default=0,
                metavar="N",
                help="with --finetune-encoder: hold N training designs out per seed and keep the fine-tuning step "
                "with their lowest MAE (early stopping; 0: train all --finetune-steps steps)",
            )
            p.add_argument(
                "--val-every", type=positive_int, default=25, metavar="K", help="steps between validation measurements"
            )
        if task == "qor":
            p.add_argument(
                "--recipes", type=positive_int, default=DEFAULT_RECIPES, metavar="N", help="random recipes per design"
            )
            p.add_argument(
                "--recipe-length",
                type=positive_int,
                default=DEFAULT_RECIPE_LENGTH,
                metavar="L",
                help="steps per recipe",
            )
            p.add_argument("--recipe-seed", type=int, default=0, help="seed of the random recipes")
            p.add_argument(
                "--recipe-family",
                default=RECIPE_FAMILIES[0],
                choices=RECIPE_FAMILIES,
                help="uniform: OpenABC-D's (--recipe-length ops drawn uniformly); varied: lengths 1..--recipe-length "
                "and a per-recipe op mix (recipes that differ more in what they do)",
            )
            p.add_argument(
                "--recipe-encoding",
                default="conv",
                choices=("conv", "counts"),
                help="recipe encoder of the head: conv (ops in order) or counts (bag of ops and the length)",
            )
            p.add_argument(
                "--target",
                default="z",
                choices=("z", "log_ratio"),
                help="what the head regresses: per-design z-scores of the AND count, or its log ratio to the design's "
                "initial AND count (metrics stay on z-scores)",
            )
            p.add_argument(
                "--qor-head",
                default="concat",
                choices=("concat", "film", "bilinear"),
                help="how the head combines graph and recipe: concat, film (the design modulates the recipe's "
                "hidden layer) or bilinear (recipe-only prediction + a low-rank design x recipe term)",
            )
            p.add_argument(
                "--design-stats",
                action="store_true",
                help="also run design_stats: the same head on AND/level/PI/PO/latch counts instead of a graph encoder",
            )
            p.add_argument(
                "--folds",
                type=positive_int,
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
            p.add_argument(
                "--write-qor-csv",
                default=None,
                metavar="CSV",
                help="write the ABC labels of SRC and --train-src here (read them back with --qor-csv)",
            )
        p.set_defaults(func=cmd_eval, task=task)
    return ev
