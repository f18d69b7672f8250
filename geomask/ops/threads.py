"""Intra-op thread control for loops of small operations, and a shared pool for compiled loops that release the GIL."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor

import torch

__all__ = ["share", "single_thread"]


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


_POOLS: dict[int, ThreadPoolExecutor] = {}


def _pool(workers: int) -> ThreadPoolExecutor:
    """A process-wide thread pool of ``workers`` threads."""
    if workers not in _POOLS:
        _POOLS[workers] = ThreadPoolExecutor(workers, thread_name_prefix="geomask-worker")
    return _POOLS[workers]


def share(run: Callable[[Iterator[int]], None], items: Sequence[int], workers: int) -> None:
    """``run(iterator)`` on the caller's thread and ``workers - 1`` pool threads, all pulling ``items`` from one
    shared iterator.

    For loops whose bodies release the GIL (numba ``nogil`` functions, ``torch.mm``). Scheduling is dynamic:
    a thread the OS delays on a busy machine takes fewer items instead of holding the others up. Each item is
    processed whole by one thread, so results do not depend on which thread or how many.
    """
    if workers <= 1 or len(items) < 2:
        run(iter(items))
        return
    shared = iter(items)  # next() on a built-in iterator is atomic under the GIL
    futures = [_pool(workers - 1).submit(run, shared) for _ in range(min(workers, len(items)) - 1)]
    run(shared)
    for f in futures:
        f.result()
