"""``geomask eval images``: the image methods' frozen features and fine-tuning against raw pixels, a random and a
scratch network.

For each method (default: every registered method whose ``data_kinds`` include ``images``) and seed:

1. **Pretrain** a fresh model (built with the seed from ``configs/<name>_cpu.yaml``, the ``method`` section, plus
   ``--config`` overrides) on the ``--train`` images for ``pretrain_steps`` steps (``--pretrain-steps`` for every
   method; without it :data:`PRETRAIN_STEPS` of the method, else :data:`DEFAULT_PRETRAIN_STEPS`): a plain loop
   (AdamW with the config's ``optim`` lr / weight decay / betas / warmup / cosine / grad clip, batch
   ``data.batch_size``), random resized crops (area ``data.images.crop_scale``, default 0.2-1) and flips drawn from
   the step's generator, like ``geomask pretrain``.
2. **Frozen features** ``method.features(batch)`` of every train and test image, scored by
   * ``linear``: top-1 of a logistic regression (one linear layer, Adam lr 1e-2, weight decay 1e-4, full batch,
     ``probe_epochs`` steps) on features standardised with the train set's mean and std;
   * ``knn``: top-1 of a weighted k-NN, k = 20 on cosine similarity, each neighbour voting ``exp(s / 0.07)`` for
     its class (InstDisc's / DINO's ``eval_knn`` rule, temperature 0.07).
3. **Fine-tune** the pretrained encoder with a new linear head (AdamW lr 5e-4, weight decay 0.05, cosine,
   ``finetune_steps`` steps of ``finetune_batch`` images, crops of scale 0.5-1 and flips), then top-1 on the test
   set (no augmentation).

Baselines, each measured in the same run with the same seeds: ``raw`` (linear and kNN on the flattened
normalised pixels), ``random`` (the method's network as built with the seed, untrained: linear and kNN) and
``scratch`` (that network fine-tuned from the same initialisation with the same fine-tune budget).  Methods that
share one encoder architecture (the same parameter names and shapes, mask tokens aside) share these baselines;
when the methods hold several architectures the baselines are named ``random:<method>`` / ``scratch:<method>``
after the first method of each, and ``baselines`` in the result says which belongs to which method.

Images are normalised per channel with the train set's mean and std (an image folder's, an ``npz``'s or a
``geomask prep images`` folder's pixels alike).  Results are top-1 accuracy in % (mean and population std over
seeds) and wall-clock ``seconds`` per method (all seeds).

The picture grid (:func:`reconstruction_rows`): 8 test images, rows masked input / reconstruction / original, by
:func:`reconstruct`, which dispatches on what the method exposes (module function docstring).
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor, nn

from geomask.errors import FormatError, GeomaskError, UsageError

__all__ = [
    "DEFAULT_METHODS",
    "DEFAULT_PRETRAIN_STEPS",
    "PRETRAIN_STEPS",
    "ImageEvalBudget",
    "ImageSet",
    "evaluate_images",
    "finetune_top1",
    "image_methods",
    "knn_top1",
    "linear_top1",
    "load_image_set",
    "reconstruct",
    "reconstruction_rows",
    "table",
]

DEFAULT_METHODS = ("mae", "simmim", "spark", "mfm", "hpm")
"""The image methods of issue #12 in table order; other registered image methods follow them."""
DEFAULT_PRETRAIN_STEPS = 500
"""Pretraining steps of a method without its own entry in :data:`PRETRAIN_STEPS`."""
PRETRAIN_STEPS: dict[str, int] = {"spark": 1500, "mfm": 1000}
"""Per-method default pretraining steps (issue #12's budget: at most 15 minutes of pretraining per method on 2
cores).  SparK: 1500 steps (about 10 epochs of 10,000 images; its whole CIFAR-10 evaluation, baselines included,
took 251 s on one thread), at ``configs/spark_cpu.yaml``'s lr 5e-4 (its comment gives the measurements).  MFM:
1000 steps (CIFAR-10, seed 0, one thread: linear 42.50 / fine-tune 38.85 at 500 steps, 44.35 / 41.00 at 1000;
its pretraining row took 614 s on a loaded machine)."""
KNN_K = 20
KNN_TEMPERATURE = 0.07
_CONFIGS = Path(__file__).resolve().parents[2] / "configs"


# ----------------------------------------------------------------------------------------------------- data


class ImageSet(NamedTuple):
    """``images [N, C, H, W]`` uint8, ``labels [N]`` int64, class names, and where they came from."""

    images: Tensor
    labels: Tensor
    classes: list[str]
    source: str

    def subset(self, n: int | None, seed: int = 0) -> ImageSet:
        """``n`` images drawn without replacement by a seeded permutation, kept in their order (all of them for
        ``None``): files sorted by class still give every class."""
        if n is None or n >= len(self.labels):
            return self
        pick = torch.randperm(len(self.labels), generator=torch.Generator().manual_seed(seed))[:n].sort().values
        return ImageSet(self.images[pick], self.labels[pick], self.classes, f"{self.source} ({n} drawn, seed {seed})")


def load_image_set(path: str | Path) -> ImageSet:
    """A ``geomask prep images`` folder, a folder of image files (class subfolders) or an ``.npz`` / ``.npy``.

    Raises:
        MissingFileError / FormatError: no such path, an unreadable source, or no labelled image.
    """
    from geomask.datasets.image_sources import read_folder, read_image_array, source_format

    path = Path(path)
    kind = source_format(path)  # raises for a missing path or a file of another kind
    if kind == "folder" and (path / "manifest.json").is_file():
        from geomask.datasets.images import ImageFolderDataset, ImagesOptions

        ds = ImageFolderDataset(path, ImagesOptions(augment=False))
        images, labels = ds.tensors()
        classes = list(ds.classes)
    elif kind == "folder":
        arr, lab, classes, failed = read_folder(path, None, None)
        for f, msg in failed:
            import sys

            print(f"error: {msg if f in msg else f'{f}: {msg}'} (left out)", file=sys.stderr)
        images, labels = torch.from_numpy(arr), torch.from_numpy(lab)
    elif kind in ("npz", "npy"):
        arr, lab, classes = read_image_array(path)
        images, labels = torch.from_numpy(np.ascontiguousarray(arr)), torch.from_numpy(lab)
    else:
        raise FormatError(path, "a single image is not a data set: give a folder, an .npz or a prep images folder")
    keep = labels >= 0
    if not bool(keep.any()):
        raise FormatError(path, "no labelled images (an evaluation needs class labels)")
    return ImageSet(images[keep].contiguous(), labels[keep].long(), classes, str(path))


def _normaliser(images: Tensor) -> tuple[Tensor, Tensor]:
    """Per-channel mean and std (``[1, C, 1, 1]``, units of ``x / 255``) of uint8 images."""
    x = images.double() / 255.0
    mean = x.mean(dim=(0, 2, 3))
    std = x.std(dim=(0, 2, 3)).clamp_min(1e-3)
    return mean.float()[None, :, None, None], std.float()[None, :, None, None]


def _normalise(images: Tensor, mean: Tensor, std: Tensor) -> Tensor:
    return (images.float() / 255.0 - mean) / std


# ----------------------------------------------------------------------------------------------------- methods


def image_methods() -> list[str]:
    """Registered methods whose ``data_kinds`` include ``images``: :data:`DEFAULT_METHODS` first, then the rest
    in registration order."""
    import geomask.methods  # noqa: F401  (registers every method)
    from geomask.methods.registry import METHODS, method_data_kinds

    found = []
    for name in list(METHODS):
        try:
            kinds = method_data_kinds(name)
        except Exception:  # a lazily loaded builder that fails to import is not an image method we can run
            kinds = None
        if kinds and "images" in kinds:
            found.append(name)
    return [m for m in DEFAULT_METHODS if m in found] + [m for m in found if m not in DEFAULT_METHODS]


def _read_yaml(path: Path) -> dict[str, Any]:
    from omegaconf import OmegaConf

    try:
        return OmegaConf.to_container(OmegaConf.load(path), resolve=True)  # type: ignore[return-value]
    except Exception as e:
        raise FormatError(path, f"cannot read the YAML ({type(e).__name__}: {' '.join(str(e).split())})") from None


def method_config(name: str, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """``configs/<name>_cpu.yaml`` (or ``<name>.yaml``) with ``overrides`` merged section by section; ``method``
    overrides the builder does not take are dropped (listed under ``ignored``).  A ``method`` override that names
    another ``encoder`` than the shipped config (SimMIM's ``encoder: cnn``) replaces that section instead of
    merging into it: the shipped encoder's keywords do not apply to another architecture."""
    from geomask.methods.registry import method_defaults, method_keywords

    for candidate in (_CONFIGS / f"{name}_cpu.yaml", _CONFIGS / f"{name}.yaml"):
        if candidate.is_file():
            cfg = _read_yaml(candidate)
            break
    else:
        cfg = {"method": {"name": name}}
    ignored = []
    for section, values in (overrides or {}).items():
        if not isinstance(values, dict):
            cfg[section] = values
            continue
        base = dict(cfg.get(section) or {})
        if section == "method" and "encoder" in values:
            shipped = base.get("encoder", method_defaults(name).get("encoder"))
            if values["encoder"] != shipped:
                base = {}
        for k, v in values.items():
            if section == "method" and k != "name" and k not in method_keywords(name):
                ignored.append(k)
                continue
            base[k] = v
        cfg[section] = base
    cfg.setdefault("method", {})["name"] = name
    cfg["ignored"] = ignored
    return cfg


def _build(name: str, cfg: dict[str, Any], seed: int, steps: int) -> nn.Module:
    from geomask.methods import build_method
    from geomask.methods.registry import method_keywords

    kw = {k: v for k, v in cfg["method"].items() if k != "name"}
    if "total_steps" in method_keywords(name):  # HPM's easy-to-hard schedule spans this run's steps
        kw["total_steps"] = max(int(steps), 1)
    torch.manual_seed(seed)
    return build_method(name, **kw)


def _cosine(step: int, total: int, warmup: int) -> float:
    if step < warmup:
        return (step + 1) / warmup
    return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(total - warmup, 1)))


def _batch(values: Tensor, labels: Tensor | None = None) -> Any:
    from geomask.datasets.images import ImageBatch

    return ImageBatch(values, math.gcd(4, *values.shape[2:]), labels=labels)


def pretrain(model: nn.Module, x: Tensor, cfg: dict[str, Any], steps: int, seed: int) -> None:
    """``steps`` steps of ``model``'s loss on random batches of normalised images ``x`` (module docstring)."""
    from geomask.datasets.image_augment import ImageAugment
    from geomask.train.optimizers import build_optimizer

    if steps <= 0:
        return
    o, d = cfg.get("optim") or {}, cfg.get("data") or {}
    opt = build_optimizer(
        str(o.get("name", "adamw")),
        model.parameters(),
        lr=float(o.get("lr", 1e-3)),
        weight_decay=float(o.get("weight_decay", 0.05)),
        betas=tuple(float(b) for b in o.get("betas", (0.9, 0.95))),  # type: ignore[arg-type]
    )
    warmup = min(int(o.get("warmup_steps", 0)), steps // 5)
    cosine = o.get("scheduler", "cosine") == "cosine"
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: _cosine(s, steps, warmup) if cosine else 1.0)
    clip = o.get("grad_clip")
    bs = min(int(d.get("batch_size", 64)), len(x))
    crops = d.get("images") or {}
    aug = ImageAugment(
        tuple(crops.get("crop_scale", (0.2, 1.0))),  # type: ignore[arg-type]
        tuple(crops.get("crop_ratio", (3 / 4, 4 / 3))),  # type: ignore[arg-type]
        bool(crops.get("flip", True)),
    )
    gen = torch.Generator().manual_seed(seed)
    model.train()
    for step in range(steps):
        idx = torch.randint(len(x), (bs,), generator=gen)
        loss = model(_batch(aug(x[idx], gen)), gen)["loss"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if clip:
            nn.utils.clip_grad_norm_(model.parameters(), float(clip))
        opt.step()
        sched.step()
        hook = getattr(model, "on_train_step_end", None)
        if callable(hook):
            hook(step)
    model.eval()


@torch.no_grad()
def features(model: nn.Module, x: Tensor, chunk: int = 256) -> Tensor:
    """``model.features`` of normalised images ``x`` in chunks, ``[N, D]`` float32 (eval mode)."""
    model.eval()
    out = [model.features(_batch(x[i : i + chunk])).float() for i in range(0, len(x), chunk)]
    return torch.cat(out).reshape(len(x), -1)


# ----------------------------------------------------------------------------------------------------- probes


def linear_top1(
    train: Tensor, y_train: Tensor, test: Tensor, y_test: Tensor, seed: int, epochs: int = 300, classes: int = 0
) -> float:
    """Top-1 (%) of a logistic regression on standardised features (Adam lr 1e-2, wd 1e-4, full batch)."""
    mean, std = train.mean(0, keepdim=True), train.std(0, keepdim=True).clamp_min(1e-6)
    a, b = (train - mean) / std, (test - mean) / std
    k = max(classes, int(y_train.max()) + 1, int(y_test.max()) + 1)
    torch.manual_seed(seed)
    clf = nn.Linear(a.shape[1], k)
    opt = torch.optim.Adam(clf.parameters(), lr=1e-2, weight_decay=1e-4)
    with torch.enable_grad():
        for _ in range(epochs):
            loss = nn.functional.cross_entropy(clf(a), y_train)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    with torch.no_grad():
        return 100.0 * float((clf(b).argmax(1) == y_test).float().mean())


@torch.no_grad()
def knn_top1(
    train: Tensor, y_train: Tensor, test: Tensor, y_test: Tensor, k: int = KNN_K, t: float = KNN_TEMPERATURE
) -> float:
    """Top-1 (%) of the weighted cosine k-NN (module docstring): votes ``exp(s / t)`` of the ``k`` nearest."""
    a = nn.functional.normalize(train.float(), dim=1)
    b = nn.functional.normalize(test.float(), dim=1)
    k = min(k, len(a))
    classes = max(int(y_train.max()), int(y_test.max())) + 1
    correct = 0
    for i in range(0, len(b), 1024):
        sim, idx = (b[i : i + 1024] @ a.T).topk(k, dim=1)
        votes = torch.zeros(len(sim), classes).scatter_add_(1, y_train[idx], (sim / t).exp())
        correct += int((votes.argmax(1) == y_test[i : i + 1024]).sum())
    return 100.0 * correct / len(b)


def finetune_top1(
    model: nn.Module,
    x_train: Tensor,
    y_train: Tensor,
    x_test: Tensor,
    y_test: Tensor,
    steps: int,
    batch: int,
    seed: int,
    classes: int,
) -> float:
    """Fine-tune ``model``'s encoder (through ``model.features``) with a new linear head; test top-1 (%)."""
    from geomask.datasets.image_augment import ImageAugment

    torch.manual_seed(seed)
    dim = features(model, x_train[:2]).shape[1]
    head = nn.Linear(dim, classes)
    params = [p for p in model.encoder.parameters() if p.requires_grad] + list(head.parameters())
    opt = torch.optim.AdamW(params, lr=5e-4, weight_decay=0.05)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: _cosine(s, steps, max(steps // 10, 1)))
    aug = ImageAugment((0.5, 1.0), (3 / 4, 4 / 3), True)
    gen = torch.Generator().manual_seed(seed + 7919)
    bs = min(batch, len(x_train))
    model.train()
    with torch.enable_grad():
        for _ in range(steps):
            idx = torch.randint(len(x_train), (bs,), generator=gen)
            logits = head(model.features(_batch(aug(x_train[idx], gen))).float())
            loss = nn.functional.cross_entropy(logits, y_train[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(params, 5.0)
            opt.step()
            sched.step()
    model.eval()
    with torch.no_grad():
        logits = torch.cat([head(f) for f in features(model, x_test).split(1024)])
    return 100.0 * float((logits.argmax(1) == y_test).float().mean())


# ----------------------------------------------------------------------------------------------------- pictures


def _grid_of(method: nn.Module, x: Tensor) -> tuple[int, ...]:
    own = getattr(method, "grid", None)
    if callable(own) and not isinstance(own, nn.Module):
        return tuple(own(x))
    return tuple(method.encoder.grid(x))  # type: ignore[union-attr, operator]


def reconstruct(method: nn.Module, batch: Any, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """``(masked_input, reconstruction)``, both ``[B, C, H, W]`` in the batch's (normalised) pixel space.

    Dispatch on what the method exposes, in this order:

    * ``method.reconstruct_pixels(batch, generator)``: used as it is (a method may give its own);
    * a ``reconstruct`` whose output has ``corrupted`` and an image ``pred`` (MFM): the frequency mask is drawn by
      ``method.masker`` on the image-sized grid; the masked input is the filtered image, the reconstruction the
      prediction;
    * a ``reconstruct(values, mask)`` returning patch ``pred [B, L, P]`` (MAE, SimMIM, SparK, HPM): the mask is
      ``method.draw_mask`` (HPM) or ``method.masker`` on the token grid (``method.grid`` or the encoder's); with a
      ``target`` (``norm_pix``) the prediction is mapped back to pixels with each patch's own mean and variance
      (MAE's visualisation); the reconstruction shows the predicted masked patches over the visible original,
      the masked input has masked patches at 0 (the data set's mean colour).

    Raises:
        UsageError: the method exposes none of these.
    """
    from geomask.grids.patches import patchify, unpatchify
    from geomask.masking.layout import TokenGridLayout
    from geomask.methods.mae import image_values

    own = getattr(method, "reconstruct_pixels", None)
    if callable(own):
        return own(batch, generator)
    rec = getattr(method, "reconstruct", None)
    masker = getattr(method, "masker", None)
    if not callable(rec) or masker is None:
        raise UsageError(f"{type(method).__name__} has no reconstruct(values, mask) and masker to draw pictures with")
    x = image_values(batch)
    b, spatial = x.size(0), tuple(x.shape[2:])
    if hasattr(method, "predict") and hasattr(method, "clamp"):  # MFM: masks over the image-sized spectrum
        out = rec(x, masker(TokenGridLayout(b, spatial, x.device), generator))
        return out.corrupted, out.pred
    grid = _grid_of(method, x)
    draw = getattr(method, "draw_mask", None)
    if callable(draw):
        mask = draw(x, generator)
    else:
        mask = masker(TokenGridLayout(b, grid, x.device), generator)
    mask = mask.reshape(b, -1)
    out = rec(x, mask)
    patch = tuple(s // g for s, g in zip(spatial, grid))
    raw = patchify(x, patch)
    pred = out.pred.float()
    target = getattr(method, "target", None)
    if target is not None:
        eps = float(getattr(target, "eps", 1e-6))
        pred = pred * (raw.var(-1, keepdim=True) + eps).sqrt() + raw.mean(-1, keepdim=True)
    m = mask[..., None]
    shown = unpatchify(torch.where(m, pred, raw), patch, spatial)
    masked = unpatchify(raw.masked_fill(m, 0.0), patch, spatial)
    return masked, shown


@torch.no_grad()
def reconstruction_rows(
    method: nn.Module, x: Tensor, mean: Tensor, std: Tensor, seed: int
) -> tuple[Tensor, Tensor, Tensor]:
    """The grid's rows for normalised images ``x``: masked input, reconstruction, original, in ``[0, 1]``."""
    method.eval()
    masked, shown = reconstruct(method, _batch(x), torch.Generator().manual_seed(seed))

    def pixels(v: Tensor) -> Tensor:
        return (v.float() * std + mean).clamp(0, 1)

    return pixels(masked), pixels(shown), pixels(x)


# ----------------------------------------------------------------------------------------------------- protocol


@dataclass(frozen=True)
class ImageEvalBudget:
    """The one budget every method and baseline gets (the command's options); ``pretrain_steps=None``: each
    method's own default (:meth:`steps_for`)."""

    methods: tuple[str, ...] = ()
    seeds: tuple[int, ...] = (0,)
    pretrain_steps: int | None = None
    finetune_steps: int = 300
    finetune_batch: int = 64
    probe_epochs: int = 300
    overrides: dict[str, Any] = field(default_factory=dict)

    def steps_for(self, method: str) -> int:
        """``pretrain_steps``, or without it :data:`PRETRAIN_STEPS` of ``method`` (:data:`DEFAULT_PRETRAIN_STEPS`)."""
        if self.pretrain_steps is not None:
            return int(self.pretrain_steps)
        return PRETRAIN_STEPS.get(method, DEFAULT_PRETRAIN_STEPS)


def _signature(model: nn.Module) -> tuple:
    enc = getattr(model, "encoder", model)
    shapes = tuple((n, tuple(p.shape)) for n, p in enc.named_parameters() if "mask_token" not in n)
    return (type(enc).__name__, shapes)


def _summary(values: list[float]) -> dict[str, float]:
    a = np.asarray(values, dtype=np.float64)
    return {"top1": float(a.mean()), "top1_std": float(a.std())}


def evaluate_images(
    train: ImageSet,
    test: ImageSet,
    budget: ImageEvalBudget,
    *,
    plots: str | Path | None = None,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """The comparison (module docstring): ``{"methods": {NAME: {"linear"|"knn"|"finetune": {"top1",
    "top1_std"}, "seconds"}}, "baselines": {METHOD: {"random": NAME, "scratch": NAME}}, "data": ..., "config":
    ..., "plots": [...]}``."""
    say = log or (lambda s: None)
    if tuple(train.images.shape[1:]) != tuple(test.images.shape[1:]):
        raise UsageError(
            f"--train images are {list(train.images.shape[1:])}, --test images {list(test.images.shape[1:])}: "
            "give both sets at one size (geomask prep images --size)"
        )
    methods = list(budget.methods) or image_methods()
    known = image_methods()
    bad = [m for m in methods if m not in known]
    if bad:
        raise UsageError(f"not image methods: {', '.join(bad)} (the image methods: {', '.join(known)})")
    classes = max(len(train.classes), len(test.classes), int(train.labels.max()) + 1, int(test.labels.max()) + 1)
    mean, std = _normaliser(train.images)
    xa, xb = _normalise(train.images, mean, std), _normalise(test.images, mean, std)
    ya, yb = train.labels, test.labels
    scores: dict[str, dict[str, list[float]]] = {}
    seconds: dict[str, float] = {}

    def add(name: str, metric: str, value: float, spent: float) -> None:
        scores.setdefault(name, {}).setdefault(metric, []).append(value)
        seconds[name] = seconds.get(name, 0.0) + spent

    for s in budget.seeds:  # raw pixels
        t0 = time.perf_counter()
        fa, fb = xa.flatten(1), xb.flatten(1)
        add("raw", "linear", linear_top1(fa, ya, fb, yb, s, budget.probe_epochs, classes), 0.0)
        add("raw", "knn", knn_top1(fa, ya, fb, yb), time.perf_counter() - t0)
    say(f"raw: linear {np.mean(scores['raw']['linear']):.1f} %, knn {np.mean(scores['raw']['knn']):.1f} %")
    cfgs = {m: method_config(m, budget.overrides) for m in methods}
    groups: dict[tuple, str] = {}
    baselines: dict[str, str] = {}
    left_out: dict[str, str] = {}
    for m in list(methods):  # a method that cannot be built on these images is left out with one line
        try:
            net = _build(m, cfgs[m], 0, budget.steps_for(m))
            features(net, xa[:2])
        except GeomaskError as e:
            _left_out(m, e, left_out)
            methods.remove(m)
            continue
        baselines[m] = groups.setdefault(_signature(net), m)
    if not methods:
        raise UsageError("no method could run on these images (see the error lines above)")
    several = len(groups) > 1

    def base(kind: str, owner: str) -> str:
        return f"{kind}:{owner}" if several else kind

    pictures: list[str] = []
    shown = torch.randperm(len(yb), generator=torch.Generator().manual_seed(0))[:8]  # the grid's test images
    for m in list(methods):
        cfg = cfgs[m]
        owner = baselines[m]
        try:
            for s in budget.seeds:
                if owner == m:  # this architecture's random and scratch baselines
                    t0 = time.perf_counter()
                    rnd = _build(m, cfg, s, budget.steps_for(m))
                    fa, fb = features(rnd, xa), features(rnd, xb)
                    add(base("random", m), "linear", linear_top1(fa, ya, fb, yb, s, budget.probe_epochs, classes), 0.0)
                    add(base("random", m), "knn", knn_top1(fa, ya, fb, yb), time.perf_counter() - t0)
                    t0 = time.perf_counter()
                    fine = finetune_top1(rnd, xa, ya, xb, yb, budget.finetune_steps, budget.finetune_batch, s, classes)
                    add(base("scratch", m), "finetune", fine, time.perf_counter() - t0)
                t0 = time.perf_counter()
                model = _build(m, cfg, s, budget.steps_for(m))
                pretrain(model, xa, cfg, budget.steps_for(m), s)
                fa, fb = features(model, xa), features(model, xb)
                add(m, "linear", linear_top1(fa, ya, fb, yb, s, budget.probe_epochs, classes), 0.0)
                add(m, "knn", knn_top1(fa, ya, fb, yb), 0.0)
                if plots is not None and s == budget.seeds[0]:
                    pictures += _pictures(m, model, xb[shown], mean, std, s, Path(plots), say)
                tuned = copy.deepcopy(model)
                fine = finetune_top1(tuned, xa, ya, xb, yb, budget.finetune_steps, budget.finetune_batch, s, classes)
                add(m, "finetune", fine, time.perf_counter() - t0)
        except GeomaskError as e:  # e.g. a method for other images (3-D, another size): one line, others go on
            scores.pop(m, None)
            methods.remove(m)
            _left_out(m, e, left_out)
            continue
        r = scores[m]
        say(
            f"{m}: linear {np.mean(r['linear']):.1f} %, knn {np.mean(r['knn']):.1f} %, "
            f"finetune {np.mean(r['finetune']):.1f} % ({seconds[m]:.0f} s)"
        )
    out: dict[str, Any] = {"methods": {}}
    for name, per in scores.items():
        out["methods"][name] = {metric: _summary(v) for metric, v in per.items()}
        out["methods"][name]["seconds"] = round(seconds.get(name, 0.0), 2)
    out["baselines"] = {m: {"random": base("random", o), "scratch": base("scratch", o)} for m, o in baselines.items()}
    out["data"] = {
        "train": {"source": train.source, "images": len(ya), "shape": list(train.images.shape[1:])},
        "test": {"source": test.source, "images": len(yb), "shape": list(test.images.shape[1:])},
        "classes": classes,
    }
    out["left_out"] = left_out
    out["config"] = {
        "methods": methods,
        "seeds": list(budget.seeds),
        "pretrain_steps": budget.pretrain_steps,
        "pretrain_steps_per_method": {m: budget.steps_for(m) for m in methods},
        "finetune_steps": budget.finetune_steps,
        "finetune_batch": budget.finetune_batch,
        "probe_epochs": budget.probe_epochs,
        "knn": {"k": KNN_K, "temperature": KNN_TEMPERATURE, "rule": "cosine, exp(s/T) weighted votes (InstDisc/DINO)"},
        "overrides": budget.overrides,
        "ignored_overrides": {m: cfgs[m]["ignored"] for m in methods if cfgs[m]["ignored"]},
    }
    out["plots"] = pictures
    return out


def _left_out(name: str, error: Exception, into: dict[str, str]) -> None:
    import sys

    print(f"error: {name}: {error} (left out)", file=sys.stderr)
    into[name] = str(error)


def _pictures(
    name: str, model: nn.Module, x: Tensor, mean: Tensor, std: Tensor, seed: int, folder: Path, say: Any
) -> list[str]:
    from geomask.eval.image_grid import write_image_grid

    try:
        rows = reconstruction_rows(model, x, mean, std, seed)
    except UsageError as e:
        import sys

        print(f"warning: {name}: no picture grid ({e})", file=sys.stderr)
        return []
    path = write_image_grid(rows, folder / f"{name}_reconstructions.png")
    say(f"wrote {path}")
    return [str(path)]


def table(result: dict[str, Any]) -> str:
    """Top-1 (%) ``mean ± std`` per method and protocol, and seconds."""
    seeds = result.get("config", {}).get("seeds", [0])
    rows = [("method", "linear", "knn", "finetune", "seconds")]
    for name, r in result["methods"].items():

        def cell(k: str, r: dict[str, Any] = r) -> str:
            if k not in r:
                return "-"
            return f"{r[k]['top1']:.2f} ± {r[k]['top1_std']:.2f}" if len(seeds) > 1 else f"{r[k]['top1']:.2f}"

        rows.append((name, cell("linear"), cell("knn"), cell("finetune"), f"{r.get('seconds', 0.0):.0f}"))
    width = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, width)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in width))
    lines.append(f"(top-1 %, {'mean ± std over ' + str(len(seeds)) + ' seeds' if len(seeds) > 1 else '1 seed'})")
    return "\n".join(lines)
