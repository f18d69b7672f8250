"""Every loss against its formula written out here, with empty, partial and full masks and finite gradients."""

from __future__ import annotations

import math

import pytest
import torch

from geomask.errors import UsageError
from geomask.losses import (
    chamfer,
    cosine_error,
    cross_entropy,
    huber,
    js_divergence,
    js_loss,
    l1,
    l2,
    masked_accuracy,
    scaled_cosine_error,
    smooth_l1,
)

D = torch.float64


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def rows(mask: list[bool]) -> list[int]:
    return [i for i, m in enumerate(mask) if m]


MASKS = [[True, False, True, True, False], [False] * 5, [True] * 5]


def finite_grads(*tensors: torch.Tensor) -> bool:
    return all(t.grad is not None and bool(torch.isfinite(t.grad).all()) for t in tensors)


# -- cross-entropy ----------------------------------------------------------------------------------------------
def hand_ce(logits: list[list[float]], target: list[int], counted: list[int]) -> float:
    if not counted:
        return 0.0
    total = 0.0
    for i in counted:
        z = logits[i]
        total += math.log(sum(math.exp(v) for v in z)) - z[target[i]]
    return total / len(counted)


@pytest.mark.parametrize("mask", [*MASKS, None])
def test_cross_entropy_matches_the_log_softmax_formula(mask):
    logits = torch.randn(5, 4, generator=gen(), dtype=D, requires_grad=True)
    target = torch.tensor([0, 3, 1, 2, 2])
    m = None if mask is None else torch.tensor(mask)
    out = cross_entropy(logits, target, m)
    counted = list(range(5)) if mask is None else rows(mask)
    assert out.item() == pytest.approx(hand_ce(logits.tolist(), target.tolist(), counted), rel=1e-12, abs=1e-12)
    out.backward()
    assert finite_grads(logits)
    if mask is not None and not any(mask):
        assert out.item() == 0.0 and torch.equal(logits.grad, torch.zeros_like(logits))


@pytest.mark.parametrize("use_mask", [True, False])
def test_cross_entropy_skips_ignore_index_in_sum_and_count(use_mask):
    logits = torch.randn(5, 3, generator=gen(1), dtype=D)
    target = torch.tensor([0, -100, 2, 1, -100])
    mask = torch.tensor([True, True, False, True, True]) if use_mask else None
    counted = [0, 3] if use_mask else [0, 2, 3]
    expected = hand_ce(logits.tolist(), [max(t, 0) for t in target.tolist()], counted)
    assert cross_entropy(logits, target, mask).item() == pytest.approx(expected, rel=1e-12)


def test_cross_entropy_all_ignored_gives_zero_with_finite_gradient():
    logits = torch.randn(3, 4, generator=gen(2), requires_grad=True)
    target = torch.full((3,), -100)
    for mask in (None, torch.ones(3, dtype=torch.bool)):
        logits.grad = None
        out = cross_entropy(logits, target, mask)
        out.backward()
        assert out.item() == 0.0 and torch.equal(logits.grad, torch.zeros_like(logits))


def test_cross_entropy_on_leading_dims_and_other_ignore_index():
    logits = torch.randn(2, 3, 4, generator=gen(3), dtype=D)
    target = torch.tensor([[1, 7, 0], [3, 2, 7]])
    mask = torch.tensor([[True, True, False], [True, False, True]])
    flat = logits.reshape(6, 4).tolist()
    # counted: masked and not the ignore index 7 → flat rows 0 and 3
    expected = hand_ce(flat, [1, 0, 0, 3, 2, 0], [0, 3])
    assert cross_entropy(logits, target, mask, ignore_index=7).item() == pytest.approx(expected, rel=1e-12)


def test_cross_entropy_shape_errors():
    with pytest.raises(UsageError):
        cross_entropy(torch.zeros(3, 4), torch.zeros(4, dtype=torch.long))
    with pytest.raises(UsageError):
        cross_entropy(torch.zeros(3, 4), torch.zeros(3, dtype=torch.long), torch.ones(3))


def test_masked_accuracy_counts_hits_over_counted_rows():
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0], [3.0, 0.0], [0.0, 2.0]], requires_grad=True)
    target = torch.tensor([0, 0, 0, -100])
    # argmax: 0, 1, 0, 1 → hits at rows 0 and 2; row 3 ignored
    assert masked_accuracy(logits, target).item() == pytest.approx(2 / 3)
    assert masked_accuracy(logits, target, torch.tensor([False, True, True, True])).item() == pytest.approx(1 / 2)
    assert masked_accuracy(logits, target, torch.zeros(4, dtype=torch.bool)).item() == 0.0
    assert not masked_accuracy(logits, target).requires_grad


# -- regression losses ------------------------------------------------------------------------------------------
def hand_huber(d: float, delta: float) -> float:
    return 0.5 * d * d if abs(d) < delta else delta * (abs(d) - 0.5 * delta)


def hand_smooth_l1(d: float, beta: float) -> float:
    return 0.5 * d * d / beta if abs(d) < beta else abs(d) - 0.5 * beta


def hand_masked_entry_mean(err, pred: torch.Tensor, target: torch.Tensor, counted: list[int]) -> float:
    vals = [err(p - t) for i in counted for p, t in zip(pred[i].tolist(), target[i].tolist())]
    return sum(vals) / len(vals) if vals else 0.0


REGRESSION = [
    (lambda p, t, m: huber(p, t, m, delta=0.7), lambda d: hand_huber(d, 0.7)),
    (lambda p, t, m: smooth_l1(p, t, m, beta=0.5), lambda d: hand_smooth_l1(d, 0.5)),
    (lambda p, t, m: l1(p, t, m), abs),
    (lambda p, t, m: l2(p, t, m), lambda d: d * d),
]


@pytest.mark.parametrize("loss,err", REGRESSION)
@pytest.mark.parametrize("mask", MASKS)
def test_regression_losses_average_over_masked_entries(loss, err, mask):
    pred = (2 * torch.randn(5, 3, generator=gen(4), dtype=D)).requires_grad_()
    target = torch.randn(5, 3, generator=gen(5), dtype=D)
    out = loss(pred, target, torch.tensor(mask))
    assert out.item() == pytest.approx(hand_masked_entry_mean(err, pred, target, rows(mask)), rel=1e-12, abs=1e-15)
    out.backward()
    assert finite_grads(pred)


def hand_norm_pix(patch: list[float], eps: float) -> list[float]:
    n = len(patch)
    mu = sum(patch) / n
    var = sum((v - mu) ** 2 for v in patch) / (n - 1)  # unbiased, as MAE's Tensor.var
    return [(v - mu) / math.sqrt(var + eps) for v in patch]


@pytest.mark.parametrize("squared", [True, False])
def test_l1_l2_with_norm_target_use_per_patch_normalised_targets(squared):
    pred = torch.randn(4, 6, generator=gen(6), dtype=D, requires_grad=True)
    target = 3.0 + 5.0 * torch.randn(4, 6, generator=gen(7), dtype=D)
    mask = torch.tensor([True, False, True, False])
    fn = l2 if squared else l1
    out = fn(pred, target, mask, norm_target=True)
    errs = []
    for i in (0, 2):
        norm = hand_norm_pix(target[i].tolist(), 1e-6)
        errs += [(p - t) ** 2 if squared else abs(p - t) for p, t in zip(pred[i].tolist(), norm)]
    assert out.item() == pytest.approx(sum(errs) / len(errs), rel=1e-10)
    out.backward()
    assert finite_grads(pred)


def test_regression_shape_mismatch_is_a_usage_error():
    with pytest.raises(UsageError, match="differ"):
        l2(torch.zeros(3, 2), torch.zeros(3, 3))


# -- cosine ------------------------------------------------------------------------------------------------------
def hand_cos(a: list[float], b: list[float], eps: float) -> float:
    dot = sum(x * y for x, y in zip(a, b))
    na = math.sqrt(sum(x * x for x in a))
    nb = math.sqrt(sum(y * y for y in b))
    return dot / max(na * nb, eps)


@pytest.mark.parametrize("mask", MASKS)
def test_cosine_and_scaled_cosine_error(mask):
    pred = torch.randn(5, 4, generator=gen(8), dtype=D, requires_grad=True)
    target = torch.randn(5, 4, generator=gen(9), dtype=D)
    m = torch.tensor(mask)
    cos = [hand_cos(pred[i].tolist(), target[i].tolist(), 1e-8) for i in rows(mask)]
    n = max(len(cos), 1)
    c = cosine_error(pred, target, m)
    s = scaled_cosine_error(pred, target, m, gamma=3.0)
    assert c.item() == pytest.approx(sum(1 - v for v in cos) / n, rel=1e-12, abs=1e-15)
    assert s.item() == pytest.approx(sum(max(1 - v, 0.0) ** 3 for v in cos) / n, rel=1e-12, abs=1e-15)
    (c + s).backward()
    assert finite_grads(pred)


def test_cosine_of_zero_rows_is_finite():
    pred = torch.zeros(2, 3, requires_grad=True)
    target = torch.ones(2, 3)
    out = cosine_error(pred, target) + scaled_cosine_error(pred, target)
    out.backward()
    # cos = 0 on zero rows: 1 - 0 = 1 and 1^2 = 1
    assert out.item() == pytest.approx(2.0)
    assert finite_grads(pred)


# -- Jensen-Shannon ---------------------------------------------------------------------------------------------
def hand_js(logits: list[float], q: list[float]) -> float:
    z = sum(math.exp(v) for v in logits)
    p = [math.exp(v) / z for v in logits]
    m = [(a + b) / 2 for a, b in zip(p, q)]
    kl = lambda a, b: sum(x * math.log(x / y) for x, y in zip(a, b) if x > 0)  # noqa: E731
    return 0.5 * kl(p, m) + 0.5 * kl(q, m)


@pytest.mark.parametrize("mask", MASKS)
def test_js_matches_the_kl_formula(mask):
    logits = torch.randn(5, 3, generator=gen(10), dtype=D, requires_grad=True)
    q = torch.softmax(torch.randn(5, 3, generator=gen(11), dtype=D), -1)
    q[1] = torch.tensor([1.0, 0.0, 0.0], dtype=D)  # a one-hot row: 0 · log 0 = 0
    per_row = js_divergence(logits, q)
    expected_rows = [hand_js(logits[i].tolist(), q[i].tolist()) for i in range(5)]
    assert per_row.tolist() == pytest.approx(expected_rows, rel=1e-9, abs=1e-12)
    assert all(0.0 <= v <= math.log(2) + 1e-12 for v in per_row.tolist())
    out = js_loss(logits, q, torch.tensor(mask))
    chosen = [expected_rows[i] for i in rows(mask)]
    assert out.item() == pytest.approx(sum(chosen) / max(len(chosen), 1), rel=1e-9, abs=1e-15)
    out.backward()
    assert finite_grads(logits)


# -- Chamfer ----------------------------------------------------------------------------------------------------
def hand_directions(x: list[list[float]], y: list[list[float]]) -> tuple[list[float], list[float]]:
    sq = lambda a, b: sum((u - v) ** 2 for u, v in zip(a, b))  # noqa: E731
    return [min(sq(a, b) for b in y) for a in x], [min(sq(b, a) for a in x) for b in y]


@pytest.mark.parametrize("kind", ["l1", "l2"])
@pytest.mark.parametrize("mask", [[True, False, True], [False] * 3, [True] * 3, None])
def test_chamfer_matches_the_nearest_neighbour_formula(kind, mask):
    x = torch.randn(3, 5, 3, generator=gen(12), dtype=D, requires_grad=True)
    y = torch.randn(3, 4, 3, generator=gen(13), dtype=D)
    m = None if mask is None else torch.tensor(mask)
    out = chamfer(x, y, m, kind)
    sets = range(3) if mask is None else rows(mask)
    fx, fy = [], []
    for b in sets:
        dx, dy = hand_directions(x[b].tolist(), y[b].tolist())
        f = (lambda d: d) if kind == "l2" else math.sqrt
        fx.append(sum(map(f, dx)) / len(dx))
        fy.append(sum(map(f, dy)) / len(dy))
    n = max(len(fx), 1)
    expected = sum(fx) / n + sum(fy) / n
    if kind == "l1":
        expected /= 2
    assert out.item() == pytest.approx(expected, rel=1e-9, abs=1e-15)
    out.backward()
    assert finite_grads(x)


def test_chamfer_l1_of_identical_sets_has_finite_gradient_and_leading_dims():
    x = torch.randn(2, 2, 4, 3, generator=gen(14), requires_grad=True)
    out = chamfer(x, x.detach().clone(), torch.tensor([[True, False], [False, True]]), "l1")
    out.backward()
    assert out.item() == pytest.approx(math.sqrt(1e-12), abs=1e-9)  # the eps floor under d = 0
    assert finite_grads(x)


def test_chamfer_errors():
    with pytest.raises(UsageError, match="kind"):
        chamfer(torch.zeros(1, 2, 3), torch.zeros(1, 2, 3), kind="l3")
    with pytest.raises(UsageError, match="point sets"):
        chamfer(torch.zeros(2, 3), torch.zeros(2, 3))
