"""Bit-parallel simulation of an AIG: 64 input patterns per ``uint64`` word, and the labels built on it.

The value of variable ``v`` under ``64 * W`` patterns is a row of ``W`` words; bit ``b`` of word ``w`` is
pattern ``64 * w + b``.  Latches are treated as free (pseudo-primary) inputs, so patterns cover
``I + L`` sources.  The ANDs are evaluated in their (topological) row order by a numba kernel with an
inner loop over words: EPFL ``hyp`` has 24,801 levels, so a numpy loop over levels would be far slower.

Labels:

* :func:`signal_probability` -- the fraction of patterns under which each variable is 1, exact
  (exhaustive) for small input counts, estimated from seeded random patterns otherwise;
* :func:`equivalence_candidates` -- pairs of variables whose simulation signatures are equal or
  complementary (candidate equivalences, to be proven by a SAT/CEC tool).
"""

from __future__ import annotations

import numba
import numpy as np

from geomask.io.aig import AIG

__all__ = ["equivalence_candidates", "random_patterns", "signal_probability", "simulate"]

_ONES = np.uint64(0xFFFF_FFFF_FFFF_FFFF)


@numba.njit(cache=True, nogil=True)
def _sim_kernel(
    values: np.ndarray, var0: np.ndarray, var1: np.ndarray, neg0: np.ndarray, neg1: np.ndarray, first: int
) -> None:
    # values: [M+1, W] uint64, rows 0 .. first-1 already filled; fills the AND rows in order.
    n_words = values.shape[1]
    for i in range(var0.shape[0]):
        a = values[var0[i]]
        b = values[var1[i]]
        out = values[first + i]
        m0 = neg0[i]
        m1 = neg1[i]
        for w in range(n_words):
            out[w] = (a[w] ^ m0) & (b[w] ^ m1)


def _fanins(aig: AIG) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    lits = aig.ands
    var0 = np.ascontiguousarray(lits[:, 0] >> 1)
    var1 = np.ascontiguousarray(lits[:, 1] >> 1)
    neg0 = np.where(lits[:, 0] & 1, _ONES, np.uint64(0)).astype(np.uint64)
    neg1 = np.where(lits[:, 1] & 1, _ONES, np.uint64(0)).astype(np.uint64)
    return var0, var1, neg0, neg1


def simulate(aig: AIG, patterns: np.ndarray) -> np.ndarray:
    """Values of every variable under bit-packed input patterns.

    .. math::
        x_{\\text{and}} = (x_{a} \\oplus n_a) \\wedge (x_{b} \\oplus n_b)

    with :math:`n` all-ones for a complemented fanin literal.

    Args:
        aig: the circuit; its ANDs must be topologically sorted (the :class:`AIG` contract).
        patterns: ``[I + L, W]`` uint64, row ``k`` the values of source variable ``k + 1`` (inputs, then
            latches) under ``64 * W`` patterns.

    Returns:
        ``[M + 1, W]`` uint64 values per variable; row 0 (constant FALSE) is all zeros.  A literal's
        value is ``values[lit >> 1] ^ (all-ones if lit & 1)``.

    Shapes:
        I inputs, L latches, M variables, W words of 64 patterns.
    """
    patterns = np.asarray(patterns)
    n_src = aig.num_inputs + aig.num_latches
    if patterns.ndim != 2 or patterns.shape[0] != n_src:
        raise ValueError(f"patterns must be [I+L={n_src}, W], got shape {patterns.shape}")
    if patterns.dtype != np.uint64:
        raise ValueError(f"patterns must be uint64, got {patterns.dtype}")
    values = np.empty((aig.max_var + 1, patterns.shape[1]), dtype=np.uint64)
    values[0] = 0
    values[1 : n_src + 1] = patterns
    if aig.num_ands:
        _sim_kernel(values, *_fanins(aig), aig.first_and_var)
    return values


def random_patterns(num_sources: int, num_patterns: int, seed: int | np.random.Generator = 0) -> np.ndarray:
    """Uniform random bit-packed patterns ``[num_sources, ceil(num_patterns / 64)]`` uint64.

    Args:
        num_sources: rows (``I + L`` for :func:`simulate`).
        num_patterns: patterns; bits past ``num_patterns`` in the last word are random too.
        seed: an int seed or a ``numpy.random.Generator``.
    """
    rng = np.random.default_rng(seed)
    n_words = -(-num_patterns // 64)
    return rng.integers(0, _ONES, size=(num_sources, n_words), dtype=np.uint64, endpoint=True)


def _exhaustive_patterns(num_sources: int) -> np.ndarray:
    """All ``2 ** n`` assignments: bit ``j`` of pattern ``p`` is source ``j``'s value, ``[n, ceil(2**n / 64)]``."""
    p = np.arange(2**num_sources, dtype=np.int64)
    n_words = -(-(2**num_sources) // 64)
    bits = ((p[None, :] >> np.arange(num_sources, dtype=np.int64)[:, None]) & 1).astype(np.uint8)
    bits = np.pad(bits, ((0, 0), (0, 64 * n_words - bits.shape[1])))
    return np.packbits(bits, axis=1, bitorder="little").view("<u8").astype(np.uint64).reshape(num_sources, n_words)


def _tail_mask(num_patterns: int) -> np.ndarray:
    """``[W]`` uint64 with the bits of the first ``num_patterns`` patterns set."""
    n_words = -(-num_patterns // 64)
    mask = np.full(n_words, _ONES, dtype=np.uint64)
    rem = num_patterns % 64
    if rem:
        mask[-1] = np.uint64((1 << rem) - 1)
    return mask


def _patterns(aig: AIG, num_patterns: int, exhaustive: bool, seed: int | np.random.Generator) -> np.ndarray:
    n_src = aig.num_inputs + aig.num_latches
    return _exhaustive_patterns(n_src) if exhaustive else random_patterns(n_src, num_patterns, seed)


def signal_probability(
    aig: AIG,
    num_patterns: int = 65536,
    exhaustive_limit: int = 16,
    seed: int | np.random.Generator = 0,
    chunk_words: int | None = None,
) -> np.ndarray:
    """Probability that each variable is 1 under uniformly distributed inputs (and latch states).

    Exact when ``I + L <= exhaustive_limit`` (all ``2 ** (I + L)`` patterns are simulated and
    ``num_patterns`` is ignored); otherwise the fraction over ``num_patterns`` random patterns drawn from
    ``numpy.random.default_rng(seed)``.  Simulation runs in blocks of ``chunk_words`` words so memory
    stays at about ``(M + 1) * chunk_words * 8`` bytes; the result does not depend on the block size.

    Args:
        aig: the circuit.
        num_patterns: random patterns (when not exhaustive), at least 1.
        exhaustive_limit: largest ``I + L`` simulated exhaustively (at most 30).
        seed: an int seed or a ``numpy.random.Generator``.
        chunk_words: words per block; by default about 64 MiB of values per block.

    Returns:
        ``[M + 1]`` float64 in ``[0, 1]``; entry 0 (constant FALSE) is 0.
    """
    if num_patterns < 1:
        raise ValueError(f"num_patterns must be >= 1, got {num_patterns}")
    if not 0 <= exhaustive_limit <= 30:
        raise ValueError(f"exhaustive_limit must be in 0..30, got {exhaustive_limit}")
    n_src = aig.num_inputs + aig.num_latches
    exhaustive = n_src <= exhaustive_limit
    total = 2**n_src if exhaustive else num_patterns
    patterns = _patterns(aig, num_patterns, exhaustive, seed)
    mask = _tail_mask(total)
    if chunk_words is None:
        chunk_words = max(1, (64 << 20) // (8 * (aig.max_var + 1)))
    counts = np.zeros(aig.max_var + 1, dtype=np.int64)
    for lo in range(0, patterns.shape[1], chunk_words):
        hi = min(lo + chunk_words, patterns.shape[1])
        values = simulate(aig, patterns[:, lo:hi])
        values &= mask[lo:hi]
        counts += np.bitwise_count(values).sum(axis=1, dtype=np.int64)
    return counts / total


def equivalence_candidates(
    aig: AIG, num_patterns: int = 2048, seed: int | np.random.Generator = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Pairs of variables with equal or complementary simulation signatures.

    Each variable's signature (its values under the patterns) is normalised to pattern 0 being 0
    (complemented otherwise); variables with identical normalised signatures form a class.  Classes are
    reported against their representative, the smallest variable of the class, so there are at most
    ``M`` pairs (no quadratic blow-up): every member pairs with the representative, and any two members
    are related through it.  Variable 0 (constant FALSE) is a variable like the others, so constant
    nodes pair with it (``complement`` True for constant TRUE).  When ``2 ** (I + L) <= num_patterns``
    the simulation is exhaustive and the candidates are proven equivalences; otherwise they are
    candidates only (random patterns from ``numpy.random.default_rng(seed)``).

    Args:
        aig: the circuit.
        num_patterns: random patterns (signature length in bits).
        seed: an int seed or a ``numpy.random.Generator``.

    Returns:
        ``pairs``: ``[P, 2]`` int64 ``(representative, member)`` with ``representative < member``, sorted;
        ``complement``: ``[P]`` bool, True where the member equals the representative's complement.
    """
    if num_patterns < 1:
        raise ValueError(f"num_patterns must be >= 1, got {num_patterns}")
    n_src = aig.num_inputs + aig.num_latches
    exhaustive = 2**n_src <= num_patterns if n_src < 63 else False
    total = 2**n_src if exhaustive else num_patterns
    sig = simulate(aig, _patterns(aig, num_patterns, exhaustive, seed))
    phase = (sig[:, 0] & np.uint64(1)).astype(bool)
    sig[phase] ^= _ONES
    sig &= _tail_mask(total)
    rows = np.ascontiguousarray(sig).view(np.dtype((np.void, 8 * sig.shape[1]))).ravel()
    _, first, inverse = np.unique(rows, return_index=True, return_inverse=True)
    rep = first[inverse.reshape(-1)]  # np.unique's first index is the smallest member
    member = np.nonzero(rep != np.arange(len(rep)))[0]
    pairs = np.stack([rep[member], member], axis=1).astype(np.int64)
    order = np.lexsort((pairs[:, 1], pairs[:, 0]))
    pairs = pairs[order]
    return pairs, phase[pairs[:, 0]] != phase[pairs[:, 1]]
