"""Synthesis recipes over the OpenABC-D alphabet of seven ABC optimisation commands.

A recipe is a sequence of op ids into :data:`OPS` (``0 .. 6``); OpenABC-D uses recipes of length 20.
Two seeded families of random recipes (:func:`family_recipes`): ``uniform`` (:func:`random_recipes`, OpenABC-D's:
every recipe ``length`` ops drawn uniformly; the default) and ``varied`` (:func:`varied_recipes`: lengths drawn
from a range and a per-recipe op mix, so that recipes differ in how much and what kind of optimisation they
do).  A batch of recipes of different lengths is one ``[R, S]`` array right-padded with :data:`PAD`
(:func:`unpad` gives the rows back).
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
    "PAD",
    "RECIPE_FAMILIES",
    "family_recipes",
    "parse_recipe",
    "random_recipes",
    "recipe_steps",
    "recipe_to_abc",
    "unpad",
    "varied_recipes",
]

#: The OpenABC-D synthesis alphabet; a recipe op id is an index into this tuple.
OPS: tuple[str, ...] = ("refactor", "refactor -z", "rewrite", "rewrite -z", "resub", "resub -z", "balance")

#: Random recipes per design that ``prep circuits`` labels and ``eval qor`` draws by default.
DEFAULT_RECIPES = 30
#: Ops per random recipe (OpenABC-D's length).
DEFAULT_RECIPE_LENGTH = 20

#: The op id that right-pads recipes shorter than their batch's longest (never an ABC command).
PAD = -1
#: Random recipe families (:func:`family_recipes`); the first is the default.
RECIPE_FAMILIES = ("uniform", "varied")

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


def _distinct(draw, n: int, width: int) -> np.ndarray:
    """``n`` distinct rows (first occurrences, in draw order) from repeated ``draw(k) -> [k, width]`` batches."""
    out = np.zeros((0, width), dtype=np.int64)
    for _ in range(1000):
        if out.shape[0] >= n:
            break
        both = np.concatenate([out, draw(max(n - out.shape[0], 16) * 2)])
        _, first = np.unique(both, axis=0, return_index=True)
        out = both[np.sort(first)]
    return out[:n]


def varied_recipes(
    n: int,
    lengths: tuple[int, int] = (1, DEFAULT_RECIPE_LENGTH),
    seed: int | np.random.Generator = 0,
    concentration: float = 0.5,
) -> np.ndarray:
    """Draw ``n`` distinct recipes of varied length and op mix.

    Each recipe draws its length uniformly from ``lengths[0] .. lengths[1]`` (inclusive), its op mix from a
    symmetric Dirichlet of ``concentration`` over the 7 ops (0.5: most recipes lean on one to three ops, e.g.
    mostly ``balance`` or mostly ``rewrite``/``resub``), and then its ops i.i.d. from that mix.  Draws are
    batched from ``numpy.random.default_rng(seed)``; duplicates are discarded and redrawn as in
    :func:`random_recipes` (``n`` must not exceed the number of distinct recipes of those lengths).

    Returns:
        ``[n, lengths[1]]`` int64 op ids, each row right-padded with :data:`PAD` after its length; the same
        ``seed`` gives the same array.

    Raises:
        UsageError: ``n < 0``, ``lengths`` not ``1 <= lo <= hi``, ``concentration <= 0``, or more recipes than
            exist.
    """
    lo, hi = int(lengths[0]), int(lengths[1])
    check_recipe_options(n, lo, what="number of recipes")
    if hi < lo:
        raise UsageError(f"recipe lengths {lo}..{hi}: the maximum is below the minimum")
    if not concentration > 0:
        raise UsageError(f"recipe mix concentration must be > 0, got {concentration}")
    k = len(OPS)
    if hi < 12 and n > sum(k**s for s in range(lo, hi + 1)):
        raise UsageError(f"{n} recipes of lengths {lo}..{hi}: fewer distinct recipes exist")
    rng = np.random.default_rng(seed)

    def draw(m: int) -> np.ndarray:
        length = rng.integers(lo, hi + 1, size=m)
        cdf = np.cumsum(rng.dirichlet(np.full(k, float(concentration)), size=m), axis=1)  # [m, 7]
        u = rng.random((m, hi))
        ops = np.minimum((u[:, :, None] >= cdf[:, None, :]).sum(2), k - 1).astype(np.int64)  # [m, hi]
        ops[np.arange(hi)[None, :] >= length[:, None]] = PAD
        return ops

    out = _distinct(draw, n, hi)
    if out.shape[0] < n:  # pragma: no cover - only when nearly every recipe of these lengths is asked for
        raise UsageError(f"could not draw {n} distinct recipes of lengths {lo}..{hi}")
    return out


def family_recipes(family: str, n: int, length: int = DEFAULT_RECIPE_LENGTH, seed: int = 0) -> np.ndarray:
    """``n`` seeded recipes of a family: ``uniform`` (:func:`random_recipes`, all ``length`` ops) or ``varied``
    (:func:`varied_recipes`, lengths ``1 .. length``, padded with :data:`PAD`).

    Raises:
        UsageError: an unknown family, or what the family's function raises.
    """
    if family == "uniform":
        return random_recipes(n, length, seed)
    if family == "varied":
        return varied_recipes(n, (1, length), seed)
    raise UsageError(f"unknown recipe family {family!r}; known: {', '.join(RECIPE_FAMILIES)}")


def unpad(recipes: np.ndarray) -> list[np.ndarray]:
    """The rows of ``[R, S]`` op ids without their :data:`PAD` ops (each ``[S_r]`` int64)."""
    arr = np.asarray(recipes, dtype=np.int64)
    return [row[row != PAD] for row in arr.reshape(len(arr), -1)]


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
