"""Data for pretraining: circuit, Verilog-AIG pair and synthetic graphs, in step-indexed batches.

Batches are a pure function of ``(seed, step, rank)``: :class:`StepBatchSampler` lays each data epoch out
as a seeded permutation of batches, and global batch ``step * world_size + rank`` goes to ``rank`` at
``step``.  A run resumed at step ``k`` therefore sees exactly the batches an uninterrupted run sees from
step ``k`` on, with no sampler state to store.  Graphs with Verilog fields (``verilog_emb``,
``verilog_vec``) and graphs without never share a batch: batches are cut within those two groups.

Batches are PyG ``Batch`` objects collated with ``follow_batch=["verilog_emb"]``, so a batch with Verilog
carries ``verilog_emb [sum C, D]``, ``verilog_emb_batch [sum C]`` (chunk → graph) and
``verilog_vec [B, D]``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from torch_geometric.data import Data
from torch_geometric.loader.dataloader import Collater

from geomask.circuits.graph import aig_to_graph
from geomask.errors import FormatError
from geomask.io.aig import AIG
from geomask.train.config import ConfigError, DataConfig, SyntheticConfig

__all__ = [
    "FOLLOW_BATCH",
    "GraphDataModule",
    "StepBatchSampler",
    "SyntheticAIGDataset",
    "data_kinds",
    "random_aig",
]

FOLLOW_BATCH = ["verilog_emb"]


def random_aig(rng: np.random.Generator, n_in: int, n_and: int, n_out: int) -> AIG:
    """A random combinational AIG: each AND reads two random earlier variables, with random inversions."""
    first = n_in + 1
    var = rng.integers(1, first + np.arange(n_and)[:, None], size=(n_and, 2))
    ands = 2 * var + rng.integers(0, 2, size=(n_and, 2))
    m = n_in + n_and
    low = max(1, m - n_and // 2) if n_and else 1
    outs = 2 * rng.integers(low, m + 1, size=n_out) + rng.integers(0, 2, size=n_out)
    return AIG(num_inputs=n_in, ands=ands, outputs=outs)


class SyntheticAIGDataset(torch.utils.data.Dataset):
    """Random AIG graphs, item ``i`` a pure function of ``(seed, i)``.

    Args:
        cfg: sizes (inclusive ranges) and the optional random Verilog context.
        seed: the dataset seed.
        not_nodes: the graph's NOT mode (see :func:`~geomask.circuits.graph.aig_to_graph`).

    Shapes:
        item: canonical graph ``Data``; with Verilog also ``verilog_emb [C, D]`` and ``verilog_vec [1, D]``.
    """

    def __init__(self, cfg: SyntheticConfig, seed: int, not_nodes: str = "per_edge") -> None:
        self.cfg = cfg
        self.seed = int(seed) % (1 << 63)
        self.not_nodes = not_nodes
        pick = np.random.default_rng([self.seed, 0x5EED]).random(cfg.graphs)
        self.has_verilog = (cfg.verilog_dim > 0) & (pick < cfg.verilog_fraction)

    def __len__(self) -> int:
        return self.cfg.graphs

    def __getitem__(self, i: int) -> Data:
        c = self.cfg
        rng = np.random.default_rng([self.seed, int(i)])
        n_in, n_and, n_out = (int(rng.integers(lo, hi + 1)) for lo, hi in (c.inputs, c.ands, c.outputs))
        g = aig_to_graph(random_aig(rng, n_in, n_and, n_out), self.not_nodes)
        g.name = f"synthetic_{i}"
        if self.has_verilog[i]:
            n_chunks = int(rng.integers(c.verilog_chunks[0], c.verilog_chunks[1] + 1))
            emb = torch.from_numpy(rng.standard_normal((n_chunks, c.verilog_dim)).astype(np.float32))
            g.verilog_emb = emb
            g.verilog_vec = emb.mean(0, keepdim=True)
        return g


class SyntheticObjectDataset(torch.utils.data.Dataset):
    """Object clouds ``[N, 3]`` from :func:`geomask.points.synthetic.synthetic_objects`, seeded by the run.

    Items are plain tensors, so a batch is ``[B, N, 3]``; none carries Verilog.
    """

    def __init__(self, cfg: Any, seed: int) -> None:
        from geomask.points.synthetic import synthetic_objects

        self.pos, self.labels = synthetic_objects(
            cfg.num_objects, cfg.num_points, seed=seed % (1 << 31), noise=cfg.noise
        )
        self.has_verilog = np.zeros(len(self.pos), dtype=bool)

    def __len__(self) -> int:
        return len(self.pos)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.pos[i]


class ScanTrainDataset(torch.utils.data.Dataset):
    """Scans of a ``geomask prep scans`` folder for the scene methods (MSM, CPCM); batches are ``ScenePoints``.

    Input features are the colours, or a constant 1 per point for scans without colours (set the method's
    ``in_channels`` to match); per-point labels ride along where the scan has them.
    """

    def __init__(self, root: Path) -> None:
        from geomask.datasets.store import DatasetReader

        self.reader = DatasetReader(root, kind="scan")
        self.has_verilog = np.zeros(len(self.reader), dtype=bool)

    def __len__(self) -> int:
        return len(self.reader)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        from geomask.datasets.scans import load_scan_item

        item = load_scan_item(self.reader.load(i), self.reader.root / self.reader.items[i]["shard"])
        pts = item.points.float()
        feats = item.colors.float() if item.colors is not None else torch.ones(len(pts), 1)
        return pts, feats, item.labels

    @staticmethod
    def collate(items: Sequence[tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]]) -> Any:
        from geomask.points.augment import ScenePoints

        batch = torch.cat([torch.full((len(p),), k, dtype=torch.long) for k, (p, _, _) in enumerate(items)])
        labels = None
        if all(lab is not None for _, _, lab in items):
            labels = torch.cat([lab.long().reshape(-1) for _, _, lab in items])
        return ScenePoints(torch.cat([p for p, _, _ in items]), torch.cat([f for _, f, _ in items]), batch, labels)


MANIFEST_KINDS = {"aig": "circuits", "verilog_aig_pairs": "pairs", "scan": "scans"}
"""A dataset manifest's ``kind`` → the ``data.kind`` that reads it."""


def _root_kind(root: Path) -> str:
    """``circuits``, ``pairs`` or ``scans``, from the dataset's manifest."""
    manifest = root / "manifest.json"
    try:
        kind = json.loads(manifest.read_text()).get("kind")
    except FileNotFoundError:
        msg = "not a geomask dataset (no manifest.json; make one with geomask prep circuits, pairs or scans)"
        raise FormatError(root, msg) from None
    except (json.JSONDecodeError, AttributeError, UnicodeDecodeError):
        raise FormatError(manifest, "not a valid dataset manifest") from None
    if kind not in MANIFEST_KINDS:
        raise FormatError(manifest, f"holds {kind!r} items, which pretraining does not read")
    return MANIFEST_KINDS[kind]


def _check_root(r: str) -> Path:
    root = Path(r)
    if not root.exists():
        raise ConfigError("data", "roots", f"no such folder: {r}")
    if not root.is_dir():
        raise ConfigError("data", "roots", f"{r} is a file, not a dataset folder")
    return root


def data_kinds(cfg: DataConfig) -> list[tuple[str | None, str]]:
    """``(root, kind)`` of the configured data: each root with the kind its manifest names, or ``(None, kind)``
    for generated data.  Cheap: reads manifests only.

    Raises:
        ConfigError: a root that is not a folder (``data.roots: no such folder: X``), or a dataset of another
            kind than ``data.kind`` (unless ``auto``).
        FormatError: a folder that is not a dataset.
    """
    if cfg.kind in ("synthetic", "objects"):
        return [(None, cfg.kind)]
    out: list[tuple[str | None, str]] = []
    for r in cfg.roots:
        kind = _root_kind(_check_root(r))
        if cfg.kind != "auto" and kind != cfg.kind:
            msg = f"{cfg.kind!r} does not read {r}, a {kind} dataset (auto reads each folder by its manifest)"
            raise ConfigError("data", "kind", msg)
        out.append((r, kind))
    return out


def _open_root(kind: str, root: Path, not_nodes: str) -> torch.utils.data.Dataset:
    if kind == "auto":
        kind = _root_kind(root)
    if kind == "scans":
        return ScanTrainDataset(root)
    if kind == "circuits":
        from geomask.datasets.circuits import CircuitDataset

        return CircuitDataset(root, not_nodes=not_nodes)
    from geomask.datasets.pairs import PairDataset

    return PairDataset(root, not_nodes=not_nodes)


def _has_verilog(ds: torch.utils.data.Dataset) -> np.ndarray:
    """``[len(ds)]`` bool: which items carry Verilog fields.

    A dataset's own ``has_verilog`` (a sequence, or a callable per index) wins; circuit datasets have none,
    every item of a pairs dataset has them; any other dataset is probed item by item.
    """
    from geomask.datasets.circuits import CircuitDataset
    from geomask.datasets.pairs import PairDataset

    flags = getattr(ds, "has_verilog", None)
    if callable(flags):
        flags = [flags(i) for i in range(len(ds))]
    if flags is not None:
        return np.asarray(flags, dtype=bool).reshape(len(ds))
    if isinstance(ds, (CircuitDataset, PairDataset)):
        return np.full(len(ds), isinstance(ds, PairDataset), dtype=bool)
    return np.array([hasattr(ds[i], "verilog_emb") for i in range(len(ds))], dtype=bool)


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


class GraphDataModule(pl.LightningDataModule):
    """Lightning data module over ``data.roots`` (or synthetic graphs), split into train and validation.

    Args:
        cfg: the ``data`` section.
        seed: the run's seed (synthetic graphs, the split and the batch order derive from it).
    """

    def __init__(self, cfg: DataConfig, seed: int) -> None:
        super().__init__()
        self.cfg = cfg
        self.seed = int(seed) % (1 << 63)
        self.dataset: torch.utils.data.Dataset | None = None
        self.train_groups: list[np.ndarray] = []
        self.val_groups: list[np.ndarray] = []

    def setup(self, stage: str | None = None) -> None:
        if self.dataset is not None:
            return
        c = self.cfg
        if c.kind == "synthetic":
            parts: list[torch.utils.data.Dataset] = [SyntheticAIGDataset(c.synthetic, self.seed, c.not_nodes)]
        elif c.kind == "objects":
            parts = [SyntheticObjectDataset(c.objects, self.seed)]
        else:
            parts = []
            for r in c.roots:
                parts.append(_open_root(c.kind, _check_root(r), c.not_nodes))
        self.dataset = parts[0] if len(parts) == 1 else torch.utils.data.ConcatDataset(parts)
        verilog = np.concatenate([_has_verilog(p) for p in parts])
        n = len(verilog)
        if n == 0:
            raise FormatError(c.roots[0] if c.roots else None, "the training data holds no graphs")
        perm = np.random.default_rng([self.seed, 0x7A1]).permutation(n)
        n_val = int(round(c.val_fraction * n))
        n_val = min(max(n_val, 1 if c.val_fraction > 0 else 0), n - 1)
        is_val = np.zeros(n, dtype=bool)
        is_val[perm[:n_val]] = True
        idx = np.arange(n)
        self.train_groups = [idx[~is_val & ~verilog], idx[~is_val & verilog]]
        self.val_groups = [idx[is_val & ~verilog], idx[is_val & verilog]]

    def describe(self) -> str:
        """One line: graph counts per split and how many carry Verilog."""
        tr = sum(len(g) for g in self.train_groups)
        va = sum(len(g) for g in self.val_groups)
        return (
            f"{tr + va} graphs ({len(self.train_groups[1]) + len(self.val_groups[1])} with Verilog): "
            f"{tr} train, {va} validation"
        )

    def _collate(self) -> Any:
        ds = self.dataset
        first = ds.datasets[0] if isinstance(ds, torch.utils.data.ConcatDataset) else ds
        own = getattr(first, "collate", None)
        return own if own is not None else Collater(ds, follow_batch=FOLLOW_BATCH)

    def _loader(self, batch_sampler: object) -> torch.utils.data.DataLoader:
        workers = self.cfg.num_workers
        return torch.utils.data.DataLoader(
            self.dataset,
            batch_sampler=batch_sampler,
            collate_fn=self._collate(),
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
