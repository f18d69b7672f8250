"""ArrayPool: a block is handed out again only once nothing outside the pool refers to it."""

from __future__ import annotations

import threading

import numpy as np
import torch

from geomask.ops.array_pool import ArrayPool, edge_pool
from geomask.sparse import SparseTensor


def _ptr(a) -> int:
    return a.ctypes.data if isinstance(a, np.ndarray) else a.data_ptr()


def test_a_released_block_is_reused_and_a_held_one_is_not():
    pool = ArrayPool(max_bytes=1 << 20, min_bytes=0)
    a = pool.empty((100, 3), np.int64)
    first = _ptr(a)
    b = pool.empty(300, np.int64)  # a is alive: another block
    assert _ptr(b) != first
    a[:] = 7
    b[:] = 9
    assert (a == 7).all()
    del a
    c = pool.empty(300, np.int64)
    assert _ptr(c) == first
    assert c.shape == (300,) and c.dtype == np.int64 and c.flags.c_contiguous


def test_views_torch_tensors_and_slices_keep_the_block():
    pool = ArrayPool(max_bytes=1 << 20, min_bytes=0)
    t = torch.from_numpy(pool.empty(1000, np.int64))
    first = t.data_ptr()
    tail = t[10:]  # a tensor view: shares the storage that holds the array
    del t
    assert _ptr(pool.empty(1000, np.int64)) != first
    arr = tail.numpy()[5:]
    del tail
    assert _ptr(pool.empty(1000, np.int64)) != first
    del arr
    assert _ptr(pool.empty(1000, np.int64)) == first


def test_sizes_cap_and_small_arrays():
    pool = ArrayPool(max_bytes=64 << 10, min_bytes=1 << 10)
    small = pool.empty(16, np.int64)  # under min_bytes: a plain array, not pooled
    assert pool.held_bytes == 0 and small.nbytes == 128
    big = pool.empty(1024, np.int64)  # 8 KB
    big_ptr = _ptr(big)
    del big
    assert _ptr(pool.empty(256, np.int64)) != big_ptr  # 2 KB never takes a block over twice its size
    held = [pool.empty(4096, np.int64) for _ in range(3)]  # 32 KB each: the second no longer fits in 64 KB
    assert pool.held_bytes <= 64 << 10
    assert all(h.shape == (4096,) for h in held)
    del held
    again = pool.empty(6000, np.int64)  # 48 KB: free blocks are dropped to make room
    assert pool.held_bytes <= 64 << 10 and again.nbytes == 48_000


def test_release_drops_only_free_blocks():
    pool = ArrayPool(max_bytes=1 << 20, min_bytes=0)
    held = pool.empty(1000, np.int64)
    pool.empty(2000, np.int64)  # released at once
    assert pool.held_bytes == 24_000
    assert pool.release() == 16_000
    assert pool.held_bytes == 8_000 and held.shape == (1000,)


def test_threads_never_share_a_block():
    pool = ArrayPool(max_bytes=8 << 20, min_bytes=0)
    bad: list[int] = []

    def work(tid: int) -> None:
        keep = []
        for i in range(300):
            a = pool.empty(512 + (i % 7) * 64, np.int32)
            a[:] = tid
            keep.append(a)
            if len(keep) > 3:
                old = keep.pop(0)
                if not (old == tid).all():
                    bad.append(tid)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert bad == []


def test_kernel_maps_alive_keep_their_edges_while_others_are_built():
    g = torch.Generator().manual_seed(0)
    maps, copies = [], []
    for size in (30, 24, 30, 40):
        grid = torch.unique(torch.randint(0, size, (6000, 3), generator=g), dim=0)
        coords = torch.cat([torch.zeros(len(grid), 1, dtype=torch.long), grid], 1)
        km = SparseTensor(coords, torch.zeros(len(grid), 1)).kernel_map(3)
        maps.append(km)
        copies.append([t.clone() for t in km.edges()])
    assert edge_pool.held_bytes > 4 * (256 << 10)  # the maps' arrays came from the pool
    for km, (ei, et) in zip(maps, copies):
        now = km.edges()
        assert torch.equal(now[0], ei) and torch.equal(now[1], et)
