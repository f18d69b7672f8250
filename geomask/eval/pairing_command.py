"""``geomask eval pairing``: DiffPALM's pairing benchmark on GENERATED paired families (not real MSAs).

It generates the families (:mod:`geomask.datasets.paired_families`), trains a small DiffPALM LM
(:mod:`geomask.methods.diffpalm`) on the true pairs of the training species, then pairs the held-out species with
:func:`geomask.eval.pairing.pair_species` and writes the accuracies of DiffPALM, the LM-free baselines and random
pairings, one row per seed, to ``--json`` (:func:`geomask.eval.pairing.run_pairing`).  Seeds change the generated
families, the LM's initialisation and batches, and the pairing's masks and noise.  Nothing heavy is imported until
the command runs.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from geomask.arguments import nonnegative_int, positive_int

__all__ = ["add_pairing_parser"]


def add_pairing_parser(sub: Any) -> argparse.ArgumentParser:
    """The ``pairing`` subcommand of ``geomask eval`` (its handler is ``func``)."""
    p = sub.add_parser(
        "pairing",
        help="DiffPALM: pair interacting sequences of GENERATED paired families with a masked LM",
        description="Generates paired families A and B with a known coupling (GENERATED, not real MSAs), trains a "
        "small DiffPALM masked LM on the true pairs of the training species, pairs the held-out species by "
        "Gumbel-Sinkhorn optimisation of the LM loss and writes the pairing accuracy of DiffPALM, the LM-free "
        "baselines (similarity, PMI) and random pairings, one row per seed, to --json.",
        epilog="example:\n  geomask eval pairing --json pairing.json --seeds 0 1 2 --families 2 --length 16",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--json", required=True, type=Path, help="where the rows go")
    p.add_argument("--seeds", type=int, nargs="+", metavar="S", default=[0], help="one row per seed (default 0)")
    p.add_argument(
        "--train-steps", type=nonnegative_int, default=400, metavar="N", help="LM training steps (default %(default)s)"
    )
    p.add_argument(
        "--pair-steps",
        type=nonnegative_int,
        default=100,
        metavar="N",
        help="pairing optimisation steps (default %(default)s)",
    )
    p.add_argument(
        "--families", type=positive_int, default=4, metavar="F", help="generated families (default %(default)s)"
    )
    p.add_argument(
        "--pairs", type=positive_int, default=8, metavar="N", help="members per species (default %(default)s)"
    )
    p.add_argument(
        "--length", type=positive_int, default=32, metavar="L", help="residues of A and of B (default %(default)s)"
    )
    p.set_defaults(func=_main, task="pairing")
    return p


def _main(args: argparse.Namespace) -> int:
    from geomask.datasets.paired_families import PairedFamiliesSpec
    from geomask.eval.pairing import run_pairing

    spec = PairedFamiliesSpec(families=args.families, pairs=args.pairs, length_a=args.length, length_b=args.length)
    spec.check()
    rows = run_pairing(list(args.seeds), spec=spec, train_steps=args.train_steps, pair_steps=args.pair_steps)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"data": "GENERATED paired families", "rows": rows}, indent=1) + "\n")
    return 0
