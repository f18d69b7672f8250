"""Object-level evaluation: the torch linear SVM, few-shot episodes, frozen-feature extraction."""

from __future__ import annotations

import pytest
import torch

from geomask.eval.objects import extract_features, few_shot, linear_svm, scan_crops, svm_accuracy
from geomask.methods.pointmae import build_pointmae
from geomask.points.synthetic import SHAPES, synthetic_objects


def blobs(n_per: int, k: int, dim: int, seed: int, sep: float = 4.0):
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(k, dim, generator=g) * sep
    y = torch.arange(k).repeat_interleave(n_per)
    return centres[y] + torch.randn(k * n_per, dim, generator=g), y


def test_svm_separates_blobs_and_is_label_equivariant():
    x, y = blobs(30, 4, 8, seed=0)
    perm = torch.randperm(x.size(0), generator=torch.Generator().manual_seed(1))
    tr, te = perm[:80], perm[80:]
    assert svm_accuracy(x[tr], y[tr], x[te], y[te]) > 0.95
    relabel = torch.tensor([2, 0, 3, 1])
    pred = linear_svm(x[tr], relabel[y[tr]], 4)(x[te])
    assert (pred == relabel[y[te]]).float().mean() > 0.95
    with pytest.raises(ValueError):
        linear_svm(x, y[:-1])


def test_svm_is_no_better_than_chance_on_random_labels():
    x, _ = blobs(40, 3, 16, seed=2)
    y = torch.randint(0, 3, (120,), generator=torch.Generator().manual_seed(3))
    assert svm_accuracy(x[:80], y[:80], x[80:], y[80:]) < 0.6


def test_few_shot_episodes():
    x, y = blobs(30, 6, 8, seed=4)
    mean, std = few_shot(x, y, n_way=5, k_shot=5, n_query=10, episodes=3, generator=torch.Generator().manual_seed(0))
    assert mean > 0.9 and 0.0 <= std <= 0.1
    with pytest.raises(ValueError):
        few_shot(x, y, n_way=7)
    with pytest.raises(ValueError):
        few_shot(x, y, n_way=5, k_shot=25, n_query=10)


def test_frozen_features_of_synthetic_objects_beat_chance():
    torch.manual_seed(0)
    pos, y = synthetic_objects(96, 128, seed=5)
    m = build_pointmae(num_groups=8, group_size=16, dim=32, depth=1, decoder_depth=1, heads=2, embed_hidden=16)
    m.train()
    feats = extract_features(m, pos, batch_size=32)
    assert m.training and feats.shape == (96, 64)
    assert torch.equal(feats, extract_features(m, pos, batch_size=7))  # deterministic, batch independent
    acc = svm_accuracy(feats[:72], y[:72], feats[72:], y[72:])
    assert acc > 1.5 / len(SHAPES), acc  # chance is 1 / 6; seeded, so this is deterministic


def test_scan_crops_are_normalised_deterministic_and_come_from_the_scan():
    g = torch.Generator().manual_seed(0)
    scan = torch.rand(3000, 3, generator=g) * torch.tensor([4.0, 4.0, 2.0])
    other = scan + 100.0  # another scan: no crop point may come from it
    radii = torch.tensor([0.3, 0.5, 0.8])
    crops, centers, scales = scan_crops(scan, radii, 12, 64, torch.Generator().manual_seed(1))
    assert crops.shape == (12, 64, 3) and centers.shape == (12, 3) and scales.shape == (12,)
    assert torch.allclose(crops.norm(dim=-1).amax(1), torch.ones(12)) and crops.mean(1).abs().max() < 1e-5
    back = crops * scales[:, None, None] + centers[:, None]
    exact = "donot_use_mm_for_euclid_dist"
    assert torch.cdist(back.reshape(-1, 3), scan, compute_mode=exact).amin(1).max() < 1e-4  # all scan points
    assert torch.cdist(back.reshape(-1, 3), other).amin(1).min() > 90
    assert bool((scales <= 2 * radii.max() + 1e-5).all())  # inside a ball of a drawn radius
    again = scan_crops(scan, radii, 12, 64, torch.Generator().manual_seed(1))[0]
    assert torch.equal(crops, again)
    assert not torch.equal(crops, scan_crops(scan, radii, 12, 64, torch.Generator().manual_seed(2))[0])
    with pytest.raises(ValueError, match="crops held"):
        scan_crops(scan, torch.tensor([1e-4]), 4, 64, torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match="radius"):
        scan_crops(scan, torch.tensor([0.0]), 4, 64, torch.Generator().manual_seed(0))
