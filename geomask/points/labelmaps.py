"""Label maps between datasets' id spaces, kept as data files in ``geomask/points/labelmaps/*.yaml``.

Each file has ``name``, ``source_range: [lo, hi]`` (the valid input ids), ``map`` (input id → output
class), ``default`` (output for a valid id missing from ``map``, or ``null``: such an id is an error),
``ignore_index`` (the output meaning "no class") and ``class_names`` (output classes ``0..C-1``).

Maps shipped: ``nyu40_to_scannet20`` (ScanNet's NYU40 ids → the 20 benchmark classes, others -1),
``semantickitti`` (raw SemanticKITTI ids 0..259 → the official 20 learning ids, 0 = unlabeled),
``semantickitti_to_train`` (raw ids → 0..18, ignore -1) and ``semantickitti_learning_to_train``
(learning ids 0..19 → 0..18, ignore -1).
"""

from __future__ import annotations

import functools
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import yaml

from geomask.errors import UsageError

if TYPE_CHECKING:  # torch is only needed for torch inputs: listing the maps (geomask --help) stays light
    import torch

__all__ = ["LabelMap", "available_label_maps", "load_label_map", "map_labels"]

_DIR = Path(__file__).resolve().parent / "labelmaps"
_MISSING = np.iinfo(np.int64).min


@dataclass(frozen=True)
class LabelMap:
    """A lookup table from input ids ``lo..hi`` to output classes.

    Attributes:
        name: the map's name (its file stem).
        lo: the smallest valid input id.
        table: ``[hi - lo + 1]`` int64 output per input id (``_MISSING`` where the id is invalid).
        ignore_index: the output that means "no class".
        class_names: names of the output classes ``0..C-1`` (the ignore class excluded when negative).
    """

    name: str
    lo: int
    table: np.ndarray
    ignore_index: int
    class_names: tuple[str, ...]

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


def available_label_maps() -> list[str]:
    """Names of the label maps shipped with geomask."""
    return sorted(p.stem for p in _DIR.glob("*.yaml"))


@functools.cache
def load_label_map(name: str) -> LabelMap:
    """Load a shipped map by name, or a map file by path (``.yaml`` / ``.json``; JSON is YAML).

    Raises:
        UsageError: an unknown name (a ``ValueError``).
        ValueError: a file without the required keys.
    """
    path = Path(name)
    if not path.suffix:
        path = _DIR / f"{name}.yaml"
    if not path.is_file():
        raise UsageError(f"unknown label map {name!r} (known: {', '.join(available_label_maps())}, or a map file)")
    spec = yaml.safe_load(path.read_text())
    try:
        lo, hi = (int(v) for v in spec["source_range"])
        mapping = {int(k): int(v) for k, v in spec["map"].items()}
        default = spec.get("default")
        table = np.full(hi - lo + 1, _MISSING if default is None else int(default), dtype=np.int64)
        keys = np.fromiter(mapping.keys(), dtype=np.int64, count=len(mapping))
        if len(keys) and (keys.min() < lo or keys.max() > hi):
            raise ValueError(f"map keys outside source_range [{lo}, {hi}]")
        table[keys - lo] = np.fromiter(mapping.values(), dtype=np.int64, count=len(mapping))
        return LabelMap(
            name=str(spec.get("name", path.stem)),
            lo=lo,
            table=table,
            ignore_index=int(spec["ignore_index"]),
            class_names=tuple(str(c) for c in spec["class_names"]),
        )
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"{path}: not a valid label map ({type(e).__name__}: {e})") from None


def map_labels(labels: np.ndarray | torch.Tensor, label_map: str | LabelMap) -> np.ndarray | torch.Tensor:
    """Map per-point ids through a label map (one table lookup, vectorised).

    Args:
        labels: ``[N]`` integer ids (numpy or torch; the result has the same kind, dtype int64).
        label_map: a map name (see :func:`available_label_maps`), a map file path, or a :class:`LabelMap`.

    Returns:
        ``[N]`` int64 output classes, ``ignore_index`` where the map drops an id.

    Raises:
        ValueError: ids that the map does not know (e.g. learning ids given to a raw-id map); the message
            names the first few.
    """
    lm = label_map if isinstance(label_map, LabelMap) else load_label_map(str(label_map))
    torch_mod = sys.modules.get("torch")  # a torch tensor implies torch is imported
    is_torch = torch_mod is not None and isinstance(labels, torch_mod.Tensor)
    ids = labels.detach().cpu().numpy() if is_torch else np.asarray(labels)
    if not np.issubdtype(ids.dtype, np.integer):
        raise ValueError(f"labels must be integers, got dtype {ids.dtype}")
    ids = ids.astype(np.int64, copy=False) - lm.lo
    inside = (ids >= 0) & (ids < len(lm.table))
    out = np.full(ids.shape, _MISSING, dtype=np.int64)
    out[inside] = lm.table[ids[inside]]
    bad = out == _MISSING
    if bad.any():
        unknown = np.unique(ids[bad] + lm.lo)
        shown = ", ".join(str(v) for v in unknown[:8]) + (" ..." if len(unknown) > 8 else "")
        raise ValueError(
            f"label map {lm.name!r} does not know label ids {shown} ({int(bad.sum())} points); "
            "are these labels in the map's source id space?"
        )
    return torch_mod.from_numpy(out).to(labels.device) if is_torch else out
