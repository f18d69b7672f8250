"""``geomask eval images``: the subcommand (argument parsing only; :mod:`geomask.eval.images` loads on use)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

__all__ = ["add_image_eval_parser", "cmd_eval_images"]


def _overrides(path: str | None) -> dict[str, Any]:
    """The ``--config`` YAML as plain sections (``{}`` without one)."""
    if path is None:
        return {}
    from geomask.errors import FormatError, MissingFileError
    from geomask.eval.images import _read_yaml

    p = Path(path)
    if not p.is_file():
        raise MissingFileError(p, "file")
    raw = _read_yaml(p)
    if not isinstance(raw, dict):
        raise FormatError(p, "expected a mapping of config sections (method:, optim:, data:)")
    raw.pop("seed", None)
    (raw.get("method") or {}).pop("name", None)
    return raw


def cmd_eval_images(args: argparse.Namespace) -> int:
    from geomask.eval.images import ImageEvalBudget, evaluate_images, load_image_set, table
    from geomask.io.atomic import atomic_write_text

    overrides = _overrides(args.config)
    train = load_image_set(args.train).subset(args.max_train)
    test = load_image_set(args.test).subset(args.max_test)
    budget = ImageEvalBudget(
        methods=tuple(args.methods or ()),
        seeds=tuple(args.seeds),
        pretrain_steps=args.pretrain_steps,
        finetune_steps=args.finetune_steps,
        finetune_batch=args.finetune_batch,
        probe_epochs=args.probe_epochs,
        overrides=overrides,
    )
    torch_threads = args.threads
    if torch_threads:
        import torch

        torch.set_num_threads(torch_threads)
    log = None if args.quiet else (lambda s: print(s, file=sys.stderr, flush=True))
    result = evaluate_images(train, test, budget, plots=args.plots, log=log)
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.json, json.dumps(result, indent=1) + "\n")
    print(table(result))
    print(f"wrote {args.json}")
    return 0


def add_image_eval_parser(eval_subparsers: argparse._SubParsersAction) -> None:
    """Add ``images`` to an existing ``eval`` subparsers object."""
    from geomask.arguments import nonnegative_int, positive_int

    p = eval_subparsers.add_parser(
        "images",
        help="image methods (MAE, SimMIM, SparK, MFM, HPM, ...): linear probe, kNN and fine-tune vs raw, random, "
        "scratch",
        description="Pretrain every image method per seed on --train (from configs/<name>_cpu.yaml), then score "
        "its frozen features on --test by a linear probe (logistic regression on standardised features) and a "
        "weighted kNN (k 20, cosine, exp(s/0.07) votes as InstDisc/DINO), and fine-tune encoder + linear head; "
        "against raw pixels (linear, kNN), the same network untrained (random) and fine-tuned from its random "
        "init (scratch), with one budget and the same seeds. Top-1 % mean ± std over seeds. The defaults take "
        "about 5-8 CPU-minutes per method and seed on CIFAR-10-sized data (10k + 2k 32x32 images, one thread).",
        epilog="examples:\n"
        "  geomask eval images --train ../shared/data/images/cifar10/cifar10_train_10k.npz \\\n"
        "      --test ../shared/data/images/cifar10/cifar10_test_2k.npz --json cifar.json --plots plots/\n"
        "  geomask eval images --train out/cifar10 --test test_pngs/ --json r.json --methods mae simmim --seeds 0 1 2",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--train",
        required=True,
        metavar="DATA",
        help="pretraining and probe training images: a "
        "geomask prep images folder, a folder of images in class subfolders, or an .npz (images, labels)",
    )
    p.add_argument("--test", required=True, metavar="DATA", help="test images (same forms, same size)")
    p.add_argument("--json", required=True, metavar="OUT", help="write the accuracies here (JSON)")
    p.add_argument(
        "--methods",
        nargs="+",
        default=None,
        metavar="M",
        help="image methods to compare (default: every registered one)",
    )
    p.add_argument(
        "--config",
        default=None,
        metavar="YAML",
        help="sections merged onto every method's "
        "configs/<name>_cpu.yaml (method keys a method does not take are left out for it)",
    )
    p.add_argument("--seeds", nargs="+", type=int, default=[0], metavar="S", help="one run per seed (mean ± std)")
    p.add_argument(
        "--pretrain-steps",
        type=nonnegative_int,
        default=None,
        metavar="N",
        help="pretraining steps per method and seed, the same for every method (default: each method's own, "
        "geomask.eval.images.PRETRAIN_STEPS: spark 1500, mfm 1000, the others 500)",
    )
    p.add_argument(
        "--finetune-steps",
        type=positive_int,
        default=300,
        metavar="N",
        help="fine-tuning steps, the same for every method and scratch (default 300)",
    )
    p.add_argument("--finetune-batch", type=positive_int, default=64, metavar="B", help="fine-tuning batch size")
    p.add_argument(
        "--probe-epochs",
        type=positive_int,
        default=300,
        metavar="E",
        help="full-batch steps of the linear probe (default 300)",
    )
    p.add_argument(
        "--plots",
        default=None,
        metavar="DIR",
        help="write <method>_reconstructions.png (rows: masked input, reconstruction, original)",
    )
    p.add_argument(
        "--max-train",
        type=positive_int,
        default=None,
        metavar="N",
        help="use N --train images drawn at random (seed 0)",
    )
    p.add_argument(
        "--max-test", type=positive_int, default=None, metavar="N", help="use N --test images drawn at random (seed 0)"
    )
    p.add_argument("--threads", type=positive_int, default=None, metavar="T", help="torch CPU threads")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.set_defaults(func=cmd_eval_images)
