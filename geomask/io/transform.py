"""Pure array transforms on :class:`~geomask.io.aig.AIG`: port permutation and full-scan latch cutting.

Both return a new :class:`AIG` (the input is never modified) and remap literals with one lookup table
(numpy fancy indexing), never a loop over gates.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from geomask.io.aig import AIG

__all__ = ["permute_ports", "cut_latches"]


def _as_permutation(order: Sequence[int] | np.ndarray, n: int, what: str) -> np.ndarray:
    perm = np.asarray(order, dtype=np.int64).reshape(-1)
    if perm.shape[0] != n or not np.array_equal(np.sort(perm), np.arange(n, dtype=np.int64)):
        raise ValueError(f"{what} must be a permutation of 0..{n - 1}, got {perm.shape[0]} entries")
    return perm


def permute_ports(
    aig: AIG,
    input_order: Sequence[int] | np.ndarray | None = None,
    output_order: Sequence[int] | np.ndarray | None = None,
) -> AIG:
    """Reorder the primary inputs and/or outputs of an AIG.

    New input ``k`` is old input ``input_order[k]``: variables ``1 .. I`` are relabelled so that old
    variable ``1 + input_order[k]`` becomes ``1 + k``, and every literal (ANDs, outputs, latch next
    states, bad, constraints, justice, fairness) is remapped through one lookup table.  Latches and ANDs
    keep their variable numbers, so the AND rows stay topologically sorted.  New output ``k`` is old
    output ``output_order[k]``.  Symbol names follow their ports.

    Args:
        aig: the circuit.
        input_order: ``[I]`` a permutation of ``0 .. I-1`` (``None``: keep).
        output_order: ``[O]`` a permutation of ``0 .. O-1`` (``None``: keep).

    Returns:
        A new :class:`AIG` with the same function up to port order.

    Raises:
        ValueError: an order that is not a permutation of the right length.
    """
    n_in, n_out = aig.num_inputs, aig.num_outputs
    in_perm = None if input_order is None else _as_permutation(input_order, n_in, "input_order")
    out_perm = None if output_order is None else _as_permutation(output_order, n_out, "output_order")

    var_map = np.arange(aig.max_var + 1, dtype=np.int64)
    if in_perm is not None:
        var_map[1 + in_perm] = np.arange(1, n_in + 1, dtype=np.int64)
    lit_map = np.empty(2 * (aig.max_var + 1), dtype=np.int64)
    lit_map[0::2] = 2 * var_map
    lit_map[1::2] = 2 * var_map + 1

    def remap(lits: np.ndarray) -> np.ndarray:
        return lit_map[lits]

    outputs = remap(aig.outputs)
    output_names = list(aig.output_names)
    if out_perm is not None:
        outputs = outputs[out_perm]
        output_names = [output_names[i] for i in out_perm.tolist()]
    input_names = list(aig.input_names)
    if in_perm is not None:
        input_names = [input_names[i] for i in in_perm.tolist()]
    latches = aig.latches.copy()
    latches[:, 0] = remap(aig.latches[:, 0])  # resets are 0, 1 or the latch's own literal: unchanged

    return AIG(
        num_inputs=n_in,
        ands=remap(aig.ands),
        outputs=outputs,
        latches=latches,
        bad=remap(aig.bad),
        constraints=remap(aig.constraints),
        justice=[remap(j) for j in aig.justice],
        fairness=remap(aig.fairness),
        input_names=input_names,
        latch_names=list(aig.latch_names),
        output_names=output_names,
        bad_names=list(aig.bad_names),
        constraint_names=list(aig.constraint_names),
        comments=list(aig.comments),
        name=aig.name,
    )


def cut_latches(aig: AIG, next_suffix: str = "_next") -> AIG:
    """Full-scan cut: every latch becomes a pseudo primary input and a pseudo primary output.

    Latch ``j`` (variable ``I + 1 + j``) becomes input ``I + j``, appended after the original inputs;
    because latches directly follow the inputs in the canonical numbering, no variable is renumbered and
    the AND rows are unchanged.  Its next-state literal becomes output ``O + j``, appended after the
    original outputs.  The result has no latches; reset values are dropped.

    Names: the new input keeps the latch's name (``q[3]``); the new output is named
    ``<latch name><next_suffix>`` (``q[3]_next``).  An unnamed latch is named ``latch<j>`` when the AIG has
    other symbols, since ABC's ``&r`` rejects a partial symbol table.

    Args:
        aig: the circuit (``L`` latches).
        next_suffix: appended to a latch's name to name its next-state output.

    Returns:
        A combinational :class:`AIG` with ``I + L`` inputs and ``O + L`` outputs.

    Shapes:
        ``ands`` stays ``[A, 2]``; ``outputs`` becomes ``[O + L]``.
    """
    names = list(aig.latch_names)
    if any(aig.input_names) or any(aig.output_names) or any(names):
        names = [n or f"latch{j}" for j, n in enumerate(names)]
    return AIG(
        num_inputs=aig.num_inputs + aig.num_latches,
        ands=aig.ands.copy(),
        outputs=np.concatenate([aig.outputs, aig.latches[:, 0]]),
        bad=aig.bad.copy(),
        constraints=aig.constraints.copy(),
        justice=[j.copy() for j in aig.justice],
        fairness=aig.fairness.copy(),
        input_names=list(aig.input_names) + names,
        output_names=list(aig.output_names) + [f"{n}{next_suffix}" if n else "" for n in names],
        bad_names=list(aig.bad_names),
        constraint_names=list(aig.constraint_names),
        comments=list(aig.comments),
        name=aig.name,
    )
