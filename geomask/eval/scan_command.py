"""``geomask eval probe`` and ``geomask eval weak``: argparse wiring for the scene-level evaluations.

The lead adds them to the ``eval`` command with ``add_scan_eval_parsers(eval_subparsers)``; each parser sets
``func`` to a callable ``func(args) -> int``.
"""

from __future__ import annotations

import argparse

from geomask.arguments import fraction, positive_float, positive_int

__all__ = ["add_scan_eval_parsers", "cmd_eval_probe", "cmd_eval_weak"]


def _common(p: argparse.ArgumentParser, default_map_hint: str) -> None:
    scans = "POINTS[:LABELS] scan files, or 'geomask prep scans' folders (every scan in them)"
    p.add_argument("--train", nargs="+", required=True, metavar="SCAN", help=f"{scans} to train on")
    p.add_argument("--test", nargs="+", required=True, metavar="SCAN", help=f"{scans} to score")
    p.add_argument("--json", required=True, metavar="OUT", help="results file (JSON); the plot goes beside it")
    p.add_argument("--config", default=None, metavar="CONFIG", help="eval config YAML (default: built-in)")
    p.add_argument(
        "--label-map", default=None, metavar="MAP", help=f"label map, e.g. {default_map_hint} (geomask list label-maps)"
    )
    p.add_argument(
        "--voxel-size", type=positive_float, default=None, metavar="V", help="voxel edge in metres (default: config)"
    )
    p.add_argument("--steps", type=positive_int, default=None, metavar="N", help="training steps (default: config)")
    p.add_argument(
        "--seed", type=int, default=None, help="seed of initialisation, crops, masks and labels (default: config)"
    )
    p.add_argument("--threads", type=positive_int, default=None, metavar="T", help="CPU threads (default: config)")
    p.add_argument("--plot", default=None, metavar="PNG", help="per-class IoU plot (default: OUT with .png)")


def add_scan_eval_parsers(eval_subparsers: argparse._SubParsersAction) -> None:
    """Add ``probe`` and ``weak`` to an existing ``eval`` subparsers object."""
    p = eval_subparsers.add_parser(
        "probe",
        help="MSM features vs random and raw features: linear probe and kNN on scans",
        description="Pretrain Masked Scene Modeling on the training scans (or load --checkpoint), read every "
        "decoder level back at the points, and score a linear probe and a kNN classifier trained on the "
        "training scans' labels on the test scans, for msm, random (same network, untrained) and raw (xyz + "
        "colour) features. Writes {'methods': {NAME: {'linear': {'miou', 'oa', ...}, 'knn': {...}}}}.",
        epilog="examples:\n"
        "  geomask eval probe --train s0.ply:s0.npy --test s1.ply:s1.npy --json probe.json \\\n"
        "      --label-map nyu40_to_scannet20 --steps 100\n"
        "  geomask eval probe --train data/scans_train --test data/scans_test --json probe.json\n"
        "  geomask eval probe --train s0.ply:s0.npy --test s1.ply:s1.npy --json probe.json --no-coords",
    )
    _common(p, "nyu40_to_scannet20 or semantickitti_learning_to_train")
    p.add_argument("--checkpoint", default=None, metavar="CKPT", help="MSM weights (model.pt / .ckpt) to load")
    p.add_argument(
        "--no-coords",
        dest="coords",
        action="store_false",
        help="leave coordinates out: raw = colour only (no xyz), and the network gets no coordinate input "
        "channels (method.geometry forced to none, for msm and random alike); use when train and test scans "
        "show the same place, where kNN on xyz is nearly a label transfer",
    )
    p.set_defaults(func=cmd_eval_probe)

    p = eval_subparsers.add_parser(
        "weak",
        help="CPCM vs the no-mask baseline at a label fraction",
        description="Sample --label-fraction of each training scan's labelled points (seeded, saved as index "
        "files), train CPCM and the same network without the masked branch, and score both on the test "
        "scans. Writes {'methods': {'cpcm': {'test': {'miou', 'oa', ...}, 'train_all': ...}, 'no_mask': ...}}.",
        epilog="example:\n"
        "  geomask eval weak --label-fraction 0.001 --train s0.ply:s0.npy --test s1.ply:s1.npy --json weak.json",
    )
    _common(p, "nyu40_to_scannet20 or semantickitti_learning_to_train")
    p.add_argument(
        "--label-fraction", type=fraction, required=True, metavar="F", help="in (0, 1], e.g. 0.001 for 0.1 %%"
    )
    p.add_argument(
        "--labels-dir", default=None, metavar="DIR", help="label index files (default: weak_labels beside OUT)"
    )
    p.set_defaults(func=cmd_eval_weak)


def _threads(args: argparse.Namespace) -> None:
    if args.threads is not None:
        import torch

        torch.set_num_threads(max(1, args.threads))


def cmd_eval_probe(args: argparse.Namespace) -> int:
    from geomask.eval.probe import run_probe

    _threads(args)
    run_probe(
        args.train,
        args.test,
        args.json,
        config=args.config,
        checkpoint=args.checkpoint,
        label_map=args.label_map,
        voxel_size=args.voxel_size,
        steps=args.steps,
        seed=args.seed,
        plot=args.plot,
        coords=args.coords,
    )
    return 0


def cmd_eval_weak(args: argparse.Namespace) -> int:
    from geomask.eval.weak import run_weak

    _threads(args)
    run_weak(
        args.train,
        args.test,
        args.json,
        args.label_fraction,
        config=args.config,
        labels_dir=args.labels_dir,
        label_map=args.label_map,
        voxel_size=args.voxel_size,
        steps=args.steps,
        seed=args.seed,
        plot=args.plot,
    )
    return 0
