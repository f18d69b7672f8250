"""Layouts: the row structure a masker sees.  A masker returns one bool per row, ``[N]``, True = masked.

Every layout has ``N`` rows that belong to ``B`` samples and answers the same questions:

* ``batch`` ``[N]`` int64 -- the sample of every row (rows of a sample need not be contiguous);
* ``num_samples`` -- ``B`` (samples without rows are allowed where the layout can express them);
* ``counts()`` ``[B]`` int64 -- rows per sample;
* ``dense_shape`` -- ``(B, n)`` when the rows are, by construction, ``B`` equal runs of ``n`` rows in
  row-major order (a ``[B, n]`` tensor flattened), else ``None``;
* ``device`` -- where ``batch`` and the returned mask live.

The four kinds:

* :class:`RowLayout` ``(batch [N], num_samples)`` -- ragged rows: nodes of graphs, points, tokens;
* :class:`GridLayout` ``(coords [N, 1 + D], num_samples, stride)`` -- occupied sites of a sparse grid,
  batch index first;
* :class:`TokenGridLayout` ``(num_samples, shape, device)`` -- every cell of a dense per-sample grid
  (``(H, W)`` image patches, ``(T, H, W)``, ``(L,)``), rows ``[B, *shape]`` flattened row-major;
* :class:`PatchLayout` ``(centers [B, G, C])`` or ``(centers [N, C], batch [N], num_samples)`` -- patches
  (point groups) with a centre; ``[B, G, C]`` rows are ``b * G + g``.

Layouts only hold tensors the caller already has; building one costs at most one ``max`` (for ``B``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import Tensor

from geomask.errors import UsageError

__all__ = ["GridLayout", "Layout", "PatchLayout", "RowLayout", "TokenGridLayout", "as_layout"]


def _int_tensor(name: str, t: object, dims: int) -> Tensor:
    if not isinstance(t, Tensor):
        raise UsageError(f"{name} must be a tensor, got {type(t).__name__}")
    if t.dim() != dims or t.is_floating_point() or t.is_complex() or t.dtype == torch.bool:
        want = "[N]" if dims == 1 else "[N, 1 + D]"
        raise UsageError(f"{name} must be an integer {want} tensor, got {t.dtype} {tuple(t.shape)}")
    return t


def _num_samples(batch: Tensor, num_samples: int | None) -> int:
    if num_samples is None:
        return int(batch.max()) + 1 if batch.numel() else 0
    if int(num_samples) < 0:
        raise UsageError(f"num_samples must be >= 0, got {num_samples}")
    return int(num_samples)


class Layout:
    """Base of the layouts (see the module docstring for the shared interface)."""

    batch: Tensor
    num_samples: int

    @property
    def num_rows(self) -> int:
        return self.batch.numel()

    @property
    def device(self) -> torch.device:
        return self.batch.device

    @property
    def dense_shape(self) -> tuple[int, int] | None:
        return None

    def counts(self) -> Tensor:
        """Rows per sample, ``[B]`` int64."""
        return torch.bincount(self.batch, minlength=self.num_samples)


@dataclass(frozen=True, eq=False)
class RowLayout(Layout):
    """Ragged rows: row ``i`` belongs to sample ``batch[i]`` (a PyG ``Batch.batch``, any order).

    Args:
        batch: ``[N]`` integer sample index of every row.
        num_samples: ``B`` (``batch.max() + 1``, 0 for no rows, when ``None``); larger values add empty samples.
    """

    batch: Tensor
    num_samples: int | None = None  # type: ignore[assignment]

    def __post_init__(self) -> None:
        b = _int_tensor("batch", self.batch, 1).long()
        object.__setattr__(self, "batch", b)
        object.__setattr__(self, "num_samples", _num_samples(b, self.num_samples))


@dataclass(frozen=True, eq=False)
class GridLayout(Layout):
    """Occupied sites of a sparse grid: integer coordinates with the batch index first.

    Args:
        coords: ``[N, 1 + D]`` integer coordinates ``(b, x_1 .. x_D)``.
        num_samples: ``B`` (``coords[:, 0].max() + 1`` when ``None``).
        stride: tensor stride; coordinates are multiples of it (MinkowskiEngine's convention), so a cube of
            ``c`` sites spans ``c * stride`` coordinate units.
    """

    coords: Tensor
    num_samples: int | None = None  # type: ignore[assignment]
    stride: int = 1
    batch: Tensor = field(init=False, repr=False)

    def __post_init__(self) -> None:
        c = _int_tensor("coords", self.coords, 2)
        if c.size(1) < 2:
            raise UsageError(f"coords must be [N, 1 + D] with D >= 1, got {tuple(c.shape)}")
        if int(self.stride) < 1:
            raise UsageError(f"stride must be >= 1, got {self.stride}")
        b = c[:, 0].long()
        object.__setattr__(self, "batch", b)
        object.__setattr__(self, "num_samples", _num_samples(b, self.num_samples))
        object.__setattr__(self, "stride", int(self.stride))

    @property
    def dim(self) -> int:
        """``D``."""
        return self.coords.size(1) - 1


@dataclass(frozen=True, eq=False)
class TokenGridLayout(Layout):
    """Every cell of a dense per-sample grid (image patches ``(H, W)``, video ``(T, H, W)``, a sequence ``(L,)``).

    Rows are ordered ``(b, i_1, .., i_D)`` row-major, i.e. a ``[B, *shape]`` tensor flattened.

    Args:
        num_samples: ``B``.
        shape: the grid of one sample, e.g. ``(14, 14)``.
        device: where the mask is returned.
    """

    num_samples: int  # type: ignore[assignment]
    shape: tuple[int, ...]
    device: torch.device = torch.device("cpu")  # type: ignore[assignment]

    def __post_init__(self) -> None:
        shape = (self.shape,) if isinstance(self.shape, int) else tuple(int(s) for s in self.shape)
        if not shape or min(shape) < 0 or int(self.num_samples) < 0:
            raise UsageError(
                f"need num_samples >= 0 and a non-empty shape of sizes >= 0, got {self.num_samples}, {shape}"
            )
        object.__setattr__(self, "shape", shape)
        object.__setattr__(self, "num_samples", int(self.num_samples))
        object.__setattr__(self, "device", torch.device(self.device))

    @property
    def per_sample(self) -> int:
        return math.prod(self.shape)

    @property
    def num_rows(self) -> int:
        return self.num_samples * self.per_sample

    @property
    def batch(self) -> Tensor:
        return torch.arange(self.num_samples, device=self.device).repeat_interleave(self.per_sample)

    @property
    def dense_shape(self) -> tuple[int, int]:
        return (self.num_samples, self.per_sample)

    def counts(self) -> Tensor:
        return torch.full((self.num_samples,), self.per_sample, dtype=torch.long, device=self.device)

    def to_grid(self) -> GridLayout:
        """The same rows as a fully occupied sparse grid (coordinates ``(b, i_1 .. i_D)``, same row order)."""
        idx = torch.arange(self.num_rows, device=self.device)
        cols = []
        for size in reversed(self.shape):  # loop over the D axes, not over rows
            cols.append(idx % max(size, 1))
            idx = torch.div(idx, max(size, 1), rounding_mode="floor")
        cols.append(idx)
        return GridLayout(torch.stack(cols[::-1], 1), self.num_samples)


@dataclass(frozen=True, eq=False)
class PatchLayout(Layout):
    """Patches with a centre: ``[B, G, C]`` (G patches per sample) or flattened ``[N, C]`` with a batch vector.

    Rows of the ``[B, G, C]`` form are ordered ``b * G + g`` (the mask reshapes to ``[B, G]``).

    Args:
        centers: ``[B, G, C]``, or ``[N, C]`` together with ``batch``.
        batch: ``[N]`` sample of every flattened centre (only with ``[N, C]`` centres).
        num_samples: ``B`` for flattened centres (``batch.max() + 1`` when ``None``).
    """

    centers: Tensor
    batch: Tensor | None = None  # type: ignore[assignment]
    num_samples: int | None = None  # type: ignore[assignment]

    def __post_init__(self) -> None:
        c = self.centers
        if not isinstance(c, Tensor) or c.dim() not in (2, 3) or not c.is_floating_point():
            got = f"{c.dtype} {tuple(c.shape)}" if isinstance(c, Tensor) else type(c).__name__
            raise UsageError(f"centers must be float [B, G, C] or [N, C], got {got}")
        if c.dim() == 3:
            if self.batch is not None:
                raise UsageError("give a batch vector only with flattened [N, C] centers")
            b, g = c.shape[:2]
            object.__setattr__(self, "batch", torch.arange(b, device=c.device).repeat_interleave(g))
            object.__setattr__(self, "num_samples", b)
            return
        if self.batch is None:
            raise UsageError("flattened [N, C] centers need a batch vector")
        b = _int_tensor("batch", self.batch, 1).long()
        if b.numel() != c.size(0):
            raise UsageError(f"batch has {b.numel()} rows but centers has {c.size(0)}")
        object.__setattr__(self, "batch", b)
        object.__setattr__(self, "num_samples", _num_samples(b, self.num_samples))

    @property
    def flat_centers(self) -> Tensor:
        """``[N, C]``."""
        return self.centers.reshape(-1, self.centers.size(-1))

    @property
    def dense_shape(self) -> tuple[int, int] | None:
        return (self.centers.size(0), self.centers.size(1)) if self.centers.dim() == 3 else None

    def counts(self) -> Tensor:
        if self.centers.dim() == 3:
            b, g = self.centers.shape[:2]
            return torch.full((b,), g, dtype=torch.long, device=self.centers.device)
        return super().counts()


def as_layout(x: Layout | Tensor, num_samples: int | None = None) -> Layout:
    """A layout as-is, or the usual one for a bare tensor: ``[N]`` → :class:`RowLayout`,
    ``[N, 1 + D]`` integer → :class:`GridLayout`, ``[B, G, C]`` float → :class:`PatchLayout`."""
    if isinstance(x, Layout):
        return x
    if isinstance(x, Tensor):
        if x.dim() == 1:
            return RowLayout(x, num_samples)
        if x.dim() == 2 and not x.is_floating_point():
            return GridLayout(x, num_samples)
        if x.dim() == 3 and x.is_floating_point():
            return PatchLayout(x)
        raise UsageError(f"no layout for a {x.dtype} tensor of shape {tuple(x.shape)}")
    raise UsageError(f"a masker needs a layout, got {type(x).__name__}")
