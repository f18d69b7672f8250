"""Where datasets built on first use (the embedded corpus, generated images, scenes, text, peptides) are kept."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["CACHE_ENV", "cache_root"]

CACHE_ENV = "GEOMASK_CACHE"
"""The environment variable naming the cache folder of built datasets (default ``<repo>/out/cache``)."""


def cache_root(configured: str = "") -> Path:
    """Where built datasets live: ``configured`` (``data.corpus.cache``), else ``$GEOMASK_CACHE``, else
    ``<repo>/out/cache``."""
    if configured:
        return Path(configured)
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    return Path(__file__).resolve().parents[2] / "out" / "cache"
