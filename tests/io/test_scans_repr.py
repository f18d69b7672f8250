"""A Scan prints the shapes of its arrays, as PyG's Data does, never their values."""

from __future__ import annotations

import numpy as np

from geomask.io.scans.scan import Scan


def test_repr_summarises_shapes():
    n = 5000
    rng = np.random.default_rng(0)
    scan = Scan(
        points=rng.random((n, 3)) * 1000.0,
        colors=rng.random((n, 3)),
        labels=rng.integers(0, 20, n),
        path="room.ply",
        format="ply",
    )
    assert repr(scan) == "Scan(points=[5000, 3], colors=[5000, 3], labels=[5000], format='ply', path='room.ply')"


def test_repr_lists_every_present_array_and_the_origin():
    scan = Scan(
        points=np.zeros((4, 3)),
        intensity=np.arange(4.0),
        normals=np.ones((4, 3)),
        instances=np.arange(4),
        origin=[100.5, -2.0, 0.0],
    )
    text = repr(scan)
    assert text == (
        "Scan(points=[4, 3], intensity=[4], normals=[4, 3], instances=[4], format='memory', "
        "origin=[100.5, -2, 0], path=None)"
    )
    assert "array" not in text and "\n" not in text
