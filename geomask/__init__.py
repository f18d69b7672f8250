"""geomask: masked modeling of structured data: And-Inverter Graphs and sparse grids on one core."""

from geomask.errors import FormatError, GeomaskError, ToolError

__version__ = "0.1.0"

from geomask import train  # noqa: E402  (callable: geomask.train(config))

__all__ = ["FormatError", "GeomaskError", "ToolError", "__version__", "train"]
