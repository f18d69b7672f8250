"""Intra-op thread control for loops of small operations."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

__all__ = ["single_thread"]


@contextlib.contextmanager
def single_thread() -> Iterator[None]:
    """Run the block with one intra-op torch thread, restoring the previous count after.

    Loops of small operations (downstream heads of a few thousand FLOPs per row; sparse convolution's
    per-offset GEMMs on cache-sized chunks) lose more to thread synchronisation than they gain: measured 40x
    slower heads on a loaded 2-core machine, and a 5 cm ScanNet convolution 1.3x slower with 2 threads than
    with 1.
    """
    before = torch.get_num_threads()
    if before == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
