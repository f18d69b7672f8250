"""Cone classes: nodes whose layer-``l`` states are provably equal, so each layer runs once per class.

In a message-passing layer whose update depends only on a node's own state and the *multiset* of its
in-neighbours' states (GENConv with softmax aggregation is one; dropout off), two nodes with equal states
and equal in-neighbour state multisets get equal new states.  Colour refinement (1-WL along the edge
direction) finds such classes:

.. math::
    c_{l+1}(v) = \\mathrm{id}\\big(c_l(v),\\ \\{\\!\\{ c_l(u) : u \\to v \\}\\!\\}\\big),
    \\qquad c_0(v) = \\text{input row of } v

Layer ``l + 1`` is then computed on one representative per class, reading its own and its fan-ins' level-
``l`` class rows: the result is exactly the per-node computation (same values, gradients accumulated over
the members), at a fraction of the rows.  On AIGs with fan-in-only messages the saving is large: the EPFL
circuits have 1-30 % as many classes as nodes over the 7 encoder layers of MGM (regular arithmetic
circuits the fewest), and every graph of a batch shares the same classes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np
import torch
from torch import Tensor

from geomask.nn.aggregation import NeighborTable, dense_table

__all__ = ["ClassLevel", "cone_classes", "prune_classes"]

_PACK_LIMIT = 2**62


@dataclass(frozen=True, eq=False)
class ClassLevel:
    """Classes of one level.

    Args:
        inverse: ``[N]`` class of every node.
        num_classes: U.
        self_index: ``[U]`` class at the previous level of each class's members (``None`` at level 0).
        neighbors: table over previous-level classes: the in-neighbour classes of each class, previous
            ``U`` in unused slots (``None`` at level 0).
    """

    inverse: Tensor
    num_classes: int
    self_index: Tensor | None = None
    neighbors: NeighborTable | None = None


def _refine(inv: Tensor, u: int, table: Tensor, n: int) -> tuple[Tensor, int, Tensor]:
    """One colour-refinement step: ``(new inverse [N], new U, one representative node per class [U'])``."""
    pad = torch.cat([inv + 1, inv.new_zeros(1)])  # 0 marks an unused slot
    f = pad[table]
    if f.shape[1] == 2:
        f = torch.stack([torch.minimum(f[:, 0], f[:, 1]), torch.maximum(f[:, 0], f[:, 1])], 1)
    elif f.shape[1] > 2:
        f = torch.sort(f, dim=1).values
    k = f.shape[1]
    base = u + 1
    if base ** (k + 1) < _PACK_LIMIT:
        key = inv.clone()
        for j in range(k):
            key = key * base + f[:, j]
        _, new = torch.unique(key, return_inverse=True)
    else:
        _, new = torch.unique(torch.cat([inv.unsqueeze(1), f], 1), dim=0, return_inverse=True)
    num = int(new.max()) + 1 if n else 0
    rep = torch.empty(num, dtype=torch.long, device=inv.device).scatter_(0, new, torch.arange(n, device=inv.device))
    return new, num, rep


@numba.njit(cache=True, nogil=True)
def _refine_cpu(inv, table):
    """:func:`_refine` by hashing (one pass, no sort): ``(new inverse [N], representative per class [U'])``.

    Class ids number the classes in order of their first node, so they are deterministic.
    """
    n, k = table.shape
    cap = 1
    while cap < 2 * n:
        cap *= 2
    slots = np.full(cap, -1, dtype=np.int64)
    keys = np.empty((n, k + 1), dtype=np.int64)
    new = np.empty(n, dtype=np.int64)
    rep = np.empty(n, dtype=np.int64)
    kv = np.empty(k + 1, dtype=np.int64)
    num = 0
    for v in range(n):
        kv[0] = inv[v]
        for j in range(k):
            t = table[v, j]
            kv[j + 1] = inv[t] if t < n else -1
        for j in range(2, k + 1):  # the in-neighbour classes as a multiset: sorted
            x = kv[j]
            i = j - 1
            while i >= 1 and kv[i] > x:
                kv[i + 1] = kv[i]
                i -= 1
            kv[i + 1] = x
        h = np.uint64(1469598103934665603)
        for j in range(k + 1):
            h = (h ^ np.uint64(kv[j] + 1)) * np.uint64(1099511628211)
        slot = np.int64(h >> np.uint64(17)) & (cap - 1)
        while True:
            c = slots[slot]
            if c == -1:
                slots[slot] = num
                for j in range(k + 1):
                    keys[num, j] = kv[j]
                rep[num] = v
                new[v] = num
                num += 1
                break
            same = True
            for j in range(k + 1):
                if keys[c, j] != kv[j]:
                    same = False
                    break
            if same:
                new[v] = c
                break
            slot = (slot + 1) & (cap - 1)
    return new, rep[:num].copy()


def cone_classes(color0: Tensor, num_colors0: int, neighbors: NeighborTable, layers: int) -> list[ClassLevel]:
    """Class levels ``0 .. layers`` of a graph for ``layers`` stacked fan-in message-passing layers.

    Args:
        color0: ``[N]`` int64 input row of every node (``0 <= color0 < num_colors0``).
        num_colors0: number of input rows.
        neighbors: the dense node-level table of :func:`~geomask.nn.aggregation.build_neighbors`.
        layers: number of layers.

    Returns:
        ``layers + 1`` levels; level 0 is the input colouring (classes = input rows, not renumbered).
    """
    if not neighbors.dense:
        raise ValueError("cone classes need a dense neighbour table (small in-degree)")
    table = neighbors.table
    n = color0.shape[0]
    levels = [ClassLevel(color0, num_colors0)]
    inv, u = color0, num_colors0
    cpu = table.device.type == "cpu"
    table_np = table.numpy() if cpu else None
    for _ in range(layers):
        if cpu:
            new_np, rep_np = _refine_cpu(inv.numpy(), table_np)
            new, rep = torch.from_numpy(new_np), torch.from_numpy(rep_np)
            num = rep.numel()
        else:
            new, num, rep = _refine(inv, u, table, n)
        pad = torch.cat([inv, inv.new_full((1,), u)])
        levels.append(ClassLevel(new, num, inv[rep], dense_table(pad[table[rep]], u)))
        inv, u = new, num
    return levels


def prune_classes(levels: list[ClassLevel], needed: Tensor) -> list[ClassLevel]:
    """Drop the classes whose rows cannot reach a needed node's final output.

    Walking back from the last level, a class is kept when a kept class of the next level reads it (as its own
    previous state or as an in-neighbour); the rest are never computed.  Level 0 (the input rows) is kept
    whole.  The kept rows give exactly the outputs of the needed nodes.

    Args:
        levels: from :func:`cone_classes`.
        needed: ``[N]`` bool, the nodes whose last-level output is read.

    Returns:
        Levels of the same length; a dropped node's ``inverse`` entry is ``-1`` (at every level).
    """
    last = len(levels) - 1
    keep: list[Tensor | None] = [None] * (last + 1)
    need = torch.zeros(levels[last].num_classes, dtype=torch.bool, device=needed.device)
    need[levels[last].inverse[needed]] = True
    for lv_i in range(last, 0, -1):
        keep[lv_i] = need
        lv = levels[lv_i]
        rows = need.nonzero().squeeze(1)
        prev = torch.zeros(levels[lv_i - 1].num_classes + 1, dtype=torch.bool, device=needed.device)
        prev[lv.self_index[rows]] = True
        prev[lv.neighbors.table[rows].reshape(-1)] = True
        need = prev[:-1]
    out = [levels[0]]
    remap_prev: Tensor | None = None  # level 0 is kept whole: identity
    u_prev = levels[0].num_classes
    for lv_i in range(1, last + 1):
        lv, kept = levels[lv_i], keep[lv_i]
        rows = kept.nonzero().squeeze(1)
        remap = torch.full((lv.num_classes,), -1, dtype=torch.long, device=kept.device)
        remap[rows] = torch.arange(rows.numel(), device=kept.device)
        self_index, table = lv.self_index[rows], lv.neighbors.table[rows]
        if remap_prev is not None:
            self_index = remap_prev[self_index]
            table = torch.cat([remap_prev, remap_prev.new_full((1,), u_prev)])[table]
        out.append(ClassLevel(remap[lv.inverse], int(rows.numel()), self_index, dense_table(table, u_prev)))
        remap_prev = remap
        u_prev = int(rows.numel())
    return out
