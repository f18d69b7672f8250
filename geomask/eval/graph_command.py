"""``geomask eval graphs``: the subcommand (argument parsing only; :mod:`geomask.eval.graphs` loads on use)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

__all__ = ["add_graph_eval_parser", "cmd_eval_graphs"]

_METHODS = ("graphmae", "graphmae2")  # geomask.eval.graphs.METHODS (not imported here: it loads on use)


def cmd_eval_graphs(args: argparse.Namespace) -> int:
    from geomask.eval.graphs import evaluate_graphs, table

    result = evaluate_graphs(args.dataset, seeds=args.seeds, epochs=args.epochs, config=args.config, method=args.method)
    from geomask.io.atomic import atomic_write_text

    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.json, json.dumps(result, indent=1) + "\n")
    print(table(result))
    return 0


def add_graph_eval_parser(eval_subparsers: argparse._SubParsersAction) -> None:
    """Add ``graphs`` to an existing ``eval`` subparsers object."""
    from geomask.arguments import positive_int

    p = eval_subparsers.add_parser(
        "graphs",
        help="GraphMAE / GraphMAE2 on Cora/CiteSeer (linear probe) or TU graphs (SVM) vs raw features and a random "
        "encoder",
        description="Pretrain GraphMAE (or GraphMAE2, --method) per seed on DATASET and score its frozen embeddings, "
        "a random encoder's and the raw features: node classification (Cora, CiteSeer) by GraphMAE's linear probe "
        "on the public split, graph classification (TU) by a 10-fold stratified SVM with C in {1e-3, ..., 10}; "
        "mean ± std over seeds, beside the paper's numbers. Settings from configs/<method>_<name>.yaml.",
        epilog="examples:\n"
        "  geomask eval graphs ../shared/data/graphs/Cora --json cora.json --seeds 3 --epochs 300\n"
        "  geomask eval graphs ../shared/data/graphs/MUTAG --json mutag.json\n"
        "  geomask eval graphs ../shared/data/graphs/Cora --method graphmae2 --json cora2.json --seeds 1",
    )
    p.add_argument("dataset", metavar="DATASET", help="a raw Planetoid or TU folder, or a geomask prep graphs folder")
    p.add_argument("--json", required=True, metavar="OUT", help="write the accuracies here (JSON)")
    p.add_argument("--method", default="graphmae", choices=_METHODS, help="the pretraining method (default graphmae)")
    p.add_argument("--seeds", type=positive_int, default=3, metavar="N", help="seeds 0..N-1 (default 3)")
    p.add_argument(
        "--epochs", type=positive_int, default=None, metavar="E", help="pretraining epochs (default: the config's)"
    )
    p.add_argument(
        "--config", default=None, metavar="YAML", help="method/optim settings (default configs/<method>_<name>.yaml)"
    )
    p.set_defaults(func=cmd_eval_graphs)
