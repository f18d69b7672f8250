from __future__ import annotations

import numpy as np
import pytest

from geomask.circuits.recipes import (
    DEFAULT_RECIPE_LENGTH,
    DEFAULT_RECIPES,
    OPS,
    parse_recipe,
    random_recipes,
    recipe_steps,
    recipe_to_abc,
)
from geomask.errors import UsageError


def test_alphabet_is_openabcd_order() -> None:
    assert OPS == ("refactor", "refactor -z", "rewrite", "rewrite -z", "resub", "resub -z", "balance")
    assert isinstance(OPS, tuple)


def test_recipe_to_abc_and_back() -> None:
    assert recipe_to_abc([2, 6, 1]) == "rewrite; balance; refactor -z"
    assert parse_recipe("rewrite; balance;refactor   -z ;; resub").tolist() == [2, 6, 1, 4]
    ids = random_recipes(20, seed=7)
    for row in ids:
        np.testing.assert_array_equal(parse_recipe(recipe_to_abc(row)), row)
    assert parse_recipe("").shape == (0,)


def test_unknown_op_and_bad_id_raise() -> None:
    with pytest.raises(ValueError, match="unknown recipe op 'dc2'"):
        parse_recipe("rewrite; dc2")
    with pytest.raises(ValueError, match="outside 0..6"):
        recipe_to_abc([0, 7])
    with pytest.raises(ValueError):
        random_recipes(-1)


def test_random_recipes_seeded_distinct_in_range() -> None:
    a = random_recipes(200, length=20, seed=1)
    assert a.shape == (200, 20) and a.dtype == np.int64
    assert a.min() >= 0 and a.max() <= 6
    np.testing.assert_array_equal(a, random_recipes(200, length=20, seed=np.random.default_rng(1)))
    assert not np.array_equal(a, random_recipes(200, length=20, seed=2))
    assert len(np.unique(a, axis=0)) == 200
    # every op is used, roughly uniformly
    counts = np.bincount(a.ravel(), minlength=7)
    assert counts.min() > 0.8 * a.size / 7


def test_random_recipes_small_space() -> None:
    # 7 ** 2 = 49 recipes exist: asking for 49 gives all of them, 60 gives all plus repeats
    assert len(np.unique(random_recipes(49, length=2, seed=0), axis=0)) == 49
    b = random_recipes(60, length=2, seed=0)
    assert b.shape == (60, 2) and len(np.unique(b, axis=0)) == 49
    assert random_recipes(0, length=4).shape == (0, 4)


def test_bad_counts_and_lengths_are_usage_errors() -> None:
    with pytest.raises(UsageError, match="number of recipes must be >= 0, got -1"):
        random_recipes(-1)
    for length in (0, -3):
        with pytest.raises(UsageError, match=f"recipe length must be >= 1, got {length}"):
            random_recipes(3, length=length)


def test_defaults_are_the_openabcd_protocol() -> None:
    # 30 recipes of 20 steps: the README's `prep circuits` / `eval qor` defaults
    assert (DEFAULT_RECIPES, DEFAULT_RECIPE_LENGTH) == (30, 20)
    assert random_recipes(DEFAULT_RECIPES).shape == (30, 20)


def test_recipe_steps_accepts_every_form() -> None:
    want = ["balance", "rewrite -z", "dc2"]
    assert recipe_steps("balance;  rewrite   -z ;dc2") == want
    assert recipe_steps(["balance", "rewrite -z", "dc2"]) == want
    assert recipe_steps([6, 3, "dc2"]) == want
    assert recipe_steps(np.array([6, 3])) == want[:2]
    assert recipe_steps(["balance; rewrite -z"]) == want[:2]
    with pytest.raises(UsageError, match="recipe step None"):
        recipe_steps([6, None])
    with pytest.raises(UsageError, match="recipe step True"):
        recipe_steps([True])
