"""``geomask eval objects DIR --json OUT``: Point-MAE / Point-BERT features of real objects, linear SVM probe.

The objects of a ``geomask prep objects`` folder are split into training and held-out objects: by scene (the
default: the last scan of the folder, or ``--test-scenes``, is held out) or by instance (a seeded random half).
Per seed, the method (the ``method`` section of ``--config``, default ``pointmae_cpu``) is built with that seed
and pretrained for ``--steps`` steps on the training objects only (batches of ``--batch-size``, each cloud
rotated about z by a random angle and scaled per axis in [0.8, 1.2]; AdamW at the config's lr and weight decay,
cosine decay); its frozen ``embed`` features, those of the same network untrained (``random``: the same seed's
initialisation) and two raw-point baselines are scored by the one-vs-rest linear SVM of
:mod:`geomask.eval.objects` (standardised features, fixed ``--svm-c``) on the held-out objects whose class occurs
in training:

* ``sorted``: each coordinate's sorted values at 32 quantiles (``[96]``);
* ``histogram``: the fraction of points in each cell of an 8×8×8 grid over ``[-1, 1]^3`` (``[512]``);
* ``majority``: every held-out object gets the most frequent training class (no SVM).

The features are those of Point-MAE's linear-SVM evaluation: the final (layer-normalised) encoder tokens of all
patches, pooled by mean and by max and concatenated (``[2C]``; Point-M2AE sums the two poolings).  Point-BERT's and
Point-MAE's released code fit scikit-learn's ``LinearSVC()`` with its fixed default C = 1 on raw features; here C is
fixed as well (``--svm-c``, default 1, no search on the held-out objects) and the features are standardised with
the training objects' mean and deviation, so that raw-point and network features meet the same C.

``--pretrain-crops N`` adds N unlabelled clouds to the pretraining set: random object-sized ball crops
(:func:`~geomask.eval.objects.scan_crops`; radii drawn among the training objects' own radii) of the scans whose
objects are all training objects, read from the ``source`` paths the folder's manifest records (or
``--crop-scans``), spread evenly over them and drawn anew for every seed.  A scan with held-out objects is never
cropped, so crops need ``--split scene``.

The JSON holds ``{"methods": {NAME: {"accuracy", "accuracy_std", "per_seed"}}, "data": {...}, "config": {...}}``;
``data.per_seed[SEED]`` gives the training and held-out counts per class (``train_classes`` / ``test_classes``,
``{label id: objects}``) and the number of crops.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path
from typing import Any

__all__ = ["add_object_eval_parser", "cmd_eval_objects", "evaluate_objects", "histogram_features", "sorted_features"]

QUANTILES = 32
CELLS = 8


def sorted_features(pos: Any, quantiles: int = QUANTILES) -> Any:
    """Each coordinate's sorted values at ``quantiles`` evenly spaced ranks: ``[M, P, 3]`` → ``[M, 3 Q]``."""
    import torch

    srt = pos.sort(dim=1).values  # [M, P, 3]
    idx = torch.linspace(0, pos.size(1) - 1, quantiles).round().long()
    return srt[:, idx].transpose(1, 2).reshape(len(pos), -1)


def histogram_features(pos: Any, cells: int = CELLS) -> Any:
    """Occupancy histogram over ``[-1, 1]^3``: the fraction of each cloud's points per cell, ``[M, cells^3]``."""
    import torch

    m, p, _ = pos.shape
    ijk = ((pos.clamp(-1, 1 - 1e-6) + 1) * (cells / 2)).long()
    flat = (ijk[..., 0] * cells + ijk[..., 1]) * cells + ijk[..., 2] + torch.arange(m)[:, None] * cells**3
    return torch.bincount(flat.reshape(-1), minlength=m * cells**3).reshape(m, -1).float() / p


def _augment(pos: Any, generator: Any) -> Any:
    import torch

    b = pos.size(0)
    theta = torch.rand(b, generator=generator) * (2 * math.pi)
    c, s = torch.cos(theta), torch.sin(theta)
    rot = torch.zeros(b, 3, 3)
    rot[:, 0, 0], rot[:, 0, 1], rot[:, 1, 0], rot[:, 1, 1], rot[:, 2, 2] = c, -s, s, c, 1.0
    scale = 0.8 + 0.4 * torch.rand(b, 1, 3, generator=generator)
    return (pos @ rot.transpose(1, 2)) * scale


def _split(ds: Any, split: str, test_scenes: list[str] | None, seed: int) -> tuple[Any, Any]:
    import torch

    from geomask.errors import UsageError

    if split == "instance":
        order = torch.randperm(len(ds), generator=torch.Generator().manual_seed(seed))
        test = torch.zeros(len(ds), dtype=torch.bool)
        test[order[: len(ds) // 2]] = True
        return ~test, test
    names = test_scenes or ds.scenes[-1:]
    unknown = [n for n in names if n not in ds.scenes]
    if unknown:
        raise UsageError(f"--test-scenes: no scene {unknown[0]!r} in {ds.root} (have {', '.join(ds.scenes)})")
    if len(ds.scenes) < 2:
        raise UsageError(f"{ds.root} holds one scene: a split by scene needs two (or use --split instance)")
    test = torch.isin(ds.scene, torch.tensor([ds.scenes.index(n) for n in names]))
    if bool(test.all()):
        raise UsageError("--test-scenes holds out every scene: keep at least one for training")
    return ~test, test


def _pretrain(model: Any, pos: Any, steps: int, batch_size: int, lr: float, wd: float, seed: int) -> list[float]:
    import torch

    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=wd)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * s / max(steps, 1))))
    losses = []
    model.train()
    for _ in range(steps):
        idx = torch.randint(len(pos), (min(batch_size, len(pos)),), generator=gen)
        loss = model(_augment(pos[idx], gen), gen)["loss"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        losses.append(float(loss.detach()))
    model.eval()
    return losses


def _class_counts(labels: Any) -> dict[str, int]:
    import torch

    ids, n = torch.unique(labels, return_counts=True)
    return {str(int(i)): int(c) for i, c in zip(ids, n)}


def _crop_sources(ds: Any, held_out: set[int], crop_scans: list[str] | None) -> list[Path]:
    """The scans crops may come from: the manifest's sources of the scenes without held-out objects, or
    ``crop_scans`` (refused when one is a held-out scene's recorded source or named after it)."""
    from geomask.datasets.prep_objects import MANIFEST_KIND, SCHEMA_VERSION
    from geomask.datasets.store import DatasetReader
    from geomask.errors import UsageError

    items = DatasetReader(ds.root, kind=MANIFEST_KIND, max_schema=SCHEMA_VERSION).items
    if crop_scans:
        banned = {Path(items[k]["source"]).resolve() for k in held_out}
        keys = [ds.scenes[k] for k in held_out]
        for path in map(Path, crop_scans):
            if path.resolve() in banned or any(path.name.startswith(key) for key in keys):
                raise UsageError(f"--crop-scans: {path} is a held-out scan (held out: {', '.join(keys)})")
        return [Path(p) for p in crop_scans]
    out = []
    for k in range(len(ds.scenes)):
        if k in held_out:
            continue
        path = Path(items[k]["source"])
        if not path.is_file():
            raise UsageError(
                f"--pretrain-crops: scene {ds.scenes[k]!r}'s scan {path} (recorded by prep objects) is not here; "
                "give the training scans with --crop-scans"
            )
        out.append(path)
    if not out:
        raise UsageError("--pretrain-crops: every scan holds held-out objects (use --split scene)")
    return out


def _crops(ds: Any, test: Any, count: int, crop_scans: list[str] | None, seed: int) -> Any:
    """``count`` crops of the training scans (module doc), ``[count, P, 3]``."""
    import torch

    from geomask.datasets.prep_objects import MANIFEST_KIND, SCHEMA_VERSION
    from geomask.datasets.store import DatasetReader
    from geomask.errors import UsageError
    from geomask.eval.objects import scan_crops
    from geomask.io.scans import read_scan

    held_out = {int(k) for k in torch.unique(ds.scene[test])}
    sources = _crop_sources(ds, held_out, crop_scans)
    reader = DatasetReader(ds.root, kind=MANIFEST_KIND, max_schema=SCHEMA_VERSION)
    radii = torch.cat([reader.load(k)["scales"].float() for k in range(len(ds.scenes)) if k not in held_out])
    gen = torch.Generator().manual_seed(seed)
    share = [count // len(sources) + (i < count % len(sources)) for i in range(len(sources))]
    out = []
    for path, n in zip(sources, share):
        if n == 0:
            continue
        pts = torch.from_numpy(read_scan(path).points[:, :3]).float()
        try:
            out.append(scan_crops(pts, radii, n, ds.points.size(1), gen)[0])
        except ValueError as e:
            raise UsageError(f"{path}: {e}") from None
    return torch.cat(out)


def evaluate_objects(
    root: str | Path,
    *,
    seeds: list[int],
    steps: int,
    config: str = "pointmae_cpu",
    split: str = "scene",
    test_scenes: list[str] | None = None,
    batch_size: int = 16,
    svm_c: float = 1.0,
    pretrain_crops: int = 0,
    crop_scans: list[str] | None = None,
) -> dict[str, Any]:
    """Pretrain per seed on the training objects (and ``pretrain_crops`` crops of the training scans) and probe
    the held-out ones (module doc); returns the result.

    Raises:
        UsageError: a bad split, no held-out object of a class seen in training, crops without a training scan.
        FormatError: ``root`` is not a ``scan_objects`` folder.
    """
    import torch

    from geomask.datasets.prep_objects import ScanObjectDataset
    from geomask.errors import UsageError
    from geomask.eval.objects import extract_features, svm_accuracy
    from geomask.methods.registry import build_method
    from geomask.train.config import load_config

    if pretrain_crops and split != "scene":
        raise UsageError(
            "--pretrain-crops needs --split scene: under --split instance every scan holds held-out objects"
        )
    cfg = load_config(config)
    ds = ScanObjectDataset(root)
    raw = {"sorted": sorted_features(ds.points), "histogram": histogram_features(ds.points)}
    per_seed: dict[str, list[float]] = {"pretrained": [], "random": [], "sorted": [], "histogram": [], "majority": []}
    info: dict[str, Any] = {}
    for seed in seeds:
        train, test = _split(ds, split, test_scenes, seed)
        held = test.clone()  # crops never come from a scan with held-out objects, seen classes or not
        seen = torch.isin(ds.labels, torch.unique(ds.labels[train]))
        test = test & seen
        if not bool(test.any()):
            raise UsageError(f"{root}: no held-out object has a class that occurs in training")
        y_tr, y_te = ds.labels[train], ds.labels[test]
        _, y_tr = torch.unique(y_tr, return_inverse=True)
        classes = torch.unique(ds.labels[train])
        y_te = torch.searchsorted(classes, y_te)
        info[str(seed)] = {
            "train": int(train.sum()),
            "test": int(test.sum()),
            "classes": len(classes),
            "train_classes": _class_counts(ds.labels[train]),
            "test_classes": _class_counts(ds.labels[test]),
        }
        per_seed["majority"].append(float((y_te == torch.bincount(y_tr).argmax()).double().mean()))
        pool = ds.points[train]
        if pretrain_crops:
            pool = torch.cat([pool, _crops(ds, held, pretrain_crops, crop_scans, seed)])
        info[str(seed)]["crops"] = pretrain_crops
        torch.manual_seed(seed)
        model = build_method(cfg.method.name, **cfg.method.kwargs)
        feats = extract_features(model, ds.points)
        per_seed["random"].append(svm_accuracy(feats[train], y_tr, feats[test], y_te, svm_c))
        t0 = time.perf_counter()
        losses = _pretrain(model, pool, steps, batch_size, cfg.optim.lr, cfg.optim.weight_decay, seed)
        info[str(seed)] |= {
            "pretrain_s": round(time.perf_counter() - t0, 1),
            "loss_first": losses[0] if losses else None,
            "loss_last": losses[-1] if losses else None,
        }
        feats = extract_features(model, ds.points)
        per_seed["pretrained"].append(svm_accuracy(feats[train], y_tr, feats[test], y_te, svm_c))
        for name, f in raw.items():
            per_seed[name].append(svm_accuracy(f[train], y_tr, f[test], y_te, svm_c))
    methods = {}
    for name, accs in per_seed.items():
        t = torch.tensor(accs, dtype=torch.float64)
        key = cfg.method.name if name == "pretrained" else name
        methods[key] = {"accuracy": float(t.mean()), "accuracy_std": float(t.std(unbiased=False)), "per_seed": accs}
    return {
        "methods": methods,
        "data": {"root": str(root), "objects": len(ds), "scenes": ds.scenes, "split": split, "per_seed": info},
        "config": {
            "config": str(config),
            "seeds": list(seeds),
            "steps": steps,
            "batch_size": batch_size,
            "svm_c": svm_c,
            "pretrain_crops": pretrain_crops,
            "crop_scans": crop_scans,
            "method": {"name": cfg.method.name, **cfg.method.kwargs},
        },
    }


def table(result: dict[str, Any]) -> str:
    """One line per method: ``mean ± std`` held-out accuracy over the seeds."""
    rows = [f"{'method':<12} held-out accuracy"]
    for name, m in result["methods"].items():
        rows.append(
            f"{name:<12} {m['accuracy']:.3f} ± {m['accuracy_std']:.3f}  "
            f"(seeds: {', '.join(f'{a:.3f}' for a in m['per_seed'])})"
        )
    return "\n".join(rows)


def cmd_eval_objects(args: argparse.Namespace) -> int:
    import torch

    from geomask.io.atomic import atomic_write_text

    torch.set_num_threads(args.threads)
    result = evaluate_objects(
        args.root,
        seeds=args.seeds,
        steps=args.steps,
        config=args.config,
        split=args.split,
        test_scenes=args.test_scenes,
        batch_size=args.batch_size,
        svm_c=args.svm_c,
        pretrain_crops=args.pretrain_crops,
        crop_scans=args.crop_scans,
    )
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.json, json.dumps(result, indent=1) + "\n")
    print(table(result))
    return 0


def add_object_eval_parser(eval_subparsers: argparse._SubParsersAction) -> None:
    """Add ``objects`` to an existing ``eval`` subparsers object."""
    from geomask.arguments import nonnegative_int, positive_float, positive_int

    p = eval_subparsers.add_parser(
        "objects",
        help="Point-MAE/Point-BERT on real objects (prep objects) vs random init and raw points: linear SVM",
        description="Split the objects of a geomask prep objects folder by scene (default: the last scan held out) "
        "or by instance (a seeded half), pretrain the config's method per seed on the training objects only, and "
        "score a linear SVM on the held-out objects for the pretrained features, the same network untrained "
        "(random), raw-point features (sorted coordinates, occupancy histogram) and the majority class. "
        "--pretrain-crops adds object-sized ball crops of the training scans to the pretraining set.",
        epilog="example:\n"
        "  geomask prep objects ../shared/data/scans/scannet --out data/scan_objects\n"
        "  geomask eval objects data/scan_objects --json objects.json --seeds 0 1 --steps 300\n"
        "  geomask eval objects data/scan_objects --json objects.json --seeds 0 1 2 --pretrain-crops 2000",
    )
    p.add_argument("root", metavar="DIR", help="a geomask prep objects folder")
    p.add_argument("--json", required=True, metavar="OUT", help="write the accuracies here (JSON)")
    p.add_argument("--config", default="pointmae_cpu", metavar="YAML", help="method and optim settings")
    p.add_argument("--seeds", type=nonnegative_int, nargs="+", default=[0, 1], metavar="S", help="seeds (0 1)")
    p.add_argument("--steps", type=nonnegative_int, default=300, metavar="N", help="pretraining steps per seed")
    p.add_argument("--batch-size", type=positive_int, default=16, metavar="B", help="objects per step")
    p.add_argument("--split", choices=("scene", "instance"), default="scene", help="how objects are held out")
    p.add_argument("--test-scenes", nargs="+", default=None, metavar="KEY", help="scenes held out (default: last)")
    p.add_argument("--svm-c", type=positive_float, default=1.0, metavar="C", help="the SVM's C (fixed)")
    p.add_argument(
        "--pretrain-crops",
        type=nonnegative_int,
        default=0,
        metavar="N",
        help="also pretrain on N object-sized ball crops of the training scans (0: objects only)",
    )
    p.add_argument(
        "--crop-scans",
        nargs="+",
        default=None,
        metavar="SCAN",
        help="scans to crop (default: the training scenes' sources in the folder's manifest)",
    )
    p.add_argument("--threads", type=positive_int, default=1, metavar="T", help="CPU threads")
    p.set_defaults(func=cmd_eval_objects)
