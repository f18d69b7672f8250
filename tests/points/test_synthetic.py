"""Synthetic primitive objects: shapes, labels, normalisation, seeding."""

from __future__ import annotations

import pytest
import torch

from geomask.points.synthetic import SHAPES, synthetic_objects


def test_shapes_labels_and_unit_ball():
    pos, y = synthetic_objects(18, 200, seed=0)
    assert pos.shape == (18, 200, 3) and pos.dtype == torch.float32
    assert torch.equal(torch.bincount(y), torch.full((len(SHAPES),), 3))
    torch.testing.assert_close(pos.mean(1), torch.zeros(18, 3), atol=1e-5, rtol=0)
    torch.testing.assert_close(pos.norm(dim=-1).amax(1), torch.ones(18), atol=1e-5, rtol=0)


def test_seeded_and_classes_distinct():
    a, _ = synthetic_objects(6, 100, seed=1)
    b, _ = synthetic_objects(6, 100, seed=1)
    c, _ = synthetic_objects(6, 100, seed=2)
    assert torch.equal(a, b) and not torch.equal(a, c)
    # the plane is flat: its smallest principal extent is noise-sized, a sphere's is not
    pos, y = synthetic_objects(12, 500, seed=0, noise=0.0)
    sv = torch.linalg.svdvals(pos - pos.mean(1, keepdim=True))
    assert (sv[y == SHAPES.index("plane"), 2] < 1e-3).all()
    assert (sv[y == SHAPES.index("sphere"), 2] > 1.0).all()
    with pytest.raises(ValueError):
        synthetic_objects(3, 10, classes=("blob",))
