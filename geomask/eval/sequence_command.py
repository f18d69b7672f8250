"""``geomask eval text`` and ``geomask eval sequences``: the subcommands (argument parsing only;
:mod:`geomask.eval.sequences` loads on use)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

__all__ = ["add_sequence_eval_parsers", "cmd_eval_sequences"]

_METHODS_HELP = (
    "methods to compare (default: scratch, unigram and every registered method of this data kind with a "
    "configs/<name>_cpu.yaml)"
)


def cmd_eval_sequences(args: argparse.Namespace) -> int:
    """Run ``eval text`` or ``eval sequences`` (``args.task``), write ``--json`` and print the table."""
    from geomask.eval.sequences import evaluate_sequences, evaluate_text, results_table
    from geomask.io.atomic import atomic_write_text

    common = dict(
        methods=args.methods,
        seeds=tuple(args.seeds),
        steps=args.steps,
        max_test=args.max_test,
        max_positions=args.max_positions,
        progress=not args.quiet,
    )
    if args.task == "text":
        result = evaluate_text(args.train, args.test, vocab_size=args.vocab_size, **common)
    else:
        result = evaluate_sequences(
            args.train, args.test, finetune_steps=args.finetune_steps, receptors=not args.no_receptors, **common
        )
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(Path(args.json), json.dumps(result, indent=1, allow_nan=True) + "\n")
    print(results_table(result))
    if "probe_task" in result["data"]:
        print(f"(probe: {result['data']['probe_task']})")
    print(f"wrote {args.json}")
    return 0


def add_sequence_eval_parsers(eval_subparsers: argparse._SubParsersAction) -> None:
    """Add ``text`` and ``sequences`` to an existing ``eval`` subparsers object."""
    from geomask.arguments import nonnegative_int, positive_int

    texts = {
        "text": (
            "masked-token accuracy and pseudo-perplexity on held-out text, sequence methods vs scratch and unigram",
            "Per method and seed: pretrain from configs/<name>_cpu.yaml on --train (a WordPiece tokenizer trained "
            "on it), then score held-out text: each position masked alone (many masked copies per forward), "
            "accuracy and pseudo-perplexity. Without --test the last 10%% of --train's lines are held out. "
            "scratch = the same network untrained; unigram = --train's token frequencies.",
            "example:\n  geomask eval text --train ../shared/data/text/wikitext2/wiki.valid.txt --json text.json "
            "--steps 300",
        ),
        "sequences": (
            "held-out peptide pseudo-perplexity and probes (pepnn CSV), sequence methods vs scratch and unigram/k-mer",
            "Per method and seed: pretrain from configs/<name>_cpu.yaml on --train's peptides (column Sequence) and "
            "receptors (Receptor Sequence), then on held-out peptides: masked-token accuracy, pseudo-perplexity, and "
            "probes for 'Buried surface area above the training median' (linear on frozen mean-pooled features, and "
            "a short fine-tune). Without --test the rows with Cluster %% 5 == 0 are held out (whole receptor "
            "clusters). scratch = the same network untrained (probes: frozen random features, fine-tune from "
            "random weights); unigram = residue frequencies, and k-mer (k = 1, 2) features for the probe.",
            "example:\n  geomask eval sequences --train ../shared/data/sequences/pepnn_train.csv --json pep.json "
            "--steps 300",
        ),
    }
    for task, (short, desc, epilog) in texts.items():
        p = eval_subparsers.add_parser(
            task, help=short, description=desc, epilog=epilog, formatter_class=argparse.RawDescriptionHelpFormatter
        )
        what = "a text file (one record per line)" if task == "text" else "a pepnn CSV"
        p.add_argument("--train", required=True, metavar="FILE", help=f"training data: {what}")
        p.add_argument("--test", default=None, metavar="FILE", help="held-out data (default: a split of --train)")
        p.add_argument("--json", required=True, metavar="OUT", help="write the metrics here (JSON)")
        p.add_argument("--methods", nargs="+", default=None, metavar="M", help=_METHODS_HELP)
        p.add_argument("--seeds", nargs="+", type=int, default=[0], metavar="S", help="one run per seed (mean ± std)")
        p.add_argument("--steps", type=nonnegative_int, default=1000, metavar="N", help="pretraining steps per method")
        p.add_argument(
            "--max-test",
            type=positive_int,
            default=256 if task == "text" else 512,
            metavar="N",
            help="held-out sequences scored (an even spread when there are more)",
        )
        p.add_argument(
            "--max-positions",
            type=positive_int,
            default=32,
            metavar="P",
            help="positions scored per sequence (a seeded uniform sample when longer; the same for every method)",
        )
        p.add_argument("--quiet", action="store_true", help="no progress lines")
        if task == "text":
            p.add_argument("--vocab-size", type=positive_int, default=4000, metavar="V", help="WordPiece vocabulary")
        else:
            p.add_argument(
                "--finetune-steps", type=positive_int, default=200, metavar="N", help="fine-tune steps of the probe"
            )
            p.add_argument("--no-receptors", action="store_true", help="pretrain on the peptides only")
        p.set_defaults(func=cmd_eval_sequences, task=task)
