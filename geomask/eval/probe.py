"""Scene-level probing (MSM's protocol): multi-resolution feature sampling, a linear probe, a kNN classifier,
and segmentation metrics.

* **Multi-resolution sampling**: every decoder level of a frozen sparse U-Net (strides 8, 4, 2, 1) is read
  back at the input points and the levels are concatenated. ``"nearest"`` gives a point the feature of the
  site of its voxel at that stride; ``"trilinear"`` weights the ``2^D`` sites around the point (site centres
  at ``(c + s/2)`` voxel units), renormalised over the sites that exist, falling back to the nearest site.
* **Linear probe**: features standardised with the training points' mean and std, one linear layer trained
  full-batch with AdamW and cross-entropy (ignored labels skipped).
* **kNN classifier**: cosine similarity to a bank of training points (a seeded subset of at most
  ``bank`` points), the ``k`` most similar vote with weight ``exp(sim / temperature)``.
* **Metrics**: overall accuracy over labelled points, per-class IoU, and mIoU averaged over the classes
  present in the ground truth (classes absent from it are reported as ``None``).
* **Without coordinates** (``coords=False``, ``geomask eval probe --no-coords``): the raw baseline is the input
  features alone (colour; a constant 1 for scans without colour, i.e. a chance baseline) instead of
  xyz + input features, and the network (msm and random alike) is built with ``geometry: none``, so no
  coordinate-derived input channel (``height``: z − min z; ``xyz``: coordinates minus the centroid) reaches it.
  What is left is colour and the occupancy pattern read by translation-equivariant sparse convolutions: every
  feature is unchanged by a global translation of a scan by a multiple of the coarsest stride
  (``16 × voxel_size``, the U-Net's coarsest stride), so the probe cannot look positions up in a room it has seen.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from geomask.errors import UsageError
from geomask.eval.scan_common import (
    finish_run,
    frozen_copy,
    prepare_run,
    train_steps,
)
from geomask.points.augment import ScenePoints
from geomask.sparse import SparseTensor

__all__ = [
    "knn_classify",
    "linear_probe",
    "multires_features",
    "probe_all",
    "probe_features",
    "raw_features",
    "run_probe",
    "sample_level",
    "segmentation_metrics",
]

MODES = ("nearest", "trilinear")


def _lookup(level: SparseTensor, batch: Tensor, grid: Tensor) -> Tensor:
    """Row of each site ``(batch [Q], grid [Q, D])`` (grid units of the level's stride), -1 where absent."""
    return level.cache.level(level.coords, level.stride).lookup(batch, grid)


def sample_level(level: SparseTensor, batch: Tensor, pos: Tensor, mode: str = "nearest") -> Tensor:
    """Features of one level at continuous positions.

    Args:
        level: a decoder level (stride ``s``; coordinates in stride-1 voxel units).
        batch: ``[Q]`` scene of each query.
        pos: ``[Q, D]`` positions in voxel units (``point / voxel_size``).
        mode: ``"nearest"`` or ``"trilinear"``.

    Returns:
        ``[Q, C]`` features (zeros for a query with no site nearby; cannot happen for the points that
        built the level).
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    st = torch.tensor(level.stride, device=pos.device, dtype=pos.dtype)
    nearest = _lookup(level, batch, torch.floor(pos / st).long())
    feats = level.feats
    out = torch.where((nearest >= 0)[:, None], feats[nearest.clamp(min=0)], feats.new_zeros(()))
    if mode == "nearest":
        return out
    g = (pos - st / 2) / st
    base = torch.floor(g)
    frac = g - base
    dim = pos.size(1)
    corners = torch.cartesian_prod(*[torch.tensor([0, 1], device=pos.device)] * dim).view(-1, dim)
    acc = feats.new_zeros(len(pos), feats.size(1))
    wsum = feats.new_zeros(len(pos))
    for c in corners:  # 2^D corners, not points
        rows = _lookup(level, batch, base.long() + c)
        w = torch.where(c.bool(), frac, 1 - frac).prod(1).to(feats.dtype) * (rows >= 0)
        acc = acc + w[:, None] * feats[rows.clamp(min=0)]
        wsum = wsum + w
    ok = wsum > 1e-8
    return torch.where(ok[:, None], acc / wsum.clamp(min=1e-8)[:, None], out)


def multires_features(
    levels: Sequence[SparseTensor], batch: Tensor, points: Tensor, voxel_size: float, mode: str = "nearest"
) -> Tensor:
    """Every level sampled at the points and concatenated: ``[N, Σ C_j]``.

    Shapes:
        batch ``[N]``, points ``[N, D]`` (the same units as ``voxel_size``).
    """
    pos = points.to(torch.float64) / voxel_size
    return torch.cat([sample_level(lv, batch, pos, mode) for lv in levels], dim=1)


def _standardise(train: Tensor, *others: Tensor) -> list[Tensor]:
    mean = train.mean(0)
    std = train.std(0).clamp(min=1e-6)
    return [(t - mean) / std for t in (train, *others)]


def linear_probe(
    train_x: Tensor,
    train_y: Tensor,
    test_x: Tensor,
    num_classes: int,
    epochs: int = 300,
    lr: float = 0.05,
    weight_decay: float = 1e-4,
    ignore_index: int = -1,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Train a linear classifier on ``train_x`` (full batch, AdamW, cross-entropy) and predict ``test_x``.

    Shapes:
        train_x ``[N, F]``, train_y ``[N]``, test_x ``[M, F]`` → ``[M]`` int64 predictions.
    """
    keep = train_y != ignore_index
    if not bool(keep.any()):
        raise ValueError("the linear probe needs at least one labelled training point")
    xtr, xte = _standardise(train_x[keep].float(), test_x.float())
    ytr = train_y[keep]
    lin = torch.nn.Linear(xtr.size(1), num_classes)
    with torch.no_grad():  # seeded initialisation, independent of the global RNG
        g = generator if generator is not None else torch.Generator().manual_seed(0)
        bound = 1.0 / max(xtr.size(1), 1) ** 0.5
        lin.weight.copy_(torch.rand(lin.weight.shape, generator=g) * 2 * bound - bound)
        lin.bias.zero_()
    opt = torch.optim.AdamW(lin.parameters(), lr=lr, weight_decay=weight_decay)
    with torch.enable_grad():
        for _ in range(epochs):
            opt.zero_grad()
            F.cross_entropy(lin(xtr), ytr).backward()
            opt.step()
    with torch.no_grad():
        return lin(xte).argmax(1)


def knn_classify(
    bank_x: Tensor,
    bank_y: Tensor,
    query_x: Tensor,
    num_classes: int,
    k: int = 20,
    temperature: float = 0.07,
    chunk: int = 4096,
) -> Tensor:
    """Weighted kNN vote by cosine similarity: ``score_c = Σ_{top k} exp(sim / T) [y = c]``.

    Shapes:
        bank_x ``[M, F]``, bank_y ``[M]``, query_x ``[Q, F]`` → ``[Q]`` int64.
    """
    if len(bank_x) == 0:
        raise ValueError("the kNN bank is empty")
    k = min(k, len(bank_x))
    bank = F.normalize(bank_x.float(), dim=1)
    out = torch.empty(len(query_x), dtype=torch.long)
    for s in range(0, len(query_x), chunk):  # chunks of queries bound the similarity matrix's memory
        q = F.normalize(query_x[s : s + chunk].float(), dim=1)
        sim, idx = (q @ bank.t()).topk(k, dim=1)
        votes = torch.zeros(len(q), num_classes).scatter_add_(1, bank_y[idx], (sim / temperature).exp())
        out[s : s + chunk] = votes.argmax(1)
    return out


def segmentation_metrics(pred: Tensor, target: Tensor, num_classes: int, ignore_index: int = -1) -> dict:
    """``{"miou", "oa", "iou": [per class or None], "support": [points per class]}`` over labelled points.

    mIoU averages the IoU of the classes present in ``target``.
    """
    keep = target != ignore_index
    p, t = pred[keep].long(), target[keep].long()
    if len(t) == 0:
        raise ValueError("no labelled points to evaluate")
    if bool(((t < 0) | (t >= num_classes)).any()):
        raise ValueError(f"target labels must be in [0, {num_classes}) or {ignore_index}")
    conf = torch.bincount(t * num_classes + p.clamp(0, num_classes - 1), minlength=num_classes**2)
    conf = conf.view(num_classes, num_classes).double()
    tp = conf.diag()
    support = conf.sum(1)
    union = support + conf.sum(0) - tp
    present = support > 0
    iou = torch.where(present, tp / union.clamp(min=1), torch.nan)
    return {
        "miou": float(iou[present].mean()),
        "oa": float(tp.sum() / conf.sum()),
        "iou": [None if not bool(m) else float(v) for v, m in zip(iou.tolist(), present.tolist())],
        "support": [int(v) for v in support.tolist()],
    }


def probe_all(
    train_x: Tensor,
    train_y: Tensor,
    test_x: Tensor,
    test_y: Tensor,
    num_classes: int,
    seed: int = 0,
    knn_k: int = 20,
    knn_bank: int = 20000,
    epochs: int = 300,
    ignore_index: int = -1,
) -> dict[str, dict]:
    """Linear probe and kNN on the same features: ``{"linear": metrics, "knn": metrics}``."""
    g = torch.Generator().manual_seed(seed)
    pred = linear_probe(train_x, train_y, test_x, num_classes, epochs, ignore_index=ignore_index, generator=g)
    keep = torch.nonzero(train_y != ignore_index).squeeze(1)
    if len(keep) > knn_bank:
        keep = keep[torch.randperm(len(keep), generator=g)[:knn_bank]]
    bx, tx = _standardise(train_x[keep].float(), test_x.float())
    knn = knn_classify(bx, train_y[keep], tx, num_classes, knn_k)
    return {
        "linear": segmentation_metrics(pred, test_y, num_classes, ignore_index),
        "knn": segmentation_metrics(knn, test_y, num_classes, ignore_index),
    }


# ---------------------------------------------------------------------------------------------- the command


def _level_features(net: torch.nn.Module, scan: ScenePoints, voxel_size: float, mode: str) -> Tensor:
    """Multi-resolution features of one scan from a method's (or U-Net's) frozen copy."""
    from geomask.points.augment import to_sparse

    x, _ = to_sparse(scan.points, scan.feats, scan.batch, voxel_size, net.geometry)
    with torch.no_grad():
        out = frozen_copy(net).features(x)
    return multires_features(out.levels, scan.batch, scan.points, voxel_size, mode)


def raw_features(scan: ScenePoints, coords: bool = True) -> Tensor:
    """The raw baseline's features: ``[N, 3 + C]`` xyz + input features, or ``[N, C]`` input features alone
    (colour, or the constant 1 of a scan without colour) when ``coords`` is off."""
    return torch.cat([scan.points, scan.feats], dim=1) if coords else scan.feats


def probe_features(net: torch.nn.Module, scan: ScenePoints, mode: str = "nearest") -> Tensor:
    """A network's multi-resolution features of one scan (``[N, Σ C_j]``), read from a frozen copy.

    Coordinates enter only through the network's own ``geometry`` input channels (``net.geometry``); a network
    built with ``geometry: none`` gives features that a translation by a multiple of ``16 × voxel_size`` leaves
    unchanged.
    """
    return _level_features(net, scan, net.voxel_size, mode)


def run_probe(
    train: Sequence[str],
    test: Sequence[str],
    json_path: str | Path,
    config: str | Path | None = None,
    checkpoint: str | Path | None = None,
    label_map: str | None = None,
    voxel_size: float | None = None,
    steps: int | None = None,
    seed: int | None = None,
    plot: str | Path | None = None,
    log: Callable[[str], None] | None = print,
    coords: bool = True,
) -> dict[str, Any]:
    """Pretrain MSM on the training scans (or load ``checkpoint``), then probe ``msm``, ``random`` (the same
    network and initialisation, untrained) and ``raw`` (xyz + input features) with the same linear probe
    and kNN, trained on the training scans' labels and scored on the test scans. Writes ``json_path``
    (and the per-class IoU plot, ``plot`` or ``json_path`` with ``.png``).

    ``coords=False`` leaves coordinates out (module doc): raw = input features only, and the network is
    built with ``geometry: none`` whatever the config says. The JSON records ``coords``.

    Raises:
        UsageError: a ``checkpoint`` whose input width does not fit the network (e.g. trained with
            coordinate channels and loaded with ``coords=False``).
    """
    from geomask.methods.msm import build_msm
    from geomask.train.checkpoint import load_weights

    run = prepare_run(
        train, test, config, "msm", build_msm, label_map=label_map, voxel_size=voxel_size, steps=steps, seed=seed
    )
    cfg, tr, te, k = run.cfg, run.train, run.test, run.num_classes
    kwargs = run.kwargs
    if not coords:
        kwargs["geometry"] = "none"
    with torch.random.fork_rng():
        torch.manual_seed(cfg.seed)
        msm = build_msm(**kwargs)
    random_net = copy.deepcopy(msm).eval()
    pretrain: dict[str, Any] = {"checkpoint": str(checkpoint)} if checkpoint else {}
    if checkpoint is not None:
        try:
            msm.load_state_dict(load_weights(checkpoint))
        except RuntimeError as e:  # shape mismatches: another backbone, input width or geometry
            first = str(e).strip().splitlines()[-1].strip()
            raise UsageError(
                f"{checkpoint}: does not fit the network ({first}); "
                f"geometry {kwargs.get('geometry', 'none')!r}, in_channels {kwargs['in_channels']}"
            ) from None
    else:
        pretrain = train_steps(msm, [s.scene for s in tr], cfg, cfg.seed, log)
    ytr = torch.cat([s.scene.labels for s in tr])
    yte = torch.cat([s.scene.labels for s in te])
    feats = {
        "msm": lambda s: probe_features(msm, s, cfg.sample_mode),
        "random": lambda s: probe_features(random_net, s, cfg.sample_mode),
        "raw": lambda s: raw_features(s, coords),
    }
    if not coords and log is not None and all(s.scene.feats.size(1) == 1 for s in tr):
        log("raw without coordinates: the scans have no colour, so raw is a constant feature (a chance baseline)")
    results: dict[str, Any] = {}
    for name, fn in feats.items():
        xtr = torch.cat([fn(s.scene) for s in tr])
        xte = torch.cat([fn(s.scene) for s in te])
        results[name] = probe_all(xtr, ytr, xte, yte, k, cfg.seed, cfg.knn_k, cfg.knn_bank, cfg.probe_epochs)
        if log is not None:
            r = results[name]
            log(
                f"{name}: linear mIoU {r['linear']['miou']:.4f} OA {r['linear']['oa']:.4f} | "
                f"kNN mIoU {r['knn']['miou']:.4f} OA {r['knn']['oa']:.4f} (features {xtr.size(1)})"
            )
    bars = {f"{m}/{p}": results[m][p] for m in results for p in ("linear", "knn")}
    title = "probe: per-class IoU on the test scans" + ("" if coords else " (no coordinates)")
    return finish_run(run, {"methods": results, "pretrain": pretrain, "coords": coords}, json_path, plot, bars, title)
