"""Reusable CPU arrays for compiled passes that write megabytes of fresh output per call.

A freshly allocated array costs its first touch: ~0.8 µs per 4 KB page on this class of machine (glibc returns
large freed blocks to the OS, so every call faults its pages in again). Writing ScanNet 5 cm's kernel-map edges
(7 MB) took 1.7 ms fresh against 0.4 ms into memory touched before. :class:`ArrayPool` keeps the raw blocks and hands
out views of the free ones; a block is free when nothing but the pool refers to it — every view numpy or torch makes
of it (slices, ``torch.from_numpy``, tensors sharing that storage) holds a reference to the block, so it cannot be
handed out twice while any of them lives.
"""

from __future__ import annotations

import os
import sys
import threading
import weakref
from collections import OrderedDict

import numpy as np

__all__ = ["ArrayPool", "edge_pool"]


class ArrayPool:
    """Raw byte blocks reused for arrays of at least ``min_bytes``, at most ``max_bytes`` held in all.

    ``empty(shape, dtype)`` returns an uninitialised C-contiguous array, like ``np.empty``: a view of a free block of
    ``nbytes`` to twice that (the smallest such), or of a new block kept while the pool's total stays within
    ``max_bytes`` (free blocks are dropped, least recently used first, to make room), or a plain ``np.empty`` array.
    Thread-safe.

    Args:
        max_bytes: the most the pool holds (blocks in use included).
        min_bytes: smaller arrays are plain ``np.empty`` (the heap serves them without page faults).
    """

    def __init__(self, max_bytes: int, min_bytes: int = 1 << 18) -> None:
        self.max_bytes, self.min_bytes = int(max_bytes), int(min_bytes)
        self._blocks: dict[int, np.ndarray] = {}  # id → block
        self._sizes: OrderedDict[int, int] = OrderedDict()  # id → its bytes, least recently used first
        self._lock = threading.Lock()
        self._free_refs = self._refcount_free()
        ref = weakref.ref(self)
        os.register_at_fork(after_in_child=lambda: ArrayPool._after_fork(ref))

    @staticmethod
    def _after_fork(ref: weakref.ref) -> None:
        """A forked child gets a fresh lock (the parent's may have been held by another thread at the fork)."""
        pool = ref()
        if pool is not None:
            pool._lock = threading.Lock()

    @staticmethod
    def _refcount_free() -> int:
        """``sys.getrefcount`` of a block referred to by the pool's dict alone, measured as :meth:`_free` sees it."""
        probe: dict[int, np.ndarray] = {}
        block = np.empty(1, np.uint8)
        probe[0] = block
        del block
        return ArrayPool._count(probe, 0)

    @staticmethod
    def _count(blocks: dict[int, np.ndarray], key: int) -> int:
        return sys.getrefcount(blocks[key])

    @property
    def held_bytes(self) -> int:
        """Bytes of all blocks the pool keeps (in use or free)."""
        with self._lock:
            return sum(self._sizes.values())

    def release(self) -> int:
        """Drop the free blocks (those nothing outside the pool refers to); returns the bytes dropped."""
        with self._lock:
            free = [k for k in self._sizes if self._free(k)]
            for k in free:
                del self._blocks[k]
            return sum(self._sizes.pop(k) for k in free)

    def _free(self, key: int) -> bool:
        return self._count(self._blocks, key) == self._free_refs

    def empty(self, shape: int | tuple[int, ...], dtype) -> np.ndarray:
        """An uninitialised array of ``shape`` and ``dtype`` (see the class)."""
        dt = np.dtype(dtype)
        nbytes = int(np.prod(shape, dtype=np.int64)) * dt.itemsize
        if nbytes < self.min_bytes:
            return np.empty(shape, dt)
        with self._lock:
            best = None  # no block bound to a local name while refcounts are read
            for key, size in self._sizes.items():
                if nbytes <= size <= 2 * nbytes and (best is None or size < self._sizes[best]) and self._free(key):
                    best = key
            if best is None:
                held = sum(self._sizes.values())
                for key in [k for k in self._sizes if self._free(k)]:  # least recently used first
                    if held + nbytes <= self.max_bytes:
                        break
                    held -= self._sizes.pop(key)
                    del self._blocks[key]
                if held + nbytes > self.max_bytes:
                    return np.empty(shape, dt)
                block = np.empty(nbytes, np.uint8)
                best = id(block)
                self._blocks[best], self._sizes[best] = block, nbytes
                del block
            self._sizes.move_to_end(best)
            return self._blocks[best][:nbytes].view(dt).reshape(shape)


edge_pool = ArrayPool(max_bytes=128 << 20)
"""The pool of the kernel maps' edge arrays and join scratch (128 MB at most: a ScanNet 2 cm map needs ~6 MB)."""
