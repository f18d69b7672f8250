"""Centring, unit-sphere scaling and colour scaling."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from geomask.io.scans import Scan
from geomask.points.normalize import center, normalize_scan, scale_colors, unit_sphere

PTS = np.array([[0.0, 0.0, 0.0], [2.0, 4.0, 6.0], [1.0, 2.0, 9.0]], dtype=np.float32)


def test_center_modes():
    out, shift = center(PTS, "mean")
    np.testing.assert_allclose(shift, [[1.0, 2.0, 5.0]])
    np.testing.assert_allclose(out.mean(0), 0, atol=1e-6)
    out, shift = center(torch.from_numpy(PTS), "bbox")
    np.testing.assert_allclose(shift.numpy(), [[1.0, 2.0, 4.5]])
    out, _ = center(PTS, "min")
    assert out.min() == 0
    with pytest.raises(ValueError, match="mode"):
        center(PTS, "median")


def test_unit_sphere():
    out, shift, scale = unit_sphere(PTS)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1).max(), 1.0, rtol=1e-6)
    np.testing.assert_allclose(out * scale + shift, PTS, atol=1e-5)


def test_scale_colors():
    np.testing.assert_allclose(scale_colors(np.array([[0, 255, 510]])), [[0, 1, 1]])
    t = scale_colors(torch.tensor([[51, 102, 255]], dtype=torch.uint8))
    assert t.dtype == torch.float32 and torch.allclose(t, torch.tensor([[0.2, 0.4, 1.0]]))


def test_normalize_scan_keeps_origin():
    scan = Scan(points=PTS, origin=np.array([10.0, 0, 0]))
    out, shift = normalize_scan(scan)
    np.testing.assert_allclose(out.points + out.origin, PTS + [10.0, 0, 0], atol=1e-5)
    np.testing.assert_allclose(shift, [1, 2, 5])
    np.testing.assert_array_equal(scan.points, PTS)  # input untouched
