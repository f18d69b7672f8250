"""Score-guided masking: HPM's loss-guided easy-to-hard masks and SelectiveMAE's score-weighted selection.

The protocol ``masker(layout, generator)`` carries the scores in the layout: a :class:`ScoredLayout` wraps any
layout with one score per row (a model's output, computed before the masker is called; the masker only reads
it, without gradient).

* **HPM** (Wang et al. 2023, ``generate_mask``): of the ``M`` masked patches, the ``round(f M)`` with the
  highest *predicted* reconstruction loss are masked, the other ``M - round(f M)`` uniformly at random among
  the rest; ``f`` grows over training, ``f = (epoch + 1) / epochs * 0.5`` (easy → hard: :func:`easy_to_hard`).
  HPM floors ``f M``; here the project's half-up rule applies (:func:`~geomask.masking.base.mask_counts`).
* **SelectiveMAE** (Wang et al. 2024): tokens are drawn with ``torch.multinomial(softmax(score), k,
  replacement=False)`` from a per-patch HOG score.  ``temperature = 1`` gives exactly that distribution
  through the Gumbel-top-k trick (the ``k`` largest ``score / τ + Gumbel`` keys are a draw without replacement
  from ``softmax(score / τ)``), batched and seeded; ``temperature = 0`` is a deterministic top-k.  To pick
  the tokens to reconstruct among masked ones, wrap a layout of the masked rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from geomask.errors import UsageError
from geomask.masking.base import Masker, check_ratio, mask_counts, rank_within_samples
from geomask.masking.layout import Layout
from geomask.masking.registry import register_masker

__all__ = ["ScoredLayout", "ScoredMasker", "easy_to_hard"]


@dataclass(frozen=True, eq=False)
class ScoredLayout(Layout):
    """Any layout plus one score per row: ``batch``, ``num_samples``, ``counts()``, ``dense_shape`` are the base's.

    Args:
        base: the row structure (a token grid, ragged rows, ...).
        scores: ``[N]`` floats (or any shape with ``N`` elements, e.g. ``[B, L]``), higher = masked first;
            finite; read without gradient.
    """

    base: Layout
    scores: Tensor

    def __post_init__(self) -> None:
        if not isinstance(self.base, Layout) or isinstance(self.base, ScoredLayout):
            raise UsageError(f"a ScoredLayout wraps a plain layout, got {type(self.base).__name__}")
        s = self.scores
        if not isinstance(s, Tensor) or not s.is_floating_point() or s.numel() != self.base.num_rows:
            got = f"{s.dtype} {tuple(s.shape)}" if isinstance(s, Tensor) else type(s).__name__
            raise UsageError(f"scores must be {self.base.num_rows} floats (one per row), got {got}")
        if not bool(torch.isfinite(s).all()):
            raise UsageError("scores must be finite (no NaN or inf)")
        object.__setattr__(self, "scores", s.detach().reshape(-1))

    @property
    def batch(self) -> Tensor:  # type: ignore[override]
        return self.base.batch

    @property
    def num_samples(self) -> int:  # type: ignore[override]
        return self.base.num_samples

    @property
    def num_rows(self) -> int:
        return self.base.num_rows

    @property
    def device(self) -> torch.device:
        return self.base.device

    @property
    def dense_shape(self) -> tuple[int, int] | None:
        return self.base.dense_shape

    def counts(self) -> Tensor:
        return self.base.counts()


def easy_to_hard(epoch: int, epochs: int, final: float = 0.5) -> float:
    """HPM's share of the masked patches chosen by predicted loss at ``epoch`` (0-based): ``(epoch + 1) / epochs
    * final``, clamped to ``[0, final]``."""
    if epochs < 1:
        raise UsageError(f"epochs must be >= 1, got {epochs}")
    return min(max((epoch + 1) / epochs, 0.0), 1.0) * check_ratio("easy_to_hard", "final", final)


@register_masker("scored")
class ScoredMasker(Masker):
    """Score-guided masking (HPM, SelectiveMAE): round(fraction * M) of the M masked rows by score, the rest random.

    Per sample ``M = round(ratio * n)`` and ``S = round(fraction * M)`` (both half up).  Draws, in this order:
    with ``temperature > 0`` one float64 Gumbel key per row, then one float64 uniform key per row.  The ``S``
    rows of largest ``score / τ + Gumbel`` (largest ``score`` for ``τ = 0``; ties: lower row first) are
    masked, then the ``M - S`` rows of smallest uniform key among the others.  Two ranking passes of
    :func:`~geomask.masking.base.rank_within_samples` for the whole batch.  Takes a :class:`ScoredLayout`.

    Args:
        ratio: masked share per sample (HPM: 0.75).
        fraction: share of the masked rows chosen by score (HPM: :func:`easy_to_hard`; SelectiveMAE: 1).
        temperature: 0 for a deterministic top-k, ``τ > 0`` to draw ∝ ``softmax(score / τ)`` without
            replacement (SelectiveMAE: 1).

    Shapes:
        ``ScoredLayout(layout, scores [N])`` → ``[N]`` bool (True = masked).
    """

    layouts = (ScoredLayout,)

    def __init__(self, ratio: float = 0.75, fraction: float = 1.0, temperature: float = 0.0) -> None:
        self.ratio = check_ratio("scored", "ratio", ratio)
        self.fraction = check_ratio("scored", "fraction", fraction)
        if isinstance(temperature, bool) or not isinstance(temperature, int | float) or not temperature >= 0:
            raise UsageError(f"scored: temperature must be a number >= 0, got {temperature!r}")
        self.temperature = float(temperature)

    def mask(self, layout: ScoredLayout, generator: torch.Generator) -> Tensor:  # type: ignore[override]
        batch, num, dev = layout.batch, layout.num_samples, layout.device
        n = batch.numel()
        if n == 0:
            return torch.zeros(0, dtype=torch.bool, device=dev)
        counts = layout.counts()
        total = mask_counts(counts, self.ratio)
        by_score = mask_counts(total, self.fraction)[batch]
        key = layout.scores.to(device=dev, dtype=torch.float64)
        if self.temperature > 0:
            u = torch.rand(n, generator=generator, dtype=torch.float64, device=generator.device).to(dev)
            gumbel = -torch.log(-torch.log(u.clamp(min=1e-300)))
            key = key / self.temperature + gumbel
        chosen = rank_within_samples(batch, -key, num) < by_score
        u = torch.rand(n, generator=generator, dtype=torch.float64, device=generator.device).to(dev)
        rest = torch.where(chosen, torch.full_like(u, -1.0), u)  # the chosen rows first, then random ones
        return rank_within_samples(batch, rest, num) < total[batch]
