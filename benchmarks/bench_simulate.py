"""Bit-parallel AIG simulation: geomask's numba kernel against aigverse (mockturtle) in the same run.

aigverse simulates exhaustively (one truth table of ``2 ** I`` bits per node), so the side-by-side runs
use small-input circuits: EPFL designs with at most 16 inputs plus a random 16-input AIG; both sides
produce every node's full truth table, and the output tables are checked bit for bit.  EPFL ``hyp``
(214k ANDs, 24,801 levels) is then simulated with random patterns and reported in patterns/s.

    .venv/bin/python benchmarks/bench_simulate.py [--data ../shared/data]

``--data`` defaults to ``$GEOMASK_SHARED_DATA`` (``../shared/data`` beside the checkout without it); EPFL files
that are missing are skipped one line each, the random AIG always runs.

Prints timings, then ``ratio simulate_exhaustive vs aigverse: X`` (geometric mean over circuits;
X > 1: geomask is faster).
"""

from __future__ import annotations

import argparse
import math
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from geomask.circuits.simulate import _exhaustive_patterns, random_patterns, simulate
from geomask.io.aig import AIG
from geomask.io.aiger import read_aiger, write_aiger

# ../shared/data beside the checkout, or $GEOMASK_SHARED_DATA
SHARED = Path(os.environ.get("GEOMASK_SHARED_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data")


def _best(fn, min_time: float = 0.5, repeat: int = 3) -> float:
    fn()  # warm up (numba compile, caches)
    best = math.inf
    for _ in range(repeat):
        n, t0 = 0, time.perf_counter()
        while True:
            fn()
            n += 1
            dt = time.perf_counter() - t0
            if dt >= min_time / repeat:
                break
        best = min(best, dt / n)
    return best


def _random_aig(n_in: int, n_and: int, seed: int) -> AIG:
    rng = np.random.default_rng(seed)
    first = n_in + 1
    # fanins drawn from a window of recent variables keep the functions non-trivial
    lo = np.maximum(1, np.arange(n_and) + first - 200)
    v0 = rng.integers(lo, np.arange(n_and) + first)
    v1 = rng.integers(lo, np.arange(n_and) + first)
    ands = np.stack([2 * v0 + rng.integers(0, 2, n_and), 2 * v1 + rng.integers(0, 2, n_and)], axis=1)
    return AIG(n_in, ands, outputs=2 * np.arange(first + n_and - 16, first + n_and))


def _geomask_outputs(aig: AIG) -> np.ndarray:
    values = simulate(aig, _exhaustive_patterns(aig.num_inputs))
    out = values[aig.outputs >> 1]
    out[aig.outputs & 1 == 1] ^= np.uint64(0xFFFF_FFFF_FFFF_FFFF)
    return out


def _check_outputs(aig: AIG, tables) -> None:
    ours = _geomask_outputs(aig)
    n = 2**aig.num_inputs
    for k, tt in enumerate(tables):
        bits = np.array([c == "1" for c in tt.to_binary()[::-1]], dtype=np.uint8)  # to_binary: MSB first
        ref = np.packbits(np.pad(bits, (0, 64 * ours.shape[1] - n)), bitorder="little").view("<u8")
        if n < 64:
            ours[k, 0] &= np.uint64((1 << n) - 1)
        if not np.array_equal(ours[k], ref):
            raise SystemExit(f"output {k} differs from aigverse")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=SHARED, help="the shared data folder (holds circuits/epfl)")
    ap.add_argument("--patterns", type=int, default=4096, help="random patterns per hyp run")
    args = ap.parse_args()
    epfl = args.data / "circuits" / "epfl"
    try:
        from aigverse.algorithms import simulate as av_simulate
        from aigverse.algorithms import simulate_nodes as av_simulate_nodes
        from aigverse.io import read_aiger_into_aig
    except ImportError:
        av_simulate = None
        print("aigverse skipped: not installed (pip install aigverse); reporting geomask alone")

    ratios = []
    with tempfile.TemporaryDirectory() as tmp:
        cases = [(name, epfl / f"{name}.aig") for name in ("ctrl", "dec", "cavlc", "int2float")]
        synth = Path(tmp) / "rand16.aig"
        write_aiger(_random_aig(16, 20000, seed=0), synth)
        cases.append(("random 16-in 20k-and", synth))
        for name, path in cases:
            if not path.exists():
                print(f"{name} skipped: {path} not found (pass --data or set GEOMASK_SHARED_DATA)")
                continue
            aig = read_aiger(path)
            t_geo = _best(lambda aig=aig: simulate(aig, _exhaustive_patterns(aig.num_inputs)))
            line = f"{name:22s} I={aig.num_inputs:3d} A={aig.num_ands:6d}  geomask {t_geo * 1e3:8.3f} ms"
            if av_simulate is not None:
                ntk = read_aiger_into_aig(str(path))
                _check_outputs(aig, av_simulate(ntk))
                t_av = _best(lambda ntk=ntk: av_simulate_nodes(ntk))
                ratios.append(t_av / t_geo)
                line += f"  aigverse simulate_nodes {t_av * 1e3:8.3f} ms  ({t_av / t_geo:.2f}x)"
            print(line)

    hyp = epfl / "hyp.aig"
    if hyp.exists():
        aig = read_aiger(hyp)
        pats = random_patterns(aig.num_inputs, args.patterns, seed=0)
        t = _best(lambda: simulate(aig, pats))
        print(
            f"hyp (A={aig.num_ands}, {args.patterns} random patterns): {t * 1e3:.1f} ms, "
            f"{args.patterns / t:.3g} patterns/s, {args.patterns * aig.num_ands / t:.3g} AND-evaluations/s"
        )
    else:
        print(f"hyp skipped: {hyp} not found (pass --data or set GEOMASK_SHARED_DATA)")
    if ratios:
        gmean = math.exp(sum(math.log(r) for r in ratios) / len(ratios))
        print(f"ratio simulate_exhaustive vs aigverse: {gmean:.2f}")


if __name__ == "__main__":
    main()
