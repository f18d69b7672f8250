"""geomask.methods: one file per method; :func:`build_method` builds them by name."""

from geomask.methods.registry import METHODS, build_method

__all__ = ["METHODS", "build_method"]
