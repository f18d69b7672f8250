"""Synthesis recipes over the OpenABC-D alphabet of seven ABC optimisation commands.

A recipe is a sequence of op ids into :data:`OPS` (``0 .. 6``); OpenABC-D uses recipes of length 20.
:func:`recipe_to_abc` turns ids into an ABC script fragment, :func:`parse_recipe` reads one back, and
:func:`recipe_steps` accepts every recipe form (ids, op names, ABC commands).
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence

import numpy as np

from geomask.errors import UsageError

__all__ = [
    "DEFAULT_RECIPES",
    "DEFAULT_RECIPE_LENGTH",
    "OPS",
    "parse_recipe",
    "random_recipes",
    "recipe_steps",
    "recipe_to_abc",
]

#: The OpenABC-D synthesis alphabet; a recipe op id is an index into this tuple.
OPS: tuple[str, ...] = ("refactor", "refactor -z", "rewrite", "rewrite -z", "resub", "resub -z", "balance")

#: Random recipes per design that ``prep circuits`` labels and ``eval qor`` draws by default.
DEFAULT_RECIPES = 30
#: Ops per random recipe (OpenABC-D's length).
DEFAULT_RECIPE_LENGTH = 20

_OP_ID = {op: i for i, op in enumerate(OPS)}


def check_recipe_options(recipes: int, length: int, jobs: int = 1, *, what: str = "recipes", zero: str = "") -> None:
    """The one check of recipe counts, lengths and job counts (prep circuits, prep pairs, :func:`random_recipes`).

    Raises:
        UsageError: ``recipes < 0`` (``what`` names them, ``zero`` says what 0 means), ``length < 1``, ``jobs < 1``.
    """
    if recipes < 0:
        raise UsageError(f"{what} must be >= 0{f' ({zero})' if zero else ''}, got {recipes}")
    if length < 1:
        raise UsageError(f"recipe length must be >= 1, got {length}")
    if jobs < 1:
        raise UsageError(f"jobs must be >= 1, got {jobs}")


def random_recipes(n: int, length: int = DEFAULT_RECIPE_LENGTH, seed: int | np.random.Generator = 0) -> np.ndarray:
    """Draw ``n`` random recipes, uniformly over the alphabet, distinct where possible.

    Recipes are drawn in batches from ``numpy.random.default_rng(seed)``; duplicates are discarded
    (keeping first occurrences, in draw order) and redrawn until ``n`` distinct recipes exist.  When
    ``n`` exceeds the ``7 ** length`` possible recipes, every recipe appears and the rest repeat.

    Args:
        n: number of recipes (0 gives an empty ``[0, length]`` array).
        length: ops per recipe, at least 1.
        seed: an int seed or a ``numpy.random.Generator`` (consumed).

    Returns:
        ``[n, length]`` int64 op ids in ``0 .. 6``; the same ``seed`` gives the same array.

    Raises:
        UsageError: ``n < 0`` or ``length < 1``.
    """
    check_recipe_options(n, length, what="number of recipes")
    rng = np.random.default_rng(seed)
    k = len(OPS)
    if n == 0:
        return np.zeros((n, length), dtype=np.int64)
    total = k**length if length < 40 else None  # None: more than any n we could hold
    if total is not None and n >= total:
        every = np.array(np.unravel_index(np.arange(total), (k,) * length), dtype=np.int64).T
        extra = rng.integers(0, k, size=(n - total, length), dtype=np.int64)
        return np.concatenate([rng.permutation(every), extra])
    out = np.zeros((0, length), dtype=np.int64)
    while out.shape[0] < n:
        draw = rng.integers(0, k, size=(max(n - out.shape[0], 16) * 2, length), dtype=np.int64)
        both = np.concatenate([out, draw])
        _, first = np.unique(both, axis=0, return_index=True)
        out = both[np.sort(first)]
    return out[:n]


def recipe_to_abc(ids: Sequence[int] | np.ndarray) -> str:
    """ABC commands of a recipe joined by ``"; "``, e.g. ``[2, 6] -> "rewrite; balance"``.

    Raises:
        UsageError: an id outside ``0 .. 6``.
    """
    arr = np.asarray(ids, dtype=np.int64).reshape(-1)
    bad = arr[(arr < 0) | (arr >= len(OPS))]
    if bad.size:
        raise UsageError(f"recipe op id {int(bad[0])} is outside 0..{len(OPS) - 1}")
    return "; ".join(OPS[i] for i in arr.tolist())


def parse_recipe(text: str) -> np.ndarray:
    """Op ids of an ABC script fragment over the alphabet (``;``-separated, whitespace-insensitive).

    Args:
        text: e.g. ``"rewrite; refactor -z;balance"``; empty commands (``;;``) are skipped.

    Returns:
        ``[S]`` int64 op ids.

    Raises:
        UsageError: a command outside the alphabet, naming it and listing the known ops.
    """
    ids = []
    for raw in text.split(";"):
        cmd = " ".join(raw.split())
        if not cmd:
            continue
        if cmd not in _OP_ID:
            raise UsageError(f"unknown recipe op {cmd!r}; known ops: {', '.join(OPS)}")
        ids.append(_OP_ID[cmd])
    return np.asarray(ids, dtype=np.int64)


def recipe_steps(recipe: str | Sequence[int | str] | np.ndarray) -> list[str]:
    """The ABC commands of a recipe in any of its forms, whitespace normalised.

    Args:
        recipe: an ABC script fragment (``"rewrite; balance"``), or a sequence whose items are op ids
            (``0 .. 6``, see :data:`OPS`), op names (``"rewrite -z"``) or other ABC commands (``"dc2"``), mixed
            freely; a string item may hold several ``;``-separated commands.  Commands are passed to ABC
            as written; ids are checked.

    Raises:
        UsageError: an id outside ``0 .. 6`` or an item that is neither an int nor a string.
    """
    if isinstance(recipe, str):
        items: list = [recipe]
    else:
        items = list(np.asarray(recipe).reshape(-1)) if isinstance(recipe, np.ndarray) else list(recipe)
    steps = []
    for item in items:
        if isinstance(item, str):
            steps += [" ".join(s.split()) for s in item.split(";") if s.strip()]
        elif isinstance(item, numbers.Integral) and not isinstance(item, bool):
            steps.append(recipe_to_abc([int(item)]))
        else:
            raise UsageError(
                f"recipe step {item!r}: expected an op id 0..{len(OPS) - 1}, an op name ({', '.join(OPS)}) "
                "or an ABC command"
            )
    return steps
