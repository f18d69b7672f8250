"""Image datasets: the folders ``geomask prep images`` writes, read as training items and collated to grid batches.

Schema 1 of a dataset folder with manifest kind ``images`` (written by :mod:`geomask.datasets.prep_images`): each
item (shard) holds plain tensors

==========  ===========================  ====================================================================
``images``  ``[n, C, H, W]`` uint8       the pixels (every item of a folder has the same ``C, H, W``)
``labels``  ``[n]`` int64                an index into the item's ``classes``, or -1 (unlabelled)
==========  ===========================  ====================================================================

and meta ``source``, ``sha256``, ``format``, ``images`` (``n``), ``shape`` (``[C, H, W]``), ``classes`` (names),
``part`` / ``parts`` (a large source is cut into shards), ``pixel_sum`` / ``pixel_sumsq`` (per channel, exact
integer sums of the 0..255 values and of their squares), ``failed`` (``[file, message]`` of a folder's images that
could not be read).

**Classes.**  A folder's class list is the first item's (in key order) followed by every new name of the later
items; labels are remapped to it by name, so an ``npz`` with ``classes`` and a PNG folder with the same subfolder
names agree.

**Normalisation** (``normalize``).  ``"dataset"`` (the default): ``(x / 255 - mean_c) / std_c`` with the
per-channel mean and standard deviation of every image in the folder, computed exactly from the manifest's sums
(so any channel count works, and generated data is normalised by its own statistics); ``"imagenet"``: ImageNet's
(RGB only, for encoders pretrained elsewhere); ``"none"``: ``x / 255``.  MAE's ``norm_pix`` target normalises each
patch again, so the choice does not change that target's scale.

**Augmentation.**  Random resized crops and flips are not applied here: they draw from the step's generator, which
the method holds.  :func:`collate_images` makes an :class:`ImageBatch` that carries the configured
:class:`~geomask.datasets.image_augment.ImageAugment` (``None`` when off); ``batch.augmented(generator)`` (or
:func:`augment_batch`) applies it once and returns a batch without it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor

from geomask.datasets.image_augment import ImageAugment
from geomask.datasets.prep_images import KIND, SCHEMA_VERSION
from geomask.datasets.store import DatasetReader
from geomask.errors import FormatError, UsageError
from geomask.grids import GridBatch

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "KIND",
    "SCHEMA_VERSION",
    "ImageBatch",
    "ImageFolderDataset",
    "ImageItem",
    "ImagesOptions",
    "augment_batch",
    "collate_images",
    "images_options",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
NORMALIZE = ("dataset", "imagenet", "none")
_SHARD_CACHE = 2  # shards kept in memory per dataset (a shard is at most ~128 MiB)


@dataclass(frozen=True)
class ImagesOptions:
    """How the image kinds (``images``, ``shapes``) read and batch: the ``data.images`` config section.

    Args:
        augment: draw a random resized crop and flip per image at every training step (pretraining's default).
        crop_scale: the crop's share of the image area, ``[low, high]`` (MAE / SimMIM: 0.2 to 1).
        crop_ratio: the crop's aspect ``w / h``, ``[low, high]``.
        flip: with ``augment``, mirror half the images left-right.
        normalize: ``dataset``, ``imagenet`` or ``none`` (module docstring).
        patch_size: the batch's patch grid (``GridBatch.patch_size``); the largest divisor of it that divides
            both image sides is used for other sizes.  The image methods use their own model's patch size.
    """

    augment: bool = True
    crop_scale: tuple[float, float] = (0.2, 1.0)
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)
    flip: bool = True
    normalize: str = "dataset"
    patch_size: int = 16

    def augmentation(self) -> ImageAugment | None:
        """The :class:`ImageAugment` these options ask for, ``None`` when ``augment`` is off."""
        if not self.augment:
            return None
        return ImageAugment(self.crop_scale, self.crop_ratio, bool(self.flip))


def images_options(cfg: Any) -> ImagesOptions:
    """The options of a ``data`` config section: its ``images`` subsection (any object with
    :class:`ImagesOptions`' attributes; missing ones take the defaults), or the defaults.

    Raises:
        UsageError: a bad value (unknown ``normalize``, a crop range outside ``(0, 1]``, a patch size < 1).
    """
    section = getattr(cfg, "images", None)
    if section is None:
        return ImagesOptions()
    defaults = ImagesOptions()
    values = {k: getattr(section, k, getattr(defaults, k)) for k in ImagesOptions.__dataclass_fields__}
    for key in ("crop_scale", "crop_ratio"):  # lists from YAML, as tuples
        try:
            values[key] = tuple(values[key])
        except TypeError:
            raise UsageError(f"data.images.{key} must be two numbers [low, high], got {values[key]!r}") from None
    opts = ImagesOptions(**values)
    if opts.normalize not in NORMALIZE:
        raise UsageError(f"data.images.normalize must be one of {', '.join(NORMALIZE)}, got {opts.normalize!r}")
    if not isinstance(opts.patch_size, int) or opts.patch_size < 1:
        raise UsageError(f"data.images.patch_size must be a whole number >= 1, got {opts.patch_size!r}")
    ImageAugment(opts.crop_scale, opts.crop_ratio)  # checks the ranges
    return opts


class _Spec(NamedTuple):
    """What the collate needs besides the pixels, shared by a dataset's items."""

    mean: Tensor  # [C] in units of x / 255
    std: Tensor  # [C]
    patch_size: int
    augment: ImageAugment | None


class ImageItem(NamedTuple):
    """One image: ``image`` ``[C, H, W]`` uint8, ``label`` (-1: unlabelled), and its dataset's batching spec."""

    image: Tensor
    label: int
    spec: _Spec


@dataclass(frozen=True, eq=False)
class ImageBatch(GridBatch):
    """A :class:`~geomask.grids.GridBatch` of normalised images (``values [B, C, H, W]`` float32, ``labels [B]``
    int64, -1 unlabelled) with the augmentation the data config asks for, not yet applied.

    Args:
        augment: the :class:`~geomask.datasets.image_augment.ImageAugment` to apply with the step's generator,
            or ``None``.
    """

    augment: ImageAugment | None = field(default=None)

    def augmented(self, generator: torch.Generator) -> ImageBatch:
        """The batch after its augmentation (drawn from ``generator``), carrying none; itself when it has none."""
        if self.augment is None:
            return self
        values = self.augment(self.values, generator)
        return ImageBatch(values, _patch_for(self.patch[0], values.shape[2:]), labels=self.labels)

    def to(self, device: Any, non_blocking: bool = False) -> ImageBatch:
        """A copy on ``device`` (Lightning moves batches with ``.to``; a frozen dataclass cannot be rebuilt in
        place)."""
        labels = None if self.labels is None else self.labels.to(device, non_blocking=non_blocking)
        values = self.values.to(device, non_blocking=non_blocking)
        return ImageBatch(values, self.patch, self.temporal_patch_size, labels, augment=self.augment)

    def __repr__(self) -> str:
        aug = "none" if self.augment is None else f"crop {list(self.augment.crop_scale)}, flip {self.augment.flip}"
        return f"ImageBatch(values={list(self.values.shape)}, patch={list(self.patch)}, augment={aug})"


def augment_batch(batch: Any, generator: torch.Generator) -> Any:
    """``batch.augmented(generator)`` for an :class:`ImageBatch`; any other batch unchanged."""
    return batch.augmented(generator) if isinstance(batch, ImageBatch) else batch


def _patch_for(patch: int, spatial: Sequence[int]) -> int:
    """The largest divisor of ``patch`` that divides every side."""
    return math.gcd(int(patch), *(int(s) for s in spatial))


def collate_images(items: Sequence[ImageItem]) -> ImageBatch:
    """Stacked, normalised images: an :class:`ImageBatch` (``values [B, C, H, W]`` float32, ``labels [B]``).

    Each image is normalised by its own dataset's statistics (folders of one run may differ); the patch size and
    augmentation are the first item's (one config per run).
    """
    if not items:
        raise ValueError("collate_images needs at least one item")
    x = torch.stack([it.image for it in items]).to(torch.float32)
    mean = torch.stack([it.spec.mean for it in items])[:, :, None, None]
    std = torch.stack([it.spec.std for it in items])[:, :, None, None]
    values = (x / 255.0 - mean) / std
    labels = torch.tensor([int(it.label) for it in items], dtype=torch.int64)
    spec = items[0].spec
    return ImageBatch(values, _patch_for(spec.patch_size, values.shape[2:]), labels=labels, augment=spec.augment)


def merge_classes(items: Sequence[dict[str, Any]]) -> tuple[list[str], list[np.ndarray]]:
    """The folder's class list (first item's, then new names in item order) and, per item, the map from its own
    label ids to the folder's (``lookup[label + 1]``, so -1 stays -1)."""
    names: list[str] = []
    index: dict[str, int] = {}
    maps = []
    for rec in items:
        local = [str(c) for c in rec.get("classes") or []]
        for c in local:
            if c not in index:
                index[c] = len(names)
                names.append(c)
        maps.append(np.array([-1, *(index[c] for c in local)], dtype=np.int64))
    return names, maps


class ImageFolderDataset(torch.utils.data.Dataset):
    """The images of a ``geomask prep images`` folder, one :class:`ImageItem` per image.

    Shards load on first use (the last two stay in memory).

    Args:
        root: the dataset folder.
        options: :class:`ImagesOptions` (normalisation, patch size, augmentation); default ones when ``None``.

    Attributes:
        classes: the folder's class names (labels index them).
        shape: ``(C, H, W)`` of every image.
        mean, std: ``[C]`` float32, the normalisation in units of ``x / 255``.

    Raises:
        FormatError: not an ``images`` dataset, a schema newer than this geomask reads, no images, or items of
            different shapes.
    """

    def __init__(self, root: str | Path, options: ImagesOptions | None = None) -> None:
        self.options = options or ImagesOptions()
        self.reader = DatasetReader(root, kind=KIND, max_schema=SCHEMA_VERSION)
        items = self.reader.items
        shapes = {tuple(rec["shape"]) for rec in items}
        if not items or sum(int(rec["images"]) for rec in items) == 0:
            raise FormatError(self.reader.root, "the dataset holds no images")
        if len(shapes) != 1:
            raise FormatError(self.reader.root, f"items of different shapes {sorted(shapes)}: not one dataset")
        self.shape: tuple[int, int, int] = shapes.pop()  # type: ignore[assignment]
        self.classes, self._maps = merge_classes(items)
        counts = np.array([int(rec["images"]) for rec in items], dtype=np.int64)
        self._starts = np.concatenate([[0], np.cumsum(counts)])
        self.mean, self.std = self._normalisation(items)
        self.spec = _Spec(self.mean, self.std, self.options.patch_size, self.options.augmentation())
        self._cache: dict[int, tuple[Tensor, Tensor]] = {}

    @property
    def root(self) -> Path:
        return self.reader.root

    def _normalisation(self, items: Sequence[dict[str, Any]]) -> tuple[Tensor, Tensor]:
        c = self.shape[0]
        how = self.options.normalize
        if how == "none":
            return torch.zeros(c), torch.ones(c)
        if how == "imagenet":
            if c != 3:
                raise UsageError(f"data.images.normalize imagenet needs RGB images, {self.root} has {c} channel(s)")
            return torch.tensor(IMAGENET_MEAN), torch.tensor(IMAGENET_STD)
        if how != "dataset":
            raise UsageError(f"data.images.normalize must be one of {', '.join(NORMALIZE)}, got {how!r}")
        n = sum(int(rec["images"]) for rec in items) * self.shape[1] * self.shape[2]
        total = np.sum([np.asarray(rec["pixel_sum"], dtype=np.float64) for rec in items], axis=0)
        squares = np.sum([np.asarray(rec["pixel_sumsq"], dtype=np.float64) for rec in items], axis=0)
        mean = total / n / 255.0
        var = np.maximum(squares / n / 255.0**2 - mean**2, 0.0)
        std = np.sqrt(var)
        std = np.where(std > 1e-3, std, 1.0)  # a constant channel is centred, not blown up
        return torch.tensor(mean, dtype=torch.float32), torch.tensor(std, dtype=torch.float32)

    def __len__(self) -> int:
        return int(self._starts[-1])

    def _shard(self, k: int) -> tuple[Tensor, Tensor]:
        if k not in self._cache:
            tensors = self.reader.load(k)
            images, labels = tensors.get("images"), tensors.get("labels")
            path = self.root / self.reader.items[k]["shard"]
            want = (int(self.reader.items[k]["images"]), *self.shape)
            if not isinstance(images, Tensor) or images.dtype != torch.uint8 or tuple(images.shape) != want:
                raise FormatError(path, f"shard images are not uint8 {list(want)} as the manifest says")
            if not isinstance(labels, Tensor) or labels.shape != (want[0],):
                raise FormatError(path, f"shard labels are not [{want[0]}] as the manifest says")
            mapped = torch.from_numpy(self._maps[k][labels.numpy().astype(np.int64) + 1])
            while len(self._cache) >= _SHARD_CACHE:
                self._cache.pop(next(iter(self._cache)))
            self._cache[k] = (images, mapped)
        return self._cache[k]

    def __getitem__(self, i: int) -> ImageItem:
        i = int(i)
        if not 0 <= i < len(self):
            raise IndexError(f"image {i} of {len(self)}")
        k = int(np.searchsorted(self._starts, i, side="right")) - 1
        images, labels = self._shard(k)
        j = i - int(self._starts[k])
        return ImageItem(images[j], int(labels[j]), self.spec)

    def tensors(self) -> tuple[Tensor, Tensor]:
        """Every image and label: ``[N, C, H, W]`` uint8 and ``[N]`` int64 (for evaluations and probes)."""
        parts = [self._shard(k) for k in range(len(self.reader))]
        return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])

    @property
    def labels(self) -> Tensor:
        """``[N]`` int64 labels in the folder's class ids (-1: unlabelled)."""
        return self.tensors()[1]

    def __repr__(self) -> str:
        c, h, w = self.shape
        return f"ImageFolderDataset({self.root}, {len(self)} images of {c}x{h}x{w}, {len(self.classes)} classes)"
