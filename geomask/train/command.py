"""The ``geomask pretrain CONFIG [--set KEY=VALUE ...] [--out DIR] [--resume]`` command.

``CONFIG`` is a YAML file or the name of a shipped config (``mgm_cpu``; see
:func:`geomask.train.config.available_configs`).  ``--set`` takes any number of ``KEY=VALUE`` words, so a
``CONFIG`` written after it (``pretrain --set trainer.max_steps=5 mgm_cpu``) is recognised as the one word
without ``=`` (an override always has one).
"""

from __future__ import annotations

import argparse
from typing import Any

from geomask.errors import UsageError

__all__ = ["add_pretrain_parser", "cmd_pretrain", "split_config_and_overrides"]

EXAMPLES = """\
examples:
  geomask pretrain mgm_cpu                      a shipped config by name (see configs/, or configs/NAME.yaml)
  geomask pretrain mgm_cpu --set data.roots=[out/demo/corpus] trainer.max_steps=1000
  geomask pretrain --set trainer.max_steps=50 my.yaml     CONFIG may also come after --set
  geomask pretrain my.yaml --out runs/exp2      a new run folder for a changed config
  geomask pretrain my.yaml --resume             continue trainer.out_dir although the config changed
  geomask pretrain mgm_cpu --set trainer.devices=2 trainer.strategy=ddp   two processes (CPU: gloo)
  geomask pretrain dgm.yaml --import dgm.py     a method of your own, registered by dgm.py (README: Add a method)

An out_dir holding a run continues it when the stored config.yaml equals this one on every key that can
change results (out_dir, logging, checkpoint cadence, threads and loader workers may differ; trainer.max_steps
may grow when the learning-rate schedule keeps its length); a run already at max_steps is not run again; any
other change is refused, naming the keys that differ.
"""


def cmd_pretrain(args: argparse.Namespace) -> int:
    """Run :func:`geomask.train.train` and print where checkpoints and logs went and the final losses."""
    from geomask.train.engine import train

    config, overrides = split_config_and_overrides(args.config, args.overrides)
    if args.out is not None:
        overrides.append(f"trainer.out_dir={args.out}")
    if getattr(args, "resume", False):
        overrides.append("trainer.resume=true")
    result = train(config, overrides)
    if result.rank != 0:
        return 0
    if result.status == "complete":
        print(f"nothing to do: {result.out_dir} is complete at step {result.steps}")
        print(f"  (--set trainer.max_steps=N with N > {result.steps} trains it longer; --out DIR starts a new run)")
        print(f"weights:    {result.model_path}" + (f", {result.encoder_path}" if result.encoder_path else ""))
        return 0
    if result.resumed_from is not None:
        ran = result.steps - result.resumed_from
        print(f"trained {ran} steps (step {result.resumed_from} → {result.steps}) on {result.world_size} process(es)")
    else:
        print(f"trained {result.steps} steps on {result.world_size} process(es)")
    print(f"data:       {result.data}")
    print(f"checkpoint: {result.checkpoint}")
    print(f"weights:    {result.model_path}" + (f", {result.encoder_path}" if result.encoder_path else ""))
    print(f"logs:       {result.log_dir if result.log_dir is not None else '(none)'}")
    losses = {k: v for k, v in result.metrics.items() if k != "step"}
    width = max((len(k) for k in losses), default=0)
    for k, v in sorted(losses.items()):
        print(f"{k.ljust(width)}  {v:.6g}")
    return 0


def split_config_and_overrides(config: str | None, words: list[str]) -> tuple[str, list[str]]:
    """``(CONFIG, overrides)`` from the positional ``config`` and the words ``--set`` took.

    ``--set`` takes every word up to the next option, so a ``CONFIG`` written after it lands among the
    overrides: the one word without ``=`` is it.

    Raises:
        UsageError: no ``CONFIG``, or more than one word that is not ``KEY=VALUE``.
    """
    overrides = [w for w in words if "=" in w]
    configs = ([config] if config is not None else []) + [w for w in words if "=" not in w]
    if not configs:
        from geomask.train.config import available_configs

        names = ", ".join(available_configs()) or "none shipped"
        raise UsageError(f"pretrain needs a CONFIG: a YAML file or a shipped config name ({names})")
    if len(configs) > 1:
        raise UsageError(
            f"pretrain takes one CONFIG, got {' and '.join(repr(c) for c in configs)} "
            "(an override reads KEY=VALUE, e.g. --set trainer.max_steps=100)"
        )
    return configs[0], overrides


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the epilog's example lines as written."""


def add_pretrain_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``pretrain`` subcommand to an argparse ``subparsers`` object (its handler in ``func``)."""
    p = subparsers.add_parser(
        "pretrain",
        help="pretrain a method from a YAML config",
        description="Pretrain a method (mgvga, mgm, graphmae, pointmae, msm, ...) as a YAML config says. "
        "Checkpoints, logs (CSV, TensorBoard), model.pt and the resolved config.yaml go to trainer.out_dir.",
        epilog=EXAMPLES,
        formatter_class=_HelpFormatter,
    )
    p.add_argument(
        "config",
        nargs="?",
        default=None,
        metavar="CONFIG",
        help="a YAML config file, or a shipped config's name (mgm_cpu, configs/mgm_cpu.yaml)",
    )
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        nargs="+",
        default=[],
        metavar="KEY=VALUE",
        help="override config values, e.g. --set trainer.max_steps=100 data.batch_size=16 (repeatable; "
        "default: the config's values)",
    )
    p.add_argument(
        "--out",
        default=None,
        metavar="DIR",
        help="the run folder, shortcut for --set trainer.out_dir=DIR (default: the config's trainer.out_dir)",
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in the run folder even though the config changed, where the weights fit "
        "(trainer.resume=true; default: continue only an unchanged config; --set trainer.resume=false "
        "starts over there)",
    )
    p.add_argument(
        "--import",
        dest="imports",
        action="append",
        default=[],
        metavar="MODULE",
        help="a Python file (my_method.py) or module (pkg.methods) to import first, so that the methods, maskers, "
        "losses and targets it registers can be named in the config (repeatable)",
    )
    p.set_defaults(func=_run)
    return p


def import_plugins(specs: list[str]) -> None:
    """Import each ``--import`` spec: a ``.py`` file (by path) or a dotted module name.

    Raises:
        UsageError: a file or module that does not exist.
    """
    import importlib
    import importlib.util
    import sys
    from pathlib import Path

    for spec in specs:
        path = Path(spec)
        if path.suffix == ".py":
            if not path.is_file():
                raise UsageError(f"--import {spec}: no such file")
            name = path.stem
            if name in sys.modules:
                continue
            module_spec = importlib.util.spec_from_file_location(name, path.resolve())
            module = importlib.util.module_from_spec(module_spec)
            sys.modules[name] = module  # registered under its stem, as `import NAME` beside it would
            sys.path.insert(0, str(path.resolve().parent))  # its own imports of neighbouring files
            try:
                module_spec.loader.exec_module(module)
            except BaseException:
                sys.modules.pop(name, None)
                raise
        else:
            try:
                importlib.import_module(spec)
            except ModuleNotFoundError as e:
                raise UsageError(f"--import {spec}: no module named {e.name!r}") from None


def _run(args: argparse.Namespace) -> int:
    args.overrides = [o for group in args.overrides for o in group]
    import_plugins(args.imports)
    return cmd_pretrain(args)
