"""``geomask eval ripp``: the subcommand (argument parsing only; :mod:`geomask.eval.ripp` loads on use)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

__all__ = ["add_ripp_eval_parser", "cmd_eval_ripp"]

_TASKS = ("amp_tm", "amp_uniprot", "acp_tm", "acp_random")  # geomask.datasets.peptide_tasks.TASKS (a test checks)


def cmd_eval_ripp(args: argparse.Namespace) -> int:
    """Run ``eval ripp``, write ``--json`` and print the table."""
    from geomask.eval.ripp import evaluate_ripp, results_table
    from geomask.io.atomic import atomic_write_text

    result = evaluate_ripp(
        args.tasks[0],
        args.tasks[1],
        methods=args.methods,
        seeds=tuple(args.seeds),
        steps=args.steps,
        finetune_steps=args.finetune_steps,
        max_len=args.max_len,
        pepnn=args.pepnn,
        pretrain_on=args.pretrain_on,
        progress=not args.quiet,
    )
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(Path(args.json), json.dumps(result, indent=1, allow_nan=True) + "\n")
    print(results_table(result))
    print(f"(task A {result['data']['task_a']['name']} -> task B {result['data']['task_b']['name']})")
    print(f"wrote {args.json}")
    return 0


def add_ripp_eval_parser(eval_subparsers: argparse._SubParsersAction) -> None:
    """Add ``ripp`` to an existing ``eval`` subparsers object."""
    from geomask.arguments import nonnegative_int, positive_int

    p = eval_subparsers.add_parser(
        "ripp",
        help="peptide masked-LM embeddings on two labelled peptide tasks (modlamp) and transfer from A to B",
        description="RiPP-style transfer (Clark et al. 2025): per seed, stratified 80/20 splits of two labelled "
        "peptide tasks bundled with modlamp (pip install 'geomask[ripp]'); a masked LM pretrained on both tasks' "
        "training peptides; per task a linear probe on frozen mean-pooled features and a fine-tune; on task B "
        "also transfer (fine-tuned on A, then a linear probe / a second fine-tune on B). Baselines: k-mer "
        "(1,2-mer composition + length) features and the same network from random weights (scratch).",
        epilog="example:\n  geomask eval ripp --json ripp.json --methods kmer scratch mlm --seeds 0 1 --steps 300",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--json", required=True, metavar="OUT", help="write the metrics here (JSON)")
    p.add_argument(
        "--methods",
        nargs="+",
        default=None,
        metavar="M",
        help="kmer, scratch and registered sequences methods with a configs/<name>_cpu.yaml "
        "(default: kmer scratch mlm)",
    )
    p.add_argument(
        "--tasks",
        nargs=2,
        default=["amp_uniprot", "acp_random"],
        choices=_TASKS,
        metavar=("A", "B"),
        help=f"task A (fine-tuned first) and task B (transferred to), from {', '.join(_TASKS)}",
    )
    p.add_argument(
        "--seeds", nargs="+", type=nonnegative_int, default=[0], metavar="S", help="one run per seed (mean ± std)"
    )
    p.add_argument("--steps", type=nonnegative_int, default=300, metavar="N", help="pretraining steps per method")
    p.add_argument("--finetune-steps", type=positive_int, default=200, metavar="N", help="steps of each fine-tune")
    p.add_argument(
        "--max-len", type=positive_int, default=64, metavar="L", help="tokens per peptide with specials (cut)"
    )
    p.add_argument("--pepnn", default=None, metavar="CSV", help="also pretrain on a pepnn CSV's peptides")
    p.add_argument(
        "--pretrain-on",
        default="both",
        choices=("both", "a", "b"),
        help="the peptides the masked LM reads: both tasks' training splits, or one task's (a: the paper's transfer "
        "of a masked LM trained on one set to the other)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.set_defaults(func=cmd_eval_ripp, task="ripp")
