"""The ``geomask pretrain CONFIG [--set KEY=VALUE ...]`` command."""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["add_pretrain_parser", "cmd_pretrain"]


def cmd_pretrain(args: argparse.Namespace) -> int:
    """Run :func:`geomask.train.train` and print where checkpoints and logs went and the final losses."""
    from geomask.train.engine import train

    overrides = list(args.overrides)
    if args.out is not None:
        overrides.append(f"trainer.out_dir={args.out}")
    result = train(args.config, overrides)
    if result.rank != 0:
        return 0
    resumed = f" (resumed at step {result.resumed_from})" if result.resumed_from is not None else ""
    print(f"trained {result.steps} steps on {result.world_size} process(es){resumed}")
    print(f"data:       {result.data}")
    print(f"checkpoint: {result.checkpoint}")
    print(f"weights:    {result.model_path}" + (f", {result.encoder_path}" if result.encoder_path else ""))
    print(f"logs:       {result.log_dir if result.log_dir is not None else '(none)'}")
    losses = {k: v for k, v in result.metrics.items() if k != "step"}
    width = max((len(k) for k in losses), default=0)
    for k, v in sorted(losses.items()):
        print(f"{k.ljust(width)}  {v:.6g}")
    return 0


def add_pretrain_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``pretrain`` subcommand to an argparse ``subparsers`` object (its handler in ``func``)."""
    p = subparsers.add_parser(
        "pretrain",
        help="pretrain a method from a YAML config",
        description="Pretrain a method (mgvga, mgm, graphmae, ...) as a YAML config says (see configs/). "
        "Checkpoints, logs (CSV, TensorBoard), model.pt and the resolved config.yaml go to trainer.out_dir; a "
        "run whose out_dir holds checkpoints/last.ckpt resumes from it (trainer.resume). Distributed data "
        "parallel: --set trainer.devices=N trainer.strategy=ddp (CPU: gloo).",
    )
    p.add_argument("config", metavar="CONFIG", help="YAML config file")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        nargs="+",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value, e.g. --set trainer.max_steps=100 data.batch_size=16 (repeatable)",
    )
    p.add_argument("--out", default=None, metavar="DIR", help="shortcut for --set trainer.out_dir=DIR")
    p.set_defaults(func=_run)
    return p


def _run(args: argparse.Namespace) -> int:
    args.overrides = [o for group in args.overrides for o in group]
    return cmd_pretrain(args)
