"""The loss components reproduce the methods' inline losses bit for bit (same reduction, same eps), so the
methods can switch to them with unchanged losses.  Delete a test here once its inline function is gone."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from geomask.losses import (
    build_loss,
    chamfer,
    cosine_error,
    cross_entropy,
    huber,
    js_divergence,
    js_loss,
    masked_accuracy,
    scaled_cosine_error,
    smooth_l1,
)
from geomask.methods import cpcm, graphmae, mgvga
from geomask.methods.msm import MSM
from geomask.ops.chamfer import chamfer_distance

SIZES = [1, 7, 64, 1000, 4099]


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def with_tiny_rows(x: torch.Tensor) -> torch.Tensor:
    """Rows whose norms sit near the cosine eps (1e-8, 1e-6) and a zero row, where the eps decides the value."""
    x = x.clone()
    x[: max(len(x) // 3, 1)] *= 1e-7
    x[len(x) // 2] = 0.0
    return x


def masks(n: int, seed: int) -> list[torch.Tensor]:
    return [torch.rand(n, generator=gen(seed)) < 0.4, torch.zeros(n, dtype=torch.bool), torch.ones(n, dtype=torch.bool)]


@pytest.mark.parametrize("n", SIZES)
def test_cross_entropy_and_accuracy_equal_mgvga_masked_cross_entropy(n):
    logits = torch.randn(n, 5, generator=gen(n)) * 3
    target = torch.randint(0, 5, (n,), generator=gen(n + 1))
    for mask in masks(n, n + 2):
        ref_loss, ref_acc = mgvga.masked_cross_entropy(logits, target, mask)
        assert torch.equal(cross_entropy(logits, target, mask), ref_loss)
        assert torch.equal(build_loss("cross_entropy")(logits, target, mask), ref_loss)
        assert torch.equal(masked_accuracy(logits, target, mask), ref_acc)


@pytest.mark.parametrize("n", SIZES)
def test_unmasked_cross_entropy_equals_f_cross_entropy_of_pointbert_and_cpcm(n):
    logits = torch.randn(n, 9, generator=gen(n)) * 3
    target = torch.randint(0, 9, (n,), generator=gen(n + 1))
    # Point-BERT: F.cross_entropy(logits, target[mask]) on the masked rows; CPCM: on the labelled rows
    assert torch.equal(cross_entropy(logits, target), F.cross_entropy(logits, target))
    ref_acc = (logits.argmax(-1) == target).float().mean()
    assert torch.equal(masked_accuracy(logits, target), ref_acc)
    lab = torch.where(torch.rand(n, generator=gen(n + 2)) < 0.3, -100, target)
    if bool((lab != -100).any()):
        assert torch.equal(cross_entropy(logits, lab), F.cross_entropy(logits, lab, ignore_index=-100))


@pytest.mark.parametrize("gamma", [1.0, 2.0, 3.0])
@pytest.mark.parametrize("n", SIZES)
def test_sce_equals_graphmae_scaled_cosine_error(n, gamma):
    pred = with_tiny_rows(torch.randn(n, 5, generator=gen(n)))
    target = F.one_hot(torch.randint(0, 5, (n,), generator=gen(n + 1)), 5).float()
    for mask in masks(n, n + 2):
        ref = graphmae.scaled_cosine_error(pred, target, mask, gamma)
        assert torch.equal(scaled_cosine_error(pred, target, mask, gamma), ref)
        assert torch.equal(build_loss({"name": "sce", "gamma": gamma})(pred, target, mask), ref)


@pytest.mark.parametrize("n", SIZES)
def test_js_equals_cpcm_js_divergence(n):
    logits = torch.randn(n, 6, generator=gen(n)) * 2
    target = torch.randn(n, 6, generator=gen(n + 1)).softmax(-1)
    assert torch.equal(js_divergence(logits, target), cpcm.js_divergence(logits, target))
    ref = cpcm.js_divergence(logits, target).mean()  # CPCM's js_within / js_across
    assert torch.equal(js_loss(logits, target), ref)
    assert torch.equal(build_loss("js")(logits, target), ref)


@pytest.mark.parametrize("n", SIZES)
def test_cosine_and_smooth_l1_equal_msm_level_loss(n):
    pred = with_tiny_rows(torch.randn(n, 16, generator=gen(n)))
    target = with_tiny_rows(F.layer_norm(torch.randn(n, 16, generator=gen(n + 1)), (16,)))
    ref_cos = MSM._level_loss(SimpleNamespace(loss_kind="cosine"), pred, target)
    ref_l1 = MSM._level_loss(SimpleNamespace(loss_kind="smooth_l1"), pred, target)
    assert torch.equal(cosine_error(pred, target, eps=1e-6), ref_cos)
    assert torch.equal(build_loss({"name": "cosine", "eps": 1e-6})(pred, target), ref_cos)
    assert torch.equal(smooth_l1(pred, target), ref_l1)
    assert torch.equal(build_loss("smooth_l1")(pred, target), ref_l1)


@pytest.mark.parametrize("n", SIZES)
def test_huber_equals_mgvga_degree_loss(n):
    pred = torch.randn(n, generator=gen(n)) * 3
    degree = torch.randint(0, 4, (n,), generator=gen(n + 1)).float()
    for delta in (0.5, 1.0):
        ref = F.huber_loss(pred, degree, delta=delta)  # MGVGA's inline degree term
        assert torch.equal(huber(pred, degree, delta=delta), ref)
        assert torch.equal(build_loss({"name": "huber", "delta": delta})(pred, degree), ref)


@pytest.mark.parametrize("kind", ["l1", "l2"])
@pytest.mark.parametrize("b", [1, 5, 33])
def test_chamfer_equals_ops_chamfer_distance(kind, b):
    x = torch.randn(b, 32, 3, generator=gen(b))
    y = torch.randn(b, 32, 3, generator=gen(b + 1))
    ref = chamfer_distance(x, y, kind)  # Point-MAE ("l2") and the dVAE ("l1")
    assert torch.equal(chamfer(x, y, kind=kind), ref)
    assert torch.equal(build_loss(f"chamfer_{kind}")(x, y), ref)
    assert torch.equal(chamfer(x, y, torch.ones(b, dtype=torch.bool), kind), ref)
