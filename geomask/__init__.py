"""geomask: masked modeling of structured data: And-Inverter Graphs and sparse grids on one core."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from geomask.errors import FormatError, GeomaskError, ToolError

if TYPE_CHECKING:
    from geomask.train.engine import TrainResult

__version__ = "0.1.0"

__all__ = ["FormatError", "GeomaskError", "ToolError", "__version__", "pretrain", "train"]


def pretrain(config: Any, overrides: Any = (), **kwargs: Any) -> TrainResult:
    """Pretrain a method as configured (``geomask pretrain CONFIG --set ...`` from Python): a YAML path, a shipped
    config's name, a dict or a ``Config``, then ``SECTION.KEY=VALUE`` overrides.  See
    :func:`geomask.train.engine.train` for the keyword arguments; returns its ``TrainResult``."""
    from geomask.train import train

    return train(config, overrides, **kwargs)


def __getattr__(name: str):
    # the subpackage geomask.train loads on first use, so that commands which never train (geomask info,
    # convert) skip its config machinery (yaml); see tests/test_light_imports.py
    if name == "train":
        import importlib

        return importlib.import_module("geomask.train")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
