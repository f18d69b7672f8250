"""Circuit counts as ABC's ``print_stats`` prints them, from an :class:`~geomask.io.aig.AIG`.

Kept free of torch and torch_geometric (numpy only), so that ``geomask info`` and ``geomask convert`` start
in a fraction of a second.
"""

from __future__ import annotations

import numpy as np

from geomask.io.aig import AIG
from geomask.ops.dag import and_levels

__all__ = ["circuit_stats"]


def circuit_stats(aig: AIG) -> dict[str, int]:
    """``inputs, outputs, latches, ands, levels`` as ABC's ``print_stats`` counts them (``lev``: ANDs on
    the longest path to an output or latch input)."""
    lv = and_levels(aig.ands >> 1, aig.first_and_var, aig.max_var + 1)
    sinks = np.concatenate([aig.outputs, aig.latches[:, 0]]) >> 1
    return {
        "inputs": aig.num_inputs,
        "outputs": aig.num_outputs,
        "latches": aig.num_latches,
        "ands": aig.num_ands,
        "levels": int(lv[sinks].max()) if len(sinks) else 0,
    }
