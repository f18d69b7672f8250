"""Synthesis recipes over the OpenABC-D alphabet of seven ABC optimisation commands.

A recipe is a sequence of op ids into :data:`OPS` (``0 .. 6``); OpenABC-D uses recipes of length 20.
:func:`recipe_to_abc` turns ids into an ABC script fragment, :func:`parse_recipe` reads one back.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["OPS", "parse_recipe", "random_recipes", "recipe_to_abc"]

#: The OpenABC-D synthesis alphabet; a recipe op id is an index into this tuple.
OPS: tuple[str, ...] = ("refactor", "refactor -z", "rewrite", "rewrite -z", "resub", "resub -z", "balance")

_OP_ID = {op: i for i, op in enumerate(OPS)}


def random_recipes(n: int, length: int = 20, seed: int | np.random.Generator = 0) -> np.ndarray:
    """Draw ``n`` random recipes, uniformly over the alphabet, distinct where possible.

    Recipes are drawn in batches from ``numpy.random.default_rng(seed)``; duplicates are discarded
    (keeping first occurrences, in draw order) and redrawn until ``n`` distinct recipes exist.  When
    ``n`` exceeds the ``7 ** length`` possible recipes, every recipe appears and the rest repeat.

    Args:
        n: number of recipes.
        length: ops per recipe.
        seed: an int seed or a ``numpy.random.Generator`` (consumed).

    Returns:
        ``[n, length]`` int64 op ids in ``0 .. 6``; the same ``seed`` gives the same array.
    """
    if n < 0 or length < 0:
        raise ValueError(f"n and length must be non-negative, got n={n}, length={length}")
    rng = np.random.default_rng(seed)
    k = len(OPS)
    if length == 0 or n == 0:
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
        ValueError: an id outside ``0 .. 6``.
    """
    arr = np.asarray(ids, dtype=np.int64).reshape(-1)
    bad = arr[(arr < 0) | (arr >= len(OPS))]
    if bad.size:
        raise ValueError(f"recipe op id {int(bad[0])} is outside 0..{len(OPS) - 1}")
    return "; ".join(OPS[i] for i in arr.tolist())


def parse_recipe(text: str) -> np.ndarray:
    """Op ids of an ABC script fragment over the alphabet (``;``-separated, whitespace-insensitive).

    Args:
        text: e.g. ``"rewrite; refactor -z;balance"``; empty commands (``;;``) are skipped.

    Returns:
        ``[S]`` int64 op ids.

    Raises:
        ValueError: a command outside the alphabet, naming it and listing the known ops.
    """
    ids = []
    for raw in text.split(";"):
        cmd = " ".join(raw.split())
        if not cmd:
            continue
        if cmd not in _OP_ID:
            raise ValueError(f"unknown recipe op {cmd!r}; known ops: {', '.join(OPS)}")
        ids.append(_OP_ID[cmd])
    return np.asarray(ids, dtype=np.int64)
