"""Label maps from the data files: ScanNet-20 and SemanticKITTI's learning map."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from geomask.points.labelmaps import available_label_maps, load_label_map, map_labels

SCANNET20_IDS = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 14, 16, 24, 28, 33, 34, 36, 39]


def test_available():
    assert {"nyu40_to_scannet20", "semantickitti", "semantickitti_to_train"} <= set(available_label_maps())


def test_nyu40_to_scannet20():
    out = map_labels(np.arange(41), "nyu40_to_scannet20")
    expected = np.full(41, -1)
    expected[SCANNET20_IDS] = np.arange(20)
    np.testing.assert_array_equal(out, expected)
    lm = load_label_map("nyu40_to_scannet20")
    assert lm.num_classes == 20 and lm.class_names[0] == "wall" and lm.class_names[-1] == "otherfurniture"
    with pytest.raises(ValueError, match="does not know label ids 41"):
        map_labels(np.array([1, 41]), "nyu40_to_scannet20")


def test_semantickitti_learning_map():
    raw = np.array([0, 1, 10, 11, 13, 15, 16, 18, 20, 30, 40, 52, 60, 81, 99, 252, 253, 254, 255, 256, 257, 258, 259])
    want = np.array([0, 0, 1, 2, 5, 3, 5, 4, 5, 6, 9, 0, 9, 19, 0, 1, 7, 6, 8, 5, 5, 4, 5])
    np.testing.assert_array_equal(map_labels(raw, "semantickitti"), want)
    np.testing.assert_array_equal(map_labels(raw, "semantickitti_to_train"), np.where(want == 0, -1, want - 1))
    with pytest.raises(ValueError, match="ids 9"):  # a learning id given to the raw-id map
        map_labels(np.array([9, 10]), "semantickitti")
    np.testing.assert_array_equal(map_labels(np.array([0, 1, 19]), "semantickitti_learning_to_train"), [-1, 0, 18])


def test_torch_in_torch_out_and_bad_input(tmp_path):
    out = map_labels(torch.tensor([1, 2, 0]), "nyu40_to_scannet20")
    assert isinstance(out, torch.Tensor) and out.tolist() == [0, 1, -1]
    with pytest.raises(ValueError, match="integers"):
        map_labels(np.array([1.5]), "nyu40_to_scannet20")
    with pytest.raises(ValueError, match="unknown label map"):
        map_labels(np.array([1]), "nope")
    custom = tmp_path / "m.json"
    custom.write_text(
        '{"source_range": [0, 2], "map": {"0": 1, "2": 0}, "default": -1, "ignore_index": -1,'
        ' "class_names": ["a", "b"]}'
    )
    np.testing.assert_array_equal(map_labels(np.array([0, 1, 2]), str(custom)), [1, -1, 0])
