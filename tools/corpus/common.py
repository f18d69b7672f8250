"""Helpers shared by the corpus families: bit widths and parameter grids."""

from __future__ import annotations

__all__ = ["clog2", "grid"]


def clog2(n: int) -> int:
    """Bits to index ``n`` things (at least 1): ``ceil(log2(n))``, Verilog's ``$clog2`` but never 0."""
    return max(1, (n - 1).bit_length())


def grid(**axes: tuple) -> list[dict]:
    """Every combination of the axes' values, the first axis varying slowest: ``grid(w=(4, 8), k=(1, 2))`` is
    ``[{w: 4, k: 1}, {w: 4, k: 2}, {w: 8, k: 1}, {w: 8, k: 2}]``."""
    out: list[dict] = [{}]
    for key, vals in axes.items():
        out = [{**d, key: v} for d in out for v in vals]
    return out
