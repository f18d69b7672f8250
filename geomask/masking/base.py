"""The masker protocol: ``masker(layout, generator) -> BoolTensor [N]``, True = masked (MAE / Hugging Face).

A masker is a plain, picklable object holding only its configuration: all randomness comes from the
``torch.Generator`` it is given, so the same generator state gives the same mask, in a collate function
(CPU) or inside a model.  Random numbers are drawn on the generator's device and the mask is returned on
the layout's device, so a CPU generator gives the same mask whatever device the layout is on.

Budgets are exact per sample; the one rounding rule is :func:`mask_counts`.  Everything is batched over
samples (one sort for the whole batch, never a Python loop over samples or rows).

Subclasses implement :meth:`Masker.mask` for the layouts in :attr:`Masker.layouts` and are registered by name
with :func:`~geomask.masking.registry.register_masker`.
"""

from __future__ import annotations

import inspect
import numbers
from abc import ABC, abstractmethod
from typing import Any, ClassVar

import torch
from torch import Tensor

from geomask.errors import UsageError
from geomask.masking.layout import Layout, RowLayout

__all__ = ["Masker", "check_int", "check_ratio", "mask_counts", "rank_within_samples", "resolve_generator"]


def resolve_generator(generator: torch.Generator | None) -> torch.Generator:
    """The given generator, or a fresh one seeded from the operating system (never the global RNG)."""
    if generator is not None:
        return generator
    g = torch.Generator()
    g.seed()
    return g


def mask_counts(n: Tensor, ratio: float | Tensor) -> Tensor:
    """How many rows of each sample are masked: ``clamp(floor(ratio * n + 0.5), 0, n)``, ``[B]`` int64.

    **The rounding rule of every masker** (round half up, e.g. 0.5 * 5 → 3, 0.75 * 64 → 48).  A fixed
    ``float`` ratio is applied in float64; a per-sample ratio tensor (drawn from the generator, as Point-BERT's
    block masker does) in its own dtype.  ``n`` is the count of whatever the masker chooses among: rows,
    patches, voxel cells or region boxes.

    Args:
        n: ``[B]`` integer candidates per sample.
        ratio: a float in ``[0, 1]`` or a ``[B]`` float tensor.
    """
    if isinstance(ratio, Tensor):
        raw = torch.floor(ratio * n.to(ratio.dtype) + 0.5)
    else:
        raw = torch.floor(n.to(torch.float64) * ratio + 0.5)
    return torch.minimum(raw.to(torch.long).clamp(min=0), n.long())


def rank_within_samples(batch: Tensor, key: Tensor, num_samples: int) -> Tensor:
    """Rank of every row among the rows of its sample by ascending ``key`` (ties: lower row first), ``[N]``.

    Two stable sorts for the whole batch: by key, then by sample.
    """
    n = batch.numel()
    by_key = torch.argsort(key, stable=True)
    order = by_key[torch.argsort(batch[by_key], stable=True)]
    counts = torch.bincount(batch, minlength=num_samples)
    start = torch.cumsum(counts, 0) - counts
    rank = torch.empty_like(order)
    rank[order] = torch.arange(n, device=batch.device) - start[batch[order]]
    return rank


def check_ratio(owner: str, name: str, value: Any) -> float:
    """``value`` as a float in ``[0, 1]``, else a one-line :class:`~geomask.errors.UsageError`."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0.0 <= float(value) <= 1.0:
        raise UsageError(f"{owner}: mask {name} must be a number in [0, 1], got {value!r}")
    return float(value)


def check_int(owner: str, name: str, value: Any, low: int = 1) -> int:
    """``value`` as an int ``>= low``, else a one-line :class:`~geomask.errors.UsageError`."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        raise UsageError(f"{owner}: {name} must be an integer >= {low}, got {value!r}")
    return int(value)


class Masker(ABC):
    """Base class of maskers: ``masker(layout, generator) -> [N]`` bool, True = masked.

    Subclasses implement :meth:`mask`; :attr:`layouts` lists the layout types they take.  Calling a masker
    with a bare tensor instead of a layout is the pre-layout entry point (:meth:`sample`), kept so that
    ``masker(batch, gen, num_graphs)`` / ``masker(coords, gen, num_scenes)`` keep working.
    """

    name: ClassVar[str] = ""  # set by register_masker
    layouts: ClassVar[tuple[type[Layout], ...]] = (Layout,)

    def __call__(self, layout: Layout | Tensor, generator: torch.Generator | None = None, *args, **kwargs) -> Tensor:
        """The mask ``[N]`` bool over the layout's rows (on its device), True = masked.

        Args:
            layout: a :class:`~geomask.masking.layout.Layout` the masker takes (a bare tensor: :meth:`sample`).
            generator: source of randomness (a fresh OS-seeded one when ``None``).
        """
        if isinstance(layout, Tensor):
            return self.sample(layout, generator, *args, **kwargs)
        if args or kwargs:
            raise TypeError("masker(layout, generator) takes no further arguments")
        if not isinstance(layout, self.layouts):
            want = " or ".join(t.__name__ for t in self.layouts)
            raise UsageError(f"masker {self.name or type(self).__name__!r} takes a {want}, got {type(layout).__name__}")
        return self.mask(layout, resolve_generator(generator))

    @abstractmethod
    def mask(self, layout: Layout, generator: torch.Generator) -> Tensor:
        """The mask ``[N]`` bool (True = masked) for a layout of an accepted type; draws from ``generator``."""

    def sample(self, batch: Tensor, generator: torch.Generator | None = None, num_graphs: int | None = None) -> Tensor:
        """Pre-layout entry point: ``self(RowLayout(batch, num_graphs), generator)``, ``[N]`` bool."""
        return self(RowLayout(batch, num_graphs), generator)

    def config(self) -> dict[str, Any]:
        """``{"name": ..., option: value, ...}``, which :func:`~geomask.masking.registry.build_masker` rebuilds."""
        params = [p for p in inspect.signature(type(self).__init__).parameters if p != "self"]
        return {"name": self.name, **{p: getattr(self, p) for p in params if getattr(self, p, None) is not None}}

    def __repr__(self) -> str:
        opts = ", ".join(f"{k}={v!r}" for k, v in self.config().items() if k != "name")
        return f"{type(self).__name__}({opts})"
