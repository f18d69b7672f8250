"""Object-level evaluation on frozen patch-transformer features: linear SVM and few-shot classification.

Features come from a method's ``embed(batch) -> [B, F]`` on ``[B, N, 3]`` clouds, with the method in eval
mode.  The classifier is a one-vs-rest linear SVM with the squared hinge loss (LIBLINEAR's default
L2-loss SVM) on standardised features, fitted by full-batch L-BFGS:

.. math::
    \\min_{W, b} \\; \\frac{1}{2} \\lVert W \\rVert^2
        + C \\sum_i \\sum_c \\max(0, 1 - y_{ic} (\\mathbf{w}_c^\\top \\mathbf{x}_i + b_c))^2 ,
    \\quad y_{ic} = \\pm 1

Few-shot classification follows Point-BERT / Point-MAE's N-way K-shot episodes, here with the SVM on
frozen features: each episode draws N classes, K support and Q query objects per class.

:func:`scan_crops` makes unlabelled pretraining clouds out of a whole scan: random object-sized balls of its
points, resampled and normalised exactly like the objects of ``geomask prep objects``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

__all__ = ["extract_features", "few_shot", "linear_svm", "scan_crops", "svm_accuracy"]


@torch.no_grad()
def extract_features(method: nn.Module, pos: Tensor, batch_size: int = 32) -> Tensor:
    """``method.embed`` of every cloud in eval mode (the training flag is restored).

    Shapes:
        pos ``[M, N, 3]`` → ``[M, F]``.
    """
    was = method.training
    method.eval()
    try:
        out = [method.embed(pos[i : i + batch_size]) for i in range(0, pos.size(0), batch_size)]
    finally:
        method.train(was)
    return torch.cat(out).float()


def linear_svm(x: Tensor, y: Tensor, num_classes: int | None = None, c: float = 1.0, max_iter: int = 200) -> Any:
    """Fit a one-vs-rest squared-hinge linear SVM; returns ``predict(x_new) -> [M'] int64``.

    Args:
        x: ``[M, F]`` training features.
        y: ``[M]`` int64 labels in ``[0, num_classes)``.
        num_classes: number of classes (``y.max() + 1`` when ``None``).
        c: the SVM's C (larger: weaker regularisation).
        max_iter: L-BFGS iterations.
    """
    if x.dim() != 2 or y.shape != x.shape[:1]:
        raise ValueError(f"need x [M, F] and y [M], got {tuple(x.shape)} and {tuple(y.shape)}")
    if c <= 0:
        raise ValueError(f"C must be positive, got {c}")
    k = int(y.max()) + 1 if num_classes is None else num_classes
    x = x.double()
    mean, std = x.mean(0), x.std(0, unbiased=False).clamp(min=1e-8)
    xs = (x - mean) / std
    target = torch.full((x.size(0), k), -1.0, dtype=torch.float64)
    target[torch.arange(x.size(0)), y] = 1.0
    w = torch.zeros(x.size(1), k, dtype=torch.float64, requires_grad=True)
    b = torch.zeros(k, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], lr=1.0, max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure() -> Tensor:
        opt.zero_grad()
        margin = (1.0 - target * (xs @ w + b)).clamp(min=0.0)
        loss = 0.5 * w.pow(2).sum() + c * margin.pow(2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    w_, b_ = w.detach(), b.detach()

    def predict(x_new: Tensor) -> Tensor:
        return (((x_new.double() - mean) / std) @ w_ + b_).argmax(-1)

    return predict


def svm_accuracy(train_x: Tensor, train_y: Tensor, test_x: Tensor, test_y: Tensor, c: float = 1.0) -> float:
    """Test accuracy of :func:`linear_svm` fitted on the training features."""
    k = int(torch.cat([train_y, test_y]).max()) + 1
    pred = linear_svm(train_x, train_y, k, c)(test_x)
    return float((pred == test_y).double().mean())


def few_shot(
    features: Tensor,
    labels: Tensor,
    n_way: int = 5,
    k_shot: int = 10,
    n_query: int = 20,
    episodes: int = 10,
    generator: torch.Generator | None = None,
    c: float = 1.0,
) -> tuple[float, float]:
    """N-way K-shot episodes with a linear SVM on frozen features.

    Args:
        features: ``[M, F]``.
        labels: ``[M]`` int64.
        n_way, k_shot, n_query: classes per episode, support and query objects per class.
        episodes: number of episodes.
        generator: draws classes and objects.
        c: the SVM's C.

    Returns:
        ``(mean accuracy, standard deviation)`` over episodes.
    """
    classes = torch.unique(labels)
    if classes.numel() < n_way:
        raise ValueError(f"{n_way}-way episodes need {n_way} classes, found {classes.numel()}")
    counts = torch.bincount(labels)[classes]
    if int(counts.min()) < k_shot + n_query:
        raise ValueError(f"every class needs {k_shot + n_query} objects, the smallest has {int(counts.min())}")
    accs = []
    for _ in range(episodes):
        chosen = classes[torch.randperm(classes.numel(), generator=generator)[:n_way]]
        sup, qry = [], []
        for new, cls in enumerate(chosen.tolist()):
            idx = torch.nonzero(labels == cls).flatten()
            idx = idx[torch.randperm(idx.numel(), generator=generator)[: k_shot + n_query]]
            sup.append((idx[:k_shot], new))
            qry.append((idx[k_shot:], new))
        sx = torch.cat([features[i] for i, _ in sup])
        sy = torch.cat([torch.full((i.numel(),), n) for i, n in sup])
        qx = torch.cat([features[i] for i, _ in qry])
        qy = torch.cat([torch.full((i.numel(),), n) for i, n in qry])
        accs.append(svm_accuracy(sx, sy, qx, qy, c))
    t = torch.tensor(accs, dtype=torch.float64)
    return float(t.mean()), float(t.std(unbiased=False))


def scan_crops(
    points: Tensor,
    radii: Tensor,
    num_crops: int,
    num_points: int,
    generator: torch.Generator,
    min_points: int = 32,
) -> tuple[Tensor, Tensor, Tensor]:
    """Random ball crops of one scan, each resampled and normalised like a ``geomask prep objects`` object.

    A crop is the scan's points within radius ``r`` of a centre: the centre is one of the scan's points drawn at
    random, ``r`` one of ``radii`` (e.g. the scan's own objects' radii, so crops are object-sized).  A crop with
    fewer than ``min_points`` points is drawn again (at most ``10 * num_crops`` draws in all); at most
    ``4 * num_points`` of its points (a random subset) are then resampled to ``num_points`` by
    :func:`~geomask.datasets.prep_objects.cut_objects` (farthest point sampling, or seeded repeats), centred on
    their mean and scaled so that the farthest lies on the unit sphere.  One distance pass per crop; all crops
    are resampled in one batch.

    Args:
        points: ``[N, 3]`` scan coordinates.
        radii: ``[R]`` crop radii to draw from (scan units).
        num_crops: C, crops to return.
        num_points: P, points per crop.
        generator: draws centres, radii, subsets and the resampling (same seed: same crops).
        min_points: the fewest scan points a crop may hold.

    Returns:
        ``(crops [C, P, 3], centers [C, 3], scales [C])`` with ``scan = crop * scale + center``.

    Raises:
        ValueError: bad sizes, or fewer than ``num_crops`` crops reach ``min_points`` points.
    """
    from geomask.datasets.prep_objects import cut_objects

    if points.dim() != 2 or points.size(1) != 3 or points.size(0) == 0:
        raise ValueError(f"need scan points [N, 3], got {tuple(points.shape)}")
    if radii.numel() == 0 or bool((radii <= 0).any()):
        raise ValueError("need at least one radius, all positive")
    if num_crops < 1 or num_points < 1 or min_points < 1:
        raise ValueError(
            f"num_crops, num_points, min_points must be positive, got {num_crops}, {num_points}, {min_points}"
        )
    pos, radii = points.float(), radii.float().flatten()
    cap = 4 * num_points
    chosen: list[Tensor] = []
    for _ in range(10 * num_crops):
        if len(chosen) == num_crops:
            break
        centre = pos[torch.randint(pos.size(0), (1,), generator=generator)]
        r = radii[torch.randint(radii.numel(), (1,), generator=generator)]
        inside = torch.nonzero((pos - centre).pow(2).sum(-1) <= r * r).flatten()
        if inside.numel() < min_points:
            continue
        if inside.numel() > cap:
            inside = inside[torch.randperm(inside.numel(), generator=generator)[:cap]]
        chosen.append(inside)
    if len(chosen) < num_crops:
        raise ValueError(
            f"only {len(chosen)} of {num_crops} crops held {min_points} points in {10 * num_crops} draws "
            "(radii too small for this scan?)"
        )
    idx = torch.cat(chosen)
    crop = torch.repeat_interleave(torch.arange(1, num_crops + 1), torch.tensor([len(c) for c in chosen]))
    out, _ = cut_objects(
        pos[idx].numpy(),
        torch.zeros(len(idx), dtype=torch.long).numpy(),
        crop.numpy(),
        min_points=1,
        num_points=num_points,
        generator=generator,
    )
    return out["points"], out["centers"], out["scales"]
