"""Generated circuits for the evaluation tests."""

from __future__ import annotations

import numpy as np
import pytest

from geomask.io.aig import AIG


def mixed_aig(seed: int, n_in: int, n_gates: int, window: int = 16) -> AIG:
    """Random AND/OR/XOR/MUX/MAJ logic built naively from ANDs (so ABC recipes differ in what they find)."""
    rng = np.random.default_rng(seed)
    ands: list[tuple[int, int]] = []

    def AND(a, b):
        ands.append((a, b))
        return 2 * (n_in + len(ands))

    def OR(a, b):
        return AND(a ^ 1, b ^ 1) ^ 1

    gates = [
        lambda a, b, c: AND(a, b),
        lambda a, b, c: OR(a, b),
        lambda a, b, c: OR(AND(a, b ^ 1), AND(a ^ 1, b)),
        lambda a, b, c: OR(AND(a, b), AND(a ^ 1, c)),
        lambda a, b, c: OR(OR(AND(a, b), AND(a, c)), AND(b, c)),
    ]
    sig = [2 * (i + 1) for i in range(n_in)]
    for _ in range(n_gates):
        lo = max(0, len(sig) - window)
        a, b, c = (sig[lo + int(j)] ^ int(rng.integers(0, 2)) for j in rng.choice(len(sig) - lo, 3, replace=False))
        sig.append(gates[int(rng.integers(0, 5))](a, b, c))
    return AIG(num_inputs=n_in, ands=np.array(ands, dtype=np.int64), outputs=np.array(sig[-6:], dtype=np.int64))


@pytest.fixture(name="mixed_aig")
def mixed_aig_fixture():
    """:func:`mixed_aig`, the generator of small random circuits."""
    return mixed_aig
