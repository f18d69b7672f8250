"""Readers, collates and groups of the built-in data kinds (registered in :mod:`geomask.datasets.kinds`).

Readers are ``open(root, cfg, seed) -> Dataset`` with ``cfg`` the training config's ``data`` section (read by
attribute: ``not_nodes``, ``synthetic``, ``objects``); collates are ``collate(items) -> batch``.  Generated data
(random AIGs, object clouds) is a pure function of the seed: item ``i`` of :class:`SyntheticAIGDataset` is a
function of ``(seed, i)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch_geometric.data import Batch, Data

from geomask.circuits.graph import aig_to_graph
from geomask.datasets.cache import CACHE_ENV, cache_root  # noqa: F401 - CACHE_ENV: re-exported
from geomask.io.aig import AIG

__all__ = [
    "FOLLOW_BATCH",
    "ScanTrainDataset",
    "SyntheticAIGDataset",
    "SyntheticObjectDataset",
    "collate_dense",
    "collate_graphs",
    "collate_scans",
    "random_aig",
]

FOLLOW_BATCH = ["verilog_emb"]
"""Graph batches carry ``verilog_emb_batch`` (chunk → graph) beside ``verilog_emb``."""


# ---------------------------------------------------------------------------------------------------
# graphs: circuits, pairs, synthetic


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
        cfg: sizes (inclusive ranges ``inputs``, ``ands``, ``outputs``), ``graphs``, and the optional random
            Verilog context (``verilog_dim``, ``verilog_chunks``, ``verilog_fraction``): ``data.synthetic``.
        seed: the dataset seed.
        not_nodes: the graph's NOT mode (see :func:`~geomask.circuits.graph.aig_to_graph`).

    Attributes:
        has_verilog: ``[graphs]`` bool, which items carry Verilog fields.

    Shapes:
        item: canonical graph ``Data``; with Verilog also ``verilog_emb [C, D]`` and ``verilog_vec [1, D]``.
    """

    def __init__(self, cfg: Any, seed: int, not_nodes: str = "per_edge") -> None:
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


def open_circuits(root: Path, cfg: Any, seed: int) -> torch.utils.data.Dataset:
    from geomask.datasets.circuits import CircuitDataset

    return CircuitDataset(root, not_nodes=cfg.not_nodes)


def open_pairs(root: Path, cfg: Any, seed: int) -> torch.utils.data.Dataset:
    from geomask.datasets.pairs import PairDataset

    return PairDataset(root, not_nodes=cfg.not_nodes)


def open_synthetic(root: None, cfg: Any, seed: int) -> SyntheticAIGDataset:
    return SyntheticAIGDataset(cfg.synthetic, seed, cfg.not_nodes)


def collate_graphs(items: Sequence[Data]) -> Batch:
    """PyG ``Batch`` with ``follow_batch=["verilog_emb"]``."""
    return Batch.from_data_list(list(items), follow_batch=FOLLOW_BATCH)


# groups of the graph kinds: 1 = carries verilog_emb / verilog_vec (never batched with graphs without)


def without_verilog(ds: Any) -> np.ndarray:
    return np.zeros(len(ds), dtype=np.int64)


def with_verilog(ds: Any) -> np.ndarray:
    return np.ones(len(ds), dtype=np.int64)


def synthetic_verilog(ds: SyntheticAIGDataset) -> np.ndarray:
    return np.asarray(ds.has_verilog, dtype=np.int64)


# ---------------------------------------------------------------------------------------------------
# point clouds: objects, scans


class SyntheticObjectDataset(torch.utils.data.Dataset):
    """Object clouds ``[N, 3]`` from :func:`geomask.points.synthetic.synthetic_objects`, seeded by the run.

    Args:
        cfg: ``num_objects``, ``num_points``, ``noise`` (``data.objects``).
        seed: the run's seed.
    """

    def __init__(self, cfg: Any, seed: int) -> None:
        from geomask.points.synthetic import synthetic_objects

        self.pos, self.labels = synthetic_objects(
            cfg.num_objects, cfg.num_points, seed=seed % (1 << 31), noise=cfg.noise
        )

    def __len__(self) -> int:
        return len(self.pos)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.pos[i]


def open_objects(root: None, cfg: Any, seed: int) -> SyntheticObjectDataset:
    return SyntheticObjectDataset(cfg.objects, seed)


def collate_dense(items: Sequence[torch.Tensor]) -> torch.Tensor:
    """Equal-shaped tensors stacked: ``[B, ...]``."""
    return torch.utils.data.default_collate(list(items))


class ScanTrainDataset(torch.utils.data.Dataset):
    """Scans of a ``geomask prep scans`` folder for the scene methods (MSM, CPCM).

    Input features are the colours, or a constant 1 per point for scans without colours (set the method's
    ``in_channels`` to match); per-point labels ride along where the scan has them.
    """

    def __init__(self, root: Path) -> None:
        from geomask.datasets.store import DatasetReader

        self.reader = DatasetReader(root, kind="scan")

    def __len__(self) -> int:
        return len(self.reader)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        from geomask.datasets.scans import load_scan_item

        item = load_scan_item(self.reader.load(i), self.reader.root / self.reader.items[i]["shard"])
        pts = item.points.float()
        feats = item.colors.float() if item.colors is not None else torch.ones(len(pts), 1)
        return pts, feats, item.labels


def open_scans(root: Path, cfg: Any, seed: int) -> ScanTrainDataset:
    return ScanTrainDataset(root)


def open_scenes(root: None, cfg: Any, seed: int) -> ScanTrainDataset:
    """Generated indoor scenes (not real scans: :mod:`geomask.datasets.generated_scenes`), built once into the cache
    on first use by ``geomask prep scans``' code and read as ``scans``.  The set is fixed by its own seed
    (``data.scenes``, else :class:`~geomask.datasets.generated_scenes.SceneSpec`), not the run's, so that runs
    share one cache folder."""
    from geomask.datasets.generated_scenes import SceneSpec, build_scenes

    return ScanTrainDataset(build_scenes(getattr(cfg, "scenes", None) or SceneSpec()))


def collate_scans(items: Sequence[tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]]) -> Any:
    """:class:`~geomask.points.augment.ScenePoints` of the scans, concatenated, with a ``batch`` vector; labels
    only when every scan has them."""
    from geomask.points.augment import ScenePoints

    batch = torch.cat([torch.full((len(p),), k, dtype=torch.long) for k, (p, _, _) in enumerate(items)])
    labels = None
    if all(lab is not None for _, _, lab in items):
        labels = torch.cat([lab.long().reshape(-1) for _, _, lab in items])
    return ScenePoints(torch.cat([p for p, _, _ in items]), torch.cat([f for _, f, _ in items]), batch, labels)


# ---------------------------------------------------------------------------------------------------
# the embedded Verilog corpus: corpus (AIG graphs), corpus_pairs (Verilog-AIG pairs), built once into a cache


def corpus_dir() -> Path:
    """The embedded corpus, ``<repo>/data/corpus`` (found from the package's path).

    Raises:
        UsageError: it is absent (an installed package ships no corpus).
    """
    import geomask
    from geomask.errors import UsageError

    path = Path(geomask.__file__).resolve().parents[1] / "data" / "corpus"
    if not (path / "verilog").is_dir():
        raise UsageError(
            f"the embedded corpus is not here ({path / 'verilog'}; it ships with a clone of the repository, not "
            "with an installed package): set data.kind=auto and data.roots to a geomask prep folder"
        )
    return path


def corpus_designs(n: int) -> list[Path]:
    """``n`` Verilog files of the embedded corpus, evenly spaced over the sorted names (all when ``n`` >= 400)."""
    files = sorted((corpus_dir() / "verilog").glob("*.v"))
    if n >= len(files):
        return files
    return [files[i * len(files) // n] for i in range(n)]


def corpus_text_encoder(spec: str) -> str:
    """The text encoder of ``corpus_pairs``: ``spec``, or the model-free ``hashing:384`` when empty."""
    return spec or "hashing:384"


def _build_once(kind: str, cfg: Any, build: Any) -> Path:
    """The cache folder of ``kind`` for the options in ``cfg`` (``data``), built by ``build(designs, out)`` on first
    use under a file lock (one builder among processes); a ``.done`` file beside it marks a complete build."""
    import hashlib
    import json
    import sys

    from geomask.errors import FormatError
    from geomask.io.atomic import build_lock

    c = cfg.corpus
    designs = corpus_designs(c.designs)
    options: dict[str, Any] = {"kind": kind, "not_nodes": cfg.not_nodes}
    if kind == "corpus_pairs":
        options |= {"recipes": c.recipes, "text_encoder": corpus_text_encoder(c.text_encoder)}
    digest = hashlib.sha256(json.dumps(options, sort_keys=True).encode())
    for f in designs:
        digest.update(f.name.encode() + b"\0" + hashlib.sha256(f.read_bytes()).digest())
    base = cache_root(c.cache)
    out = base / f"{kind}-{len(designs)}-{digest.hexdigest()[:12]}"
    done = out.with_name(out.name + ".done")
    if done.is_file():
        return out
    with build_lock(out):  # one builder among processes
        if done.is_file():  # another process built it while this one waited
            return out
        print(f"building the embedded corpus dataset into {out} (first use) ...", file=sys.stderr, flush=True)
        failures = build(designs, out)
        if failures:
            print(f"  {len(failures)} design(s) failed, e.g. {failures[0][0]}: {failures[0][1]}", file=sys.stderr)
        if not (out / "manifest.json").is_file():
            raise FormatError(out, "building the embedded corpus dataset made no dataset")
        if not failures:
            from geomask.io.atomic import atomic_write_text

            atomic_write_text(done, json.dumps(options, sort_keys=True) + "\n")
    return out


def open_corpus(root: None, cfg: Any, seed: int) -> torch.utils.data.Dataset:
    """AIG graphs of ``data.corpus.designs`` embedded designs (built once into the cache: :func:`_build_once`)."""
    from geomask.datasets.prep_circuits import prep_circuits

    def build(designs: list[Path], out: Path) -> list[tuple[str, str]]:
        report = prep_circuits(
            designs, out, recipes=0, latches="cut", not_nodes=cfg.not_nodes, jobs=cfg.corpus.jobs, progress=False
        )
        return report.failures

    return open_circuits(_build_once("corpus", cfg, build), cfg, seed)


def open_corpus_pairs(root: None, cfg: Any, seed: int) -> torch.utils.data.Dataset:
    """Verilog-AIG pairs of ``data.corpus.designs`` embedded designs, ``data.corpus.recipes`` ABC variants each,
    embedded by ``data.corpus.text_encoder`` (built once into the cache: :func:`_build_once`)."""
    from geomask.datasets.pairs import build_pairs

    c = cfg.corpus

    def build(designs: list[Path], out: Path) -> list[tuple[str, str]]:
        report = build_pairs(
            designs,
            out,
            recipes_per_design=c.recipes,
            encoder=corpus_text_encoder(c.text_encoder),
            not_nodes=cfg.not_nodes,
            jobs=c.jobs,
            progress=False,
        )
        return report.failures

    return open_pairs(_build_once("corpus_pairs", cfg, build), cfg, seed)


# ---------------------------------------------------------------------------------------------------
# images: prep images folders (images), generated shapes (shapes); batches are geomask.grids.GridBatch


def open_images(root: Path, cfg: Any, seed: int) -> torch.utils.data.Dataset:
    """A ``geomask prep images`` folder (:class:`~geomask.datasets.images.ImageFolderDataset`), normalised and
    augmented as ``data.images`` says (the defaults of :class:`~geomask.datasets.images.ImagesOptions` without it)."""
    from geomask.datasets.images import ImageFolderDataset, images_options

    return ImageFolderDataset(root, images_options(cfg))


def open_shapes(root: None, cfg: Any, seed: int) -> torch.utils.data.Dataset:
    """Generated shape images (not real images: :mod:`geomask.datasets.generated_images`), built once into the cache
    on first use by ``geomask prep images``' code and read as ``images``.  The set is fixed by its own seed
    (``data.shapes``, else :class:`~geomask.datasets.generated_images.ShapesSpec`), not the run's, so that runs
    share one cache folder."""
    from geomask.datasets.generated_images import ShapesSpec, build_shapes

    spec = getattr(cfg, "shapes", None) or ShapesSpec()
    return open_images(build_shapes(spec), cfg, seed)


def collate_images(items: Sequence[Any]) -> Any:
    """:class:`~geomask.datasets.images.ImageBatch` (a ``GridBatch``: ``values [B, C, H, W]`` float32 normalised,
    ``labels [B]``, the augmentation to apply with the step's generator)."""
    from geomask.datasets.images import collate_images as collate

    return collate(items)
