"""Weak labels: seeded fractions per scene, index files round-trip, bad files rejected."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from geomask.errors import FormatError
from geomask.eval.weak import load_weak_indices, sample_weak_labels, save_weak_indices, weak_label_path, weak_scene
from geomask.points.augment import ScenePoints


def test_fraction_count_only_labelled_and_seeded():
    labels = torch.arange(10000) % 5
    labels[::3] = -1
    n_valid = int((labels != -1).sum())
    a = sample_weak_labels(labels, 0.001, torch.Generator().manual_seed(0))
    b = sample_weak_labels(labels, 0.001, torch.Generator().manual_seed(0))
    c = sample_weak_labels(labels, 0.001, torch.Generator().manual_seed(1))
    assert len(a) == int(0.001 * n_valid + 0.5) and torch.equal(a, b) and not torch.equal(a, c)
    assert bool((labels[a] != -1).all()) and torch.equal(a, torch.sort(a).values) and len(torch.unique(a)) == len(a)
    assert len(sample_weak_labels(labels, 1e-6)) == 1  # at least one point
    with pytest.raises(ValueError):
        sample_weak_labels(labels, 0.0)


def test_index_files_round_trip_and_checks(tmp_path):
    idx = torch.tensor([3, 17, 42])
    path = weak_label_path(tmp_path / "labels", "scene", 0.001, 0)
    save_weak_indices(path, idx)
    assert path.name == "scene_f0.001_s0.npy"
    assert torch.equal(load_weak_indices(path, 100), idx)
    with pytest.raises(FormatError):
        load_weak_indices(path, 10)  # indices beyond the scan
    bad = tmp_path / "bad.npy"
    np.save(bad, np.zeros((2, 2)))
    with pytest.raises(FormatError):
        load_weak_indices(bad, 100)


def test_weak_scene_keeps_only_sampled_labels():
    scene = ScenePoints(torch.zeros(6, 3), torch.zeros(6, 1), torch.zeros(6, dtype=torch.long), torch.arange(6))
    weak = weak_scene(scene, torch.tensor([1, 4]))
    assert weak.labels.tolist() == [-1, 1, -1, -1, 4, -1] and scene.labels.tolist() == list(range(6))
