"""geomask.train: the pretraining engine (Lightning), its config, checkpoints and the ``pretrain`` command.

``geomask.train.train(config, overrides)`` runs one pretraining run (see :mod:`geomask.train.engine`);
``geomask.pretrain(config, overrides)`` is the same call from the top-level package (the package
``geomask.train`` is a module, not a function: call ``geomask.train.train``).  Lightning is imported only when a
run starts, so importing this package (and the ``geomask`` command) stays fast.  ``available_configs()`` /
``config_descriptions()`` list the configs shipped with the package (a run takes one by name:
``geomask.pretrain("mgm_cpu")``); :func:`geomask.datasets.kinds.available_data_kinds` lists the data kinds.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from geomask.train.config import Config, ConfigError, available_configs, config_descriptions, load_config

if TYPE_CHECKING:
    from geomask.train.engine import RunConflictError, TrainResult

__all__ = [
    "Config",
    "ConfigError",
    "RunConflictError",
    "TrainResult",
    "available_configs",
    "config_descriptions",
    "load_config",
    "train",
]


def train(config: Config | Mapping[str, Any] | str | Path, overrides: Iterable[str] = (), **kwargs: Any) -> TrainResult:
    """Pretrain a method as configured; see :func:`geomask.train.engine.train` for the arguments."""
    from geomask.train.engine import train as _train

    return _train(config, overrides, **kwargs)


def __getattr__(name: str) -> Any:
    if name in ("TrainResult", "RunConflictError"):
        from geomask.train import engine

        return getattr(engine, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
