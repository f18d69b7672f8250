"""Scene probes: level sampling, metrics by hand, linear probe and kNN beat chance measured in the test."""

from __future__ import annotations

import pytest
import torch

from geomask.eval.probe import knn_classify, linear_probe, multires_features, sample_level, segmentation_metrics
from geomask.sparse import SparseTensor

# tiny sparse ops run fastest (and predictably on a busy machine) on one thread
pytestmark = pytest.mark.usefixtures("one_thread")


def test_metrics_by_hand():
    target = torch.tensor([0, 0, 1, 1, 2, -1])
    pred = torch.tensor([0, 1, 1, 1, 0, 2])
    m = segmentation_metrics(pred, target, num_classes=4)
    # class 0: tp 1, fn 1, fp 1 → 1/3; class 1: tp 2, fp 1 → 2/3; class 2: tp 0 → 0; class 3 absent
    assert m["iou"][:3] == pytest.approx([1 / 3, 2 / 3, 0.0]) and m["iou"][3] is None
    assert m["miou"] == pytest.approx(1 / 3) and m["oa"] == pytest.approx(3 / 5)


def test_sample_level_nearest_and_trilinear():
    # a stride-2 level with two sites along x carrying features 0 and 10
    coords = torch.tensor([[0, 0, 0, 0], [0, 2, 0, 0]])
    level = SparseTensor(coords, torch.tensor([[0.0], [10.0]]), stride=2)
    pos = torch.tensor([[1.0, 1.0, 1.0], [2.0, 1.0, 1.0], [3.5, 1.0, 1.0]], dtype=torch.float64)
    b = torch.zeros(3, dtype=torch.long)
    assert sample_level(level, b, pos, "nearest").squeeze(1).tolist() == [0.0, 10.0, 10.0]
    # site centres at x = 1 and 3 (voxel units): linear in between, clamped to the existing sites outside
    tri = sample_level(level, b, pos, "trilinear").squeeze(1)
    assert tri.tolist() == pytest.approx([0.0, 5.0, 10.0])


def test_multires_concatenates_levels_at_points():
    coords = torch.tensor([[0, 0, 0, 0], [0, 1, 0, 0], [0, 5, 0, 0]])
    fine = SparseTensor(coords, torch.tensor([[1.0], [2.0], [3.0]]))
    coarse_coords = torch.tensor([[0, 0, 0, 0], [0, 4, 0, 0]])
    coarse = SparseTensor(coarse_coords, torch.tensor([[7.0, 7.0], [9.0, 9.0]]), stride=4)
    pts = torch.tensor([[0.05, 0.0, 0.0], [0.15, 0.0, 0.0], [0.55, 0.0, 0.0]])
    f = multires_features([coarse, fine], torch.zeros(3, dtype=torch.long), pts, voxel_size=0.1)
    assert f.tolist() == [[7.0, 7.0, 1.0], [7.0, 7.0, 2.0], [9.0, 9.0, 3.0]]


def synthetic(n, k, informative, seed):
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, k, (n,), generator=g)
    noise = torch.randn(n, 8, generator=g)
    if informative:
        centres = torch.randn(k, 8, generator=torch.Generator().manual_seed(99)) * 3
        return noise + centres[y], y
    return noise, y


def test_linear_probe_and_knn_beat_chance_on_informative_features():
    k = 4
    xtr, ytr = synthetic(800, k, True, 0)
    xte, yte = synthetic(400, k, True, 1)
    ntr, _ = synthetic(800, k, False, 2)
    nte, _ = synthetic(400, k, False, 3)
    g = torch.Generator().manual_seed(0)
    lin = segmentation_metrics(linear_probe(xtr, ytr, xte, k, epochs=100, generator=g), yte, k)
    knn = segmentation_metrics(knn_classify(xtr, ytr, xte, k, k=10), yte, k)
    chance = segmentation_metrics(linear_probe(ntr, ytr, nte, k, epochs=100, generator=g), yte, k)
    chance_knn = segmentation_metrics(knn_classify(ntr, ytr, nte, k, k=10), yte, k)
    assert chance["oa"] < 0.4 and chance_knn["oa"] < 0.4  # noise features are at chance (1/4)
    assert lin["oa"] > chance["oa"] + 0.4 and lin["miou"] > chance["miou"] + 0.4
    assert knn["oa"] > chance_knn["oa"] + 0.4


def test_probe_ignores_unlabelled_training_points():
    xtr, ytr = synthetic(300, 3, True, 0)
    ytr[:150] = -1
    pred = linear_probe(xtr, ytr, xtr, 3, epochs=50)
    assert pred.shape == (300,) and int(pred.max()) < 3
    with pytest.raises(ValueError):
        linear_probe(xtr, torch.full((300,), -1), xtr, 3)


def two_copies(offset: float, seed: int = 0, n: int = 300):
    """One little cluster (points on a 1/64 m lattice, so every sum below is exact in float32) twice: at the
    origin and ``offset`` metres up, far beyond the U-Net's receptive field."""
    from geomask.points.augment import ScenePoints

    g = torch.Generator().manual_seed(seed)
    pts = torch.randint(0, 64, (n, 3), generator=g).float() / 64
    rgb = torch.rand(n, 3, generator=g)
    both = torch.cat([pts, pts + torch.tensor([0.0, 0.0, offset])])
    return ScenePoints(both, torch.cat([rgb, rgb]), torch.zeros(2 * n, dtype=torch.long))


@pytest.mark.parametrize("geometry", ["none", "height", "xyz"])
def test_network_features_see_position_only_through_geometry_channels(geometry):
    """The two copies have the same neighbourhoods and only their height tells them apart: without
    coordinate channels (what --no-coords builds) their features are identical, with them they differ."""
    from geomask.eval.probe import probe_features
    from geomask.methods.msm import build_msm

    scan = two_copies(offset=64.0)  # 512 voxels of 0.125 m, a multiple of the coarsest stride (16)
    torch.manual_seed(0)
    net = build_msm(backbone="Res16UNetTiny", voxel_size=0.125, geometry=geometry)
    f = probe_features(net, scan)
    n = len(f) // 2
    same = torch.allclose(f[:n], f[n:], atol=1e-5)
    assert same == (geometry == "none"), (geometry, float((f[:n] - f[n:]).abs().max()))


def test_raw_features_with_and_without_coordinates():
    from geomask.eval.probe import raw_features

    scan = two_copies(offset=8.0, n=50)
    on, off = raw_features(scan), raw_features(scan, coords=False)
    assert torch.equal(on, torch.cat([scan.points, scan.feats], 1))  # unchanged default: xyz + colour
    assert torch.equal(off, scan.feats) and off.size(1) == 3
    assert torch.equal(off[:50], off[50:]) and not torch.equal(on[:50], on[50:])
