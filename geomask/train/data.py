"""Data for pretraining: any registered data kind, in step-indexed batches.

What the data is comes from the data-kind registry (:mod:`geomask.datasets.kinds`): ``data.kind`` names a kind
(or ``auto``: each folder of ``data.roots`` by the kind its manifest names), whose reader makes the dataset,
whose collate makes the batches and whose groups say which items may share a batch.  Nothing here knows a
modality.

Batches are a pure function of ``(seed, step, rank)``: :class:`StepBatchSampler` lays each data epoch out
as a seeded permutation of batches, and global batch ``step * world_size + rank`` goes to ``rank`` at
``step``.  A run resumed at step ``k`` therefore sees exactly the batches an uninterrupted run sees from
step ``k`` on, with no sampler state to store.  Items of different groups (graphs with Verilog fields and
graphs without) never share a batch: batches are cut within groups.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import torch

from geomask.datasets.kinds import AUTO, DataKind, data_kind_choices, get_data_kind, kind_for_manifest
from geomask.datasets.readers import FOLLOW_BATCH, SyntheticAIGDataset, random_aig
from geomask.errors import FormatError, UsageError
from geomask.train.config import ConfigError, DataConfig

__all__ = [
    "FOLLOW_BATCH",
    "DataModule",
    "GraphDataModule",
    "StepBatchSampler",
    "SyntheticAIGDataset",
    "data_kinds",
    "random_aig",
]


def _kind(name: str) -> DataKind:
    try:
        return get_data_kind(name)
    except UsageError:
        msg = f"must be one of {', '.join(data_kind_choices())}, got {name!r}"
        raise ConfigError("data", "kind", msg) from None


def _or(names: Sequence[str]) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"


def _root_kind(root: Path) -> str:
    """The registered data kind that reads ``root``, from its manifest's ``kind``."""
    manifest = root / "manifest.json"
    try:
        kind = json.loads(manifest.read_text()).get("kind")
    except FileNotFoundError:
        prep = [n for n in data_kind_choices()[1:] if get_data_kind(n).reads_folders]
        msg = f"not a geomask dataset (no manifest.json; make one with geomask prep {_or(prep)})"
        raise FormatError(root, msg) from None
    except (json.JSONDecodeError, AttributeError, UnicodeDecodeError):
        raise FormatError(manifest, "not a valid dataset manifest") from None
    name = kind_for_manifest(kind) if isinstance(kind, str) else None
    if name is None:
        raise FormatError(manifest, f"holds {kind!r} items, which pretraining does not read")
    return name


def _check_root(r: str) -> Path:
    root = Path(r)
    if not root.exists():
        raise ConfigError("data", "roots", f"no such folder: {r}")
    if not root.is_dir():
        raise ConfigError("data", "roots", f"{r} is a file, not a dataset folder")
    return root


def data_kinds(cfg: DataConfig) -> list[tuple[str | None, str]]:
    """``(root, kind)`` of the configured data: each root with the kind its manifest names, or ``(None, kind)``
    for a kind generated from the config.  Cheap: reads manifests only.

    Raises:
        ConfigError: an unknown ``data.kind``, a root that is not a folder (``data.roots: no such folder: X``),
            a dataset of another kind than ``data.kind`` (unless ``auto``), or folders of kinds whose batches
            differ (they cannot share a run).
        FormatError: a folder that is not a dataset.
    """
    if cfg.kind != AUTO and not _kind(cfg.kind).reads_folders:
        return [(None, cfg.kind)]
    if not cfg.roots:
        raise ConfigError("data", "roots", f"empty, but data.kind {cfg.kind!r} needs at least one dataset folder")
    out: list[tuple[str | None, str]] = []
    for r in cfg.roots:
        kind = _root_kind(_check_root(r))
        if cfg.kind != AUTO and kind != cfg.kind:
            msg = f"{cfg.kind!r} does not read {r}, a {kind} dataset (auto reads each folder by its manifest)"
            raise ConfigError("data", "kind", msg)
        out.append((r, kind))
    for r, kind in out[1:]:
        first, k0 = out[0]
        if get_data_kind(kind).collate != get_data_kind(k0).collate:
            msg = f"{first} is a {k0} dataset and {r} a {kind} dataset: their batches differ, so one run reads one"
            raise ConfigError("data", "roots", msg)
    return out


class StepBatchSampler(torch.utils.data.Sampler[list[int]]):
    """An endless, step-indexed sampler of index batches, each drawn within one group.

    Data epoch ``e`` is a seeded function of ``(seed, e)``: every group is permuted and cut into batches
    of ``batch_size`` (the last one of a group may be short), and the batches are shuffled together.
    Rank ``r`` of ``world_size`` takes global batch ``step * world_size + r`` at each step, from
    ``start_step`` on.

    Args:
        groups: index arrays, one per group (e.g. graphs with and without Verilog); empty ones are skipped.
        batch_size: graphs per batch and per rank.
        seed: the shuffling seed.
        rank, world_size: this process and the number of processes.
        start_step: the first step to yield (the restored global step when resuming).
    """

    def __init__(
        self,
        groups: Sequence[np.ndarray],
        batch_size: int,
        seed: int,
        rank: int = 0,
        world_size: int = 1,
        start_step: int = 0,
    ) -> None:
        self.groups = [np.asarray(g, dtype=np.int64) for g in groups if len(g)]
        if not self.groups:
            raise ValueError("StepBatchSampler needs at least one non-empty group")
        self.batch_size = int(batch_size)
        self.seed = int(seed) % (1 << 63)
        self.rank, self.world_size, self.start_step = int(rank), int(world_size), int(start_step)
        self.batches_per_epoch = sum(-(-len(g) // self.batch_size) for g in self.groups)
        self._cache: tuple[int, list[np.ndarray]] | None = None

    def epoch_batches(self, epoch: int) -> list[np.ndarray]:
        """The batches of data epoch ``epoch``, in order."""
        if self._cache is not None and self._cache[0] == epoch:
            return self._cache[1]
        rng = np.random.default_rng([self.seed, int(epoch)])
        chunks: list[np.ndarray] = []
        for g in self.groups:
            perm = g[rng.permutation(len(g))]
            chunks.extend(np.split(perm, np.arange(self.batch_size, len(perm), self.batch_size)))
        batches = [chunks[j] for j in rng.permutation(len(chunks))]
        self._cache = (epoch, batches)
        return batches

    def batch_at(self, step: int) -> list[int]:
        """The index batch this rank trains on at ``step``."""
        epoch, j = divmod(int(step) * self.world_size + self.rank, self.batches_per_epoch)
        return self.epoch_batches(epoch)[j].tolist()

    def __iter__(self) -> Iterator[list[int]]:
        step = self.start_step
        while True:
            yield self.batch_at(step)
            step += 1


def _fixed_batches(groups: Sequence[np.ndarray], batch_size: int) -> list[list[int]]:
    """Validation batches: each group in order, cut into ``batch_size`` pieces."""
    out = []
    for g in groups:
        out.extend(g[i : i + batch_size].tolist() for i in range(0, len(g), batch_size))
    return out


class DataModule(pl.LightningDataModule):
    """Lightning data module over the configured data kind, split into train and validation.

    Args:
        cfg: the ``data`` section.
        seed: the run's seed (generated data, the split and the batch order derive from it).

    Attributes:
        dataset: every item, train and validation (after :meth:`setup`).
        kind: the data kind (the first folder's, under ``auto``).
        train_groups, val_groups: item indices per group (one per group the kinds declare, in group order;
            some may be empty).
    """

    def __init__(self, cfg: DataConfig, seed: int) -> None:
        super().__init__()
        self.cfg = cfg
        self.seed = int(seed) % (1 << 63)
        self.dataset: torch.utils.data.Dataset | None = None
        self.kind: DataKind | None = None
        self.train_groups: list[np.ndarray] = []
        self.val_groups: list[np.ndarray] = []
        self._keys: list[int] = []
        self._group_names: dict[int, str] = {}

    def setup(self, stage: str | None = None) -> None:
        if self.dataset is not None:
            return
        c = self.cfg
        kinds = [(None if r is None else Path(r), get_data_kind(k)) for r, k in data_kinds(c)]
        parts = [kind.open_dataset(root, c, self.seed) for root, kind in kinds]
        self.kind = kinds[0][1]
        self.dataset = parts[0] if len(parts) == 1 else torch.utils.data.ConcatDataset(parts)
        group = np.concatenate([kind.group_ids(part) for (_, kind), part in zip(kinds, parts)])
        names: dict[int, str] = {}
        for _, kind in kinds:
            names.update(kind.group_names)
        self._group_names = names
        n = len(group)
        if n == 0:
            raise FormatError(c.roots[0] if c.roots else None, f"the training data holds no {self.kind.items}")
        perm = np.random.default_rng([self.seed, 0x7A1]).permutation(n)
        n_val = int(round(c.val_fraction * n))
        n_val = min(max(n_val, 1 if c.val_fraction > 0 else 0), n - 1)
        is_val = np.zeros(n, dtype=bool)
        is_val[perm[:n_val]] = True
        idx = np.arange(n)
        keys = sorted(set(names) | set(np.unique(group).tolist()))
        self.train_groups = [idx[~is_val & (group == k)] for k in keys]
        self.val_groups = [idx[is_val & (group == k)] for k in keys]
        self._keys = keys

    def describe(self) -> str:
        """One line: item counts per split, and per named group (``10 graphs (6 with Verilog): 8 train, 2
        validation``)."""
        tr = sum(len(g) for g in self.train_groups)
        va = sum(len(g) for g in self.val_groups)
        counts = [
            f"{len(t) + len(v)} {self._group_names[k]}"
            for k, t, v in zip(self._keys, self.train_groups, self.val_groups)
            if self._group_names.get(k)
        ]
        noun = self.kind.items if self.kind is not None else "items"
        extra = f" ({', '.join(counts)})" if counts else ""
        return f"{tr + va} {noun}{extra}: {tr} train, {va} validation"

    def _loader(self, batch_sampler: object) -> torch.utils.data.DataLoader:
        workers = self.cfg.num_workers
        return torch.utils.data.DataLoader(
            self.dataset,
            batch_sampler=batch_sampler,
            collate_fn=self.kind.collate_fn(self.cfg),
            num_workers=workers,
            persistent_workers=workers > 0,
        )

    def train_dataloader(self) -> torch.utils.data.DataLoader:
        t = self.trainer
        sampler = StepBatchSampler(
            self.train_groups,
            self.cfg.batch_size,
            self.seed,
            rank=t.global_rank if t is not None else 0,
            world_size=t.world_size if t is not None else 1,
            start_step=t.global_step if t is not None else 0,
        )
        return self._loader(sampler)

    def val_dataloader(self) -> torch.utils.data.DataLoader | list:
        batches = _fixed_batches(self.val_groups, self.cfg.batch_size)
        return self._loader(batches) if batches else []

    @property
    def has_val(self) -> bool:
        return any(len(g) for g in self.val_groups)


GraphDataModule = DataModule
"""The former name (it reads every data kind, not only graphs)."""
