"""An n-gram lexicon mined from token ids by pointwise mutual information, and a vectorised matcher.

Mining (:func:`mine_lexicon`) counts every window of ``n`` consecutive ids (``n = 2 .. max_n``) that lies inside
one record, and scores each distinct n-gram by its **PMI**:

.. math::
    \\mathrm{PMI}(w_1 \\dots w_n) = \\log \\frac{c(w_1 \\dots w_n) / N_n}{\\prod_{i=1}^{n} c(w_i) / N_1}

with ``c`` the counts, ``N_n`` the number of n-windows and ``N_1`` the number of tokens.  N-grams seen fewer than
``min_count`` times are dropped (PMI overrates rare pairs), the rest ranked by PMI (ties: higher count, then lower
key) within each length, and ``top_k`` kept, split evenly over the lengths (``top_k // (max_n - 1)`` each, the
remainder to the shorter; a length with fewer candidates leaves its share to the others).  PMI grows with ``n``
(a trigram's PMI adds its parts'), so one ranking over all lengths would keep trigrams only.
``measure="frequency"`` ranks by the count instead.

An n-gram is hashed to one int64 key ``Σ_i (w_i + 1) B^{i}`` with ``B = vocab_size + 1`` (so ``B^max_n`` must fit
in int64: ``vocab_size <= 2,097,151`` for ``max_n = 3``).  Matching (:func:`match_lexicon`) hashes every window of
a padded ``[B, L]`` batch the same way, ``torch.isin`` finds the lexicon's keys and ``searchsorted`` their rows --
no Python loop over tokens (one over ``n``).

A lexicon is plain tensors (:meth:`Lexicon.save` / :func:`load_lexicon`, ``torch.load(weights_only=True)``):
``grams [K, max_n]`` int64 ids padded with ``-1``, ``lengths [K]``, ``counts [K]``, ``scores [K]`` float64, plus
``schema``, ``vocab_size`` and the measure's name.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from geomask.errors import FormatError, UsageError

__all__ = ["LEXICON_SCHEMA", "Lexicon", "load_lexicon", "match_lexicon", "mine_lexicon", "ngram_keys"]

LEXICON_SCHEMA = 1
MEASURES = ("pmi", "frequency")


def ngram_keys(windows: Tensor, base: int) -> Tensor:
    """``[..., n]`` int64 ids → ``[...]`` int64 keys ``Σ_i (w_i + 1) base^i`` (distinct n-grams of one n differ)."""
    n = windows.size(-1)
    powers = base ** torch.arange(n, dtype=torch.long, device=windows.device)
    return ((windows.long() + 1) * powers).sum(-1)


@dataclass(frozen=True, eq=False)
class Lexicon:
    """Mined n-grams (module docstring).

    Attributes:
        grams: ``[K, max_n]`` int64 ids, ``-1`` past each n-gram's length.
        lengths: ``[K]`` int64 n of every n-gram (2 .. max_n).
        counts: ``[K]`` int64 corpus counts.
        scores: ``[K]`` float64 PMI (or counts, for ``measure="frequency"``).
        vocab_size: the id range the grams belong to.
        measure: ``"pmi"`` or ``"frequency"``.
    """

    grams: Tensor
    lengths: Tensor
    counts: Tensor
    scores: Tensor
    vocab_size: int
    measure: str = "pmi"

    def __len__(self) -> int:
        return self.grams.size(0)

    @property
    def max_n(self) -> int:
        return self.grams.size(1)

    def to_dict(self) -> dict:
        return {
            "schema": LEXICON_SCHEMA,
            "grams": self.grams,
            "lengths": self.lengths,
            "counts": self.counts,
            "scores": self.scores,
            "vocab_size": self.vocab_size,
            "measure": self.measure,
        }

    def save(self, path: str | Path) -> None:
        """Write the lexicon's tensors to ``path`` atomically (``torch.save`` of a dict of tensors and scalars)."""
        from geomask.io.atomic import atomic_write_with

        atomic_write_with(path, lambda tmp: torch.save(self.to_dict(), tmp))

    @classmethod
    def from_grams(cls, grams: list[list[int]], vocab_size: int, max_n: int = 3) -> Lexicon:
        """A lexicon of the given n-grams (lists of 2 .. max_n ids), counts and scores 0 (configs, tests)."""
        rows = torch.full((len(grams), max_n), -1, dtype=torch.long)
        for i, g in enumerate(grams):
            if not 2 <= len(g) <= max_n or any(not 0 <= int(t) < vocab_size for t in g):
                raise UsageError(f"lexicon n-gram {list(g)!r}: need 2..{max_n} ids in [0, {vocab_size})")
            rows[i, : len(g)] = torch.tensor([int(t) for t in g])
        lengths = (rows >= 0).sum(1)
        z = torch.zeros(len(grams), dtype=torch.long)
        return cls(rows, lengths, z, z.double(), int(vocab_size), "frequency")


def load_lexicon(path: str | Path) -> Lexicon:
    """A lexicon written by :meth:`Lexicon.save` (``weights_only=True``); a bad file is a :class:`FormatError`."""
    path = Path(path)
    try:
        d = torch.load(path, map_location="cpu", weights_only=True)
        if d.get("schema") != LEXICON_SCHEMA:
            raise ValueError(f"schema {d.get('schema')!r}, expected {LEXICON_SCHEMA}")
        lex = Lexicon(d["grams"], d["lengths"], d["counts"], d["scores"], int(d["vocab_size"]), str(d["measure"]))
    except FileNotFoundError:
        raise FormatError(path, "no such lexicon file") from None
    except Exception as e:  # noqa: BLE001 - any unreadable file is one line naming it
        raise FormatError(path, f"not a geomask n-gram lexicon ({type(e).__name__}: {e})") from None
    return lex


def _windows(ids: Tensor, offsets: Tensor, n: int) -> Tensor:
    """``[W, n]`` windows of ``n`` ids lying inside one record (records ``ids[offsets[r]:offsets[r+1]]``)."""
    total = ids.numel()
    if total < n:
        return ids.new_zeros((0, n))
    starts = torch.arange(total - n + 1)
    record_end = offsets[1:][torch.searchsorted(offsets[1:], starts, right=True).clamp(max=offsets.numel() - 2)]
    starts = starts[starts + n <= record_end]
    return ids[starts[:, None] + torch.arange(n)]


def mine_lexicon(
    ids: Tensor,
    offsets: Tensor | None = None,
    *,
    vocab_size: int,
    max_n: int = 3,
    top_k: int = 1000,
    min_count: int = 5,
    measure: str = "pmi",
) -> Lexicon:
    """The ``top_k`` n-grams (``n = 2 .. max_n``) of a token-id corpus by PMI or frequency (module docstring).

    Args:
        ids: ``[T]`` integer token ids of all records, concatenated.
        offsets: ``[R + 1]`` int64 record boundaries (``None``: one record); windows never cross them.
        vocab_size: ids lie in ``[0, vocab_size)``.
        max_n: the longest n-gram (2 or 3; ERNIE-Gram's English lexicon goes to 3).
        top_k: how many n-grams to keep.
        min_count: the fewest occurrences an n-gram needs.
        measure: ``"pmi"`` or ``"frequency"``.
    """
    if measure not in MEASURES:
        raise UsageError(f"lexicon measure must be one of {', '.join(MEASURES)}, got {measure!r}")
    if not 2 <= max_n <= 3:
        raise UsageError(f"lexicon max_n must be 2 or 3, got {max_n!r}")
    ids = ids.long().reshape(-1)
    if offsets is None:
        offsets = torch.tensor([0, ids.numel()], dtype=torch.long)
    base = vocab_size + 1
    uni = torch.bincount(ids, minlength=vocab_size).double()
    n1 = max(ids.numel(), 1)
    grams, lengths, counts, scores = [], [], [], []
    for n in range(2, max_n + 1):
        win = _windows(ids, offsets.long(), n)
        if win.numel() == 0:
            continue
        keys, inverse, cnt = torch.unique(ngram_keys(win, base), return_inverse=True, return_counts=True)
        first = torch.full((keys.numel(),), win.size(0), dtype=torch.long).scatter_reduce(
            0, inverse, torch.arange(win.size(0)), "amin"
        )
        g = win[first]
        keep = cnt >= min_count
        g, cnt = g[keep], cnt[keep]
        if measure == "pmi":
            s = torch.log(cnt.double() / win.size(0)) - torch.log(uni[g] / n1).sum(1)
        else:
            s = cnt.double()
        grams.append(torch.cat([g, g.new_full((g.size(0), max_n - n), -1)], 1))
        lengths.append(torch.full((g.size(0),), n, dtype=torch.long))
        counts.append(cnt.long())
        scores.append(s)
    if not grams:
        e = torch.zeros(0, dtype=torch.long)
        return Lexicon(torch.zeros((0, max_n), dtype=torch.long), e, e, e.double(), vocab_size, measure)
    g, ln, c, s = torch.cat(grams), torch.cat(lengths), torch.cat(counts), torch.cat(scores)
    # rank within each length: score desc, then count desc, then key asc (stable sorts, last key first)
    order = torch.argsort(ngram_keys(g, base + 1), stable=True)
    order = order[torch.argsort(-c[order], stable=True)]
    order = order[torch.argsort(-s[order], stable=True)]
    order = order[torch.argsort(ln[order], stable=True)]
    rank = torch.arange(order.numel()) - torch.searchsorted(ln[order], ln[order])  # rank within its length
    avail = torch.bincount(ln, minlength=max_n + 1)[2:].tolist()
    quota, left = [0] * len(avail), top_k
    while left > 0 and any(q < a for q, a in zip(quota, avail)):  # even split, spare shares to the others
        open_ = [i for i, (q, a) in enumerate(zip(quota, avail)) if q < a]
        for j, i in enumerate(open_):
            share = left // len(open_) + int(j < left % len(open_))
            quota[i] = min(avail[i], quota[i] + share)
        left = top_k - sum(quota)
    order = order[rank < torch.tensor(quota)[ln[order] - 2]]
    return Lexicon(g[order], ln[order], c[order], s[order], vocab_size, measure)


def match_lexicon(ids: Tensor, valid: Tensor, lexicon: Lexicon | tuple[Tensor, Tensor]) -> Tensor:
    """Which lexicon n-gram starts at every position of a padded batch: ``[B, L, max_n - 1]`` int64 rows.

    Column ``n - 2`` holds the lexicon row of the n-gram ``ids[b, t : t + n]`` when it is in the lexicon and all
    its tokens are ``valid`` (e.g. maskable: never padding or special tokens), else ``-1``.

    Args:
        ids: ``[B, L]`` int64 token ids.
        valid: ``[B, L]`` bool.
        lexicon: a :class:`Lexicon` or its ``(grams [K, max_n], lengths [K])``.
    """
    grams, lengths = (lexicon.grams, lexicon.lengths) if isinstance(lexicon, Lexicon) else lexicon
    b, L = ids.shape
    max_n = grams.size(1)
    out = torch.full((b, L, max_n - 1), -1, dtype=torch.long, device=ids.device)
    if grams.size(0) == 0 or L == 0:
        return out
    base = int(grams.max()) + 2 if grams.numel() else 2
    base = max(base, int(ids.max()) + 2)
    grams, lengths = grams.to(ids.device), lengths.to(ids.device)
    for n in range(2, max_n + 1):
        rows = torch.nonzero(lengths == n).squeeze(1)
        if rows.numel() == 0 or L < n:
            continue
        lex_keys = ngram_keys(grams[rows, :n], base)
        sorted_keys, perm = lex_keys.sort()
        win = ids.unfold(1, n, 1)  # [B, L - n + 1, n]
        ok = valid.unfold(1, n, 1).all(-1)
        keys = ngram_keys(win, base)
        hit = torch.isin(keys, sorted_keys) & ok
        pos = torch.searchsorted(sorted_keys, keys).clamp(max=sorted_keys.numel() - 1)
        out[:, : L - n + 1, n - 2] = torch.where(hit, rows[perm[pos]], -1)
    return out
