"""Metrics against values worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from geomask.eval.metrics import (
    auc,
    best_threshold,
    design_stats,
    legacy_mape,
    mape,
    mean_std,
    precision_recall_f1,
    qor_metrics,
    topk_commonality,
    z_mae,
    z_mse,
)


def test_z_errors_by_hand():
    # errors 0, 1, 2 -> mse (0 + 1 + 4) / 3, mae 1
    assert z_mse([1, 2, 3], [1, 3, 5]) == pytest.approx(5 / 3)
    assert z_mae([1, 2, 3], [1, 3, 5]) == pytest.approx(1.0)


def test_mape_is_percent_on_raw_values():
    assert mape([110, 90, 100], [100, 100, 100]) == pytest.approx(20 / 3)
    with pytest.raises(ValueError, match="0"):
        mape([1.0], [0.0])


def test_legacy_mape_is_sklearn_formula_without_percent():
    # |1-0.5|/1 = 0.5, |-2+1|/2 = 0.5, |4-3|/4 = 0.25 -> 1.25 / 3 (not x100)
    assert legacy_mape([0.5, -1.0, 3.0], [1.0, -2.0, 4.0]) == pytest.approx(1.25 / 3)
    # a true z-score of 0 divides by machine epsilon: the instability the label warns about
    assert legacy_mape([0.1], [0.0]) == pytest.approx(0.1 / np.finfo(np.float64).eps)


def test_topk_commonality_by_hand():
    true = np.array([5, 6, 7, 0, 8, 9, 9, 1, 9, 9], dtype=float)  # best two: recipes 3, 7
    pred = np.array([5, 6, 7, 0, 8, 1, 9, 9, 9, 9], dtype=float)  # best two: recipes 3, 5
    assert topk_commonality(pred, true, 20) == pytest.approx(50.0)  # n = 2, overlap {3}
    assert topk_commonality(pred, true, 10) == pytest.approx(100.0)  # n = 1, both pick 3
    assert topk_commonality(pred, true, 1) == pytest.approx(100.0)  # n = ceil(0.1) = 1
    assert topk_commonality(-true, true, 20) == pytest.approx(0.0)
    with pytest.raises(ValueError):
        topk_commonality(pred, true, 0)


def test_topk_commonality_ties_never_decided_by_recipe_order():
    true = np.array([0, 0, 1, 2, 3, 4, 5, 6, 7, 8], dtype=float)  # two recipes share the best value
    # a constant prediction scores the share of truly best recipes (2 of 10), not a lucky first index
    assert topk_commonality(np.zeros(10), true, 10) == pytest.approx(20.0)
    assert topk_commonality(np.zeros(10), true[::-1].copy(), 10) == pytest.approx(20.0)
    # picking either of the tied best recipes is a hit
    pred = np.arange(10, dtype=float)[::-1].copy()
    pred[1] = -1.0
    assert topk_commonality(pred, true, 10) == pytest.approx(100.0)
    # two predictions tie for the last slot, one of them truly best: half a hit in expectation
    assert topk_commonality(np.array([0, 5, 5, 9], dtype=float), np.array([0, 1, 9, 9], dtype=float), 50) == (
        pytest.approx(75.0)
    )


def test_qor_metrics_denormalise_with_given_stats():
    m = qor_metrics(np.array([1.0, -1.0]), np.array([1.0, -1.0]), np.array([120.0, 80.0]), 100.0, 20.0)
    assert m["z_mse"] == 0 and m["mape"] == pytest.approx(0.0) and m["top1"] == 100.0
    m = qor_metrics(np.array([0.0, 0.0]), np.array([1.0, -1.0]), np.array([120.0, 80.0]), 100.0, 20.0)
    assert m["mape"] == pytest.approx(100 * (20 / 120 + 20 / 80) / 2)


def test_auc_by_hand_and_ties():
    assert auc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]) == pytest.approx(0.75)
    assert auc([0.5, 0.5], [0, 1]) == pytest.approx(0.5)
    assert auc([0.0, 1.0], [0, 1]) == 1.0
    with pytest.raises(ValueError):
        auc([0.1, 0.2], [1, 1])


def test_precision_recall_f1_and_threshold():
    assert precision_recall_f1([1, 1, 0, 0], [1, 0, 1, 0]) == {"precision": 0.5, "recall": 0.5, "f1": 0.5}
    assert precision_recall_f1([0, 0], [1, 0])["f1"] == 0.0
    assert best_threshold([0.9, 0.8, 0.3, 0.1], [1, 1, 0, 0]) == pytest.approx(0.8)


def test_mean_std_and_design_stats():
    assert mean_std([{"a": 1.0, "b": 2.0}, {"a": 3.0, "b": 2.0}]) == {
        **{"a": 2.0, "a_std": 1.0, "a_seeds": [1.0, 3.0]},
        **{"b": 2.0, "b_std": 0.0, "b_seeds": [2.0, 2.0]},
    }
    with pytest.raises(ValueError):
        mean_std([{"a": 1.0}, {"b": 1.0}])
    assert design_stats([1.0, 2.0, 3.0]) == pytest.approx((2.0, np.sqrt(2 / 3)))
    assert design_stats([4.0, 4.0]) == (4.0, 1.0)


def test_regret_is_the_excess_of_the_recipe_predicted_best():
    from geomask.eval.metrics import regret

    true = [120.0, 100.0, 110.0, 100.0]
    assert regret([0.3, -1.0, 0.0, 2.0], true) == 0.0  # picked a best recipe
    assert regret([-2.0, 0.0, 1.0, 1.0], true) == pytest.approx(20.0)  # 120 / 100
    # a constant prediction: a random recipe, in expectation (mean 107.5 over best 100)
    assert regret([0.0, 0.0, 0.0, 0.0], true) == pytest.approx(7.5)
    assert regret([1.0, 0.0, 0.0, 5.0], true) == pytest.approx(5.0)  # tie between 100 and 110


def test_label_stats_on_hand_made_labels():
    from geomask.eval.metrics import label_stats

    ands = np.array(
        [
            [100, 110, 120, 130],  # spread 30 %
            [200, 210, 220, 230],  # same order: correlation 1 with the first
            [50, 50, 50, 50],  # constant: left out of the correlation
            [130, 120, 110, 100],  # reversed: correlation -1 with both
        ]
    )
    s = label_stats(ands)
    assert (s["designs"], s["recipes"], s["constant_designs"]) == (4, 4, 1)
    assert s["spread_max"] == pytest.approx(30.0)
    assert s["spread_median"] == pytest.approx(np.median([30.0, 15.0, 0.0, 30.0]))
    assert s["rank_correlation"] == pytest.approx((1.0 - 1.0 - 1.0) / 3)


def test_good_recipe_is_chosen_on_the_training_designs_only():
    from geomask.eval.qor import _good_recipe_regret

    raw = np.zeros((3, 3, 2))
    raw[..., 0] = [[10, 12, 14], [10, 12, 14], [20, 15, 10]]  # design 2 (tested) prefers recipe 2
    z = (raw - raw.mean(1, keepdims=True)) / raw.std(1, keepdims=True)
    train = np.array([[d, r] for d in (0, 1) for r in range(3)])
    test = np.array([[2, r] for r in range(3)])
    # the training designs' best recipe is 0: 20 ANDs on design 2 against its best 10
    assert _good_recipe_regret(z, raw, train, test) == {2: pytest.approx(100.0)}
