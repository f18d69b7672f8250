"""Farthest point sampling: equality with a naive reference, spread, seeded starts, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from geomask.ops.fps import farthest_point_sampling


def naive_fps(p: np.ndarray, s: int, start: int) -> list[int]:
    """Textbook FPS, one cloud, float64, ties to the lowest index."""
    out = [start]
    dist = np.full(p.shape[0], np.inf)
    for _ in range(s - 1):
        dist = np.minimum(dist, ((p - p[out[-1]]) ** 2).sum(1))
        out.append(int(np.argmax(dist)))
    return out


@pytest.mark.parametrize("backend", ["numba", "torch"])
@pytest.mark.parametrize("n", [1, 7, 100, 1000])
def test_equals_naive(backend, n):
    rng = np.random.default_rng(n)
    pos = rng.standard_normal((3, n, 3))
    pos[1, :, 2] = 0.0  # a flat cloud
    s = min(n, 40)
    starts = rng.integers(0, n, 3)
    got = farthest_point_sampling(torch.from_numpy(pos), s, start=torch.from_numpy(starts), backend=backend)
    for b in range(3):
        assert got[b].tolist() == naive_fps(pos[b], s, int(starts[b]))


def test_float32_backends_agree_on_clustered_cloud():
    g = torch.Generator().manual_seed(0)
    pos = torch.cat([torch.rand(2, 500, 3, generator=g) * 0.01, torch.rand(2, 500, 3, generator=g) + 5], dim=1)
    a = farthest_point_sampling(pos, 64, start=3, backend="numba")
    b = farthest_point_sampling(pos, 64, start=3, backend="torch")
    assert torch.equal(a, b)
    assert a.unique(dim=1).shape[1] == 64  # no repeats


def test_spread_beats_random_subset():
    g = torch.Generator().manual_seed(1)
    pos = torch.rand(4, 2000, 3, generator=g)
    idx = farthest_point_sampling(pos, 64, generator=g)
    rnd = torch.stack([torch.randperm(2000, generator=g)[:64] for _ in range(4)])

    def min_pairwise(i):
        p = torch.gather(pos, 1, i.unsqueeze(-1).expand(-1, -1, 3))
        d = torch.cdist(p, p) + torch.eye(64) * 1e9
        return d.amin(dim=(1, 2))

    assert (min_pairwise(idx) > min_pairwise(rnd)).all()


def test_generator_start_is_seeded():
    pos = torch.rand(5, 300, 3, generator=torch.Generator().manual_seed(2))
    a = farthest_point_sampling(pos, 10, generator=torch.Generator().manual_seed(7))
    b = farthest_point_sampling(pos, 10, generator=torch.Generator().manual_seed(7))
    c = farthest_point_sampling(pos, 10, generator=torch.Generator().manual_seed(8))
    assert torch.equal(a, b) and not torch.equal(a[:, 0], c[:, 0])
    assert torch.equal(farthest_point_sampling(pos, 10)[:, 0], torch.zeros(5, dtype=torch.long))


@pytest.mark.parametrize(
    ("shape", "s", "kwargs"),
    [((2, 10), 3, {}), ((2, 10, 3), 11, {}), ((2, 10, 3), 3, {"start": 10}), ((2, 10, 3), 3, {"backend": "x"})],
)
def test_bad_arguments(shape, s, kwargs):
    with pytest.raises(ValueError):
        farthest_point_sampling(torch.rand(shape), s, **kwargs)
