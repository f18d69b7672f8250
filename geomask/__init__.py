"""geomask: masked modeling of structured data: And-Inverter Graphs and sparse grids on one core."""

from geomask.errors import FormatError, GeomaskError, ToolError

__version__ = "0.1.0"

__all__ = ["FormatError", "GeomaskError", "ToolError", "__version__", "train"]


def __getattr__(name: str):
    # geomask.train (a callable package: geomask.train(config)) loads on first use, so that commands which
    # never train (geomask info, convert) skip its config machinery (yaml); see tests/test_light_imports.py
    if name == "train":
        import importlib

        return importlib.import_module("geomask.train")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
