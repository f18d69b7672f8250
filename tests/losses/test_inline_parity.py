"""The loss components reproduce the torch / ops functions the methods called inline before they moved onto
``geomask.losses`` bit for bit (same reduction, same eps): ``F.cross_entropy`` (Point-BERT, CPCM),
``F.huber_loss`` (MGVGA's degrees) and ``chamfer_distance`` (Point-MAE, the dVAE).  The cases against the methods'
own inline functions (MGVGA's ``masked_cross_entropy``, GraphMAE's ``scaled_cosine_error``, CPCM's
``js_divergence``, MSM's ``_level_loss``) went with those functions; ``tests/methods/test_regression.py`` holds
the methods to their pre-refactor losses."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from geomask.losses import (
    build_loss,
    chamfer,
    cross_entropy,
    huber,
    masked_accuracy,
)
from geomask.ops.chamfer import chamfer_distance

SIZES = [1, 7, 64, 1000, 4099]


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


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
