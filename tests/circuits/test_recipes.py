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


def test_varied_recipes_seeded_lengths_and_mixes() -> None:
    from geomask.circuits.recipes import PAD, family_recipes, unpad, varied_recipes

    a = varied_recipes(300, (1, 20), seed=3)
    assert a.shape == (300, 20) and a.dtype == np.int64
    np.testing.assert_array_equal(a, varied_recipes(300, (1, 20), seed=np.random.default_rng(3)))
    np.testing.assert_array_equal(a, family_recipes("varied", 300, 20, seed=3))
    assert not np.array_equal(a, varied_recipes(300, (1, 20), seed=4))
    assert len(np.unique(a, axis=0)) == 300
    rows = unpad(a)
    lengths = np.array([len(r) for r in rows])
    # padding only after each recipe's ops, lengths spread over the whole range
    assert all(
        (a[i, n:] == PAD).all() and (a[i, :n] >= 0).all() and (a[i, :n] <= 6).all() for i, n in enumerate(lengths)
    )
    assert lengths.min() >= 1 and lengths.max() == 20 and len(np.unique(lengths)) >= 15

    # per-recipe mixes: many long recipes lean on one op (uniform 20-op recipes almost never do)
    def lean(recipes):
        return np.mean([np.bincount(r, minlength=7).max() / len(r) >= 0.5 for r in recipes if len(r) >= 10])

    assert lean(rows) > 0.3 and lean(list(random_recipes(300, 20, seed=3))) < 0.02
    assert (np.bincount(a[a != PAD], minlength=7) > 0).all()
    short = varied_recipes(50, (2, 4), seed=0)
    assert short.shape == (50, 4) and {len(r) for r in unpad(short)} <= {2, 3, 4}
    with pytest.raises(UsageError, match="maximum is below the minimum"):
        varied_recipes(3, (5, 2))
    with pytest.raises(UsageError, match="fewer distinct recipes exist"):
        varied_recipes(60, (1, 2))
    with pytest.raises(UsageError, match="unknown recipe family"):
        family_recipes("random", 3)
    np.testing.assert_array_equal(family_recipes("uniform", 5, 4, seed=1), random_recipes(5, 4, seed=1))
