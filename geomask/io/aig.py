"""The in-memory And-Inverter Graph: plain integer arrays in AIGER's literal convention.

Conventions (those of AIGER 1.9):

* variable 0 is the constant FALSE; a *literal* is ``2 * var + neg`` (literal 1 is TRUE);
* variables ``1 .. I`` are the primary inputs, ``I+1 .. I+L`` the latches, ``I+L+1 .. I+L+A`` the ANDs,
  in that order with no gaps (``M = I + L + A``);
* AND ``i`` (row ``i`` of :attr:`AIG.ands`) defines variable ``I + L + 1 + i`` and its two fanin
  literals both refer to smaller variables: the ANDs are topologically sorted.

Readers that accept other numberings (ASCII AIGER allows any order) renumber into this canonical form.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["AIG"]


def _lits(a: object = ()) -> np.ndarray:
    return np.asarray(a, dtype=np.int64).reshape(-1)


@dataclass(eq=False)
class AIG:
    """An AIGER 1.9 circuit held as arrays.

    Attributes:
        num_inputs: ``I``, the number of primary inputs.
        ands: ``[A, 2]`` int64 fanin literals of each AND, topologically sorted (``rhs0 >= rhs1`` is
            not required; binary AIGER writing orders them).
        outputs: ``[O]`` int64 output literals.
        latches: ``[L, 2]`` int64 per latch: next-state literal and reset value (0, 1, or the latch's
            own literal ``2 * var`` for "uninitialised").
        bad, constraints: ``[B]``, ``[C]`` int64 literals (AIGER 1.9 sections).
        justice: list of int64 literal arrays, one per justice property.
        fairness: ``[F]`` int64 literals.
        input_names, latch_names, output_names, bad_names, constraint_names: symbol tables, one string
            per element (``""`` where the file gives no symbol).
        comments: the comment section's lines.
        name: a label, usually the design name.
    """

    num_inputs: int
    ands: np.ndarray
    outputs: np.ndarray
    latches: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), dtype=np.int64))
    bad: np.ndarray = field(default_factory=_lits)
    constraints: np.ndarray = field(default_factory=_lits)
    justice: list[np.ndarray] = field(default_factory=list)
    fairness: np.ndarray = field(default_factory=_lits)
    input_names: list[str] = field(default_factory=list)
    latch_names: list[str] = field(default_factory=list)
    output_names: list[str] = field(default_factory=list)
    bad_names: list[str] = field(default_factory=list)
    constraint_names: list[str] = field(default_factory=list)
    comments: list[str] = field(default_factory=list)
    name: str = ""

    def __post_init__(self) -> None:
        self.num_inputs = int(self.num_inputs)
        self.ands = np.asarray(self.ands, dtype=np.int64).reshape(-1, 2)
        self.outputs = _lits(self.outputs)
        self.latches = np.asarray(self.latches, dtype=np.int64).reshape(-1, 2)
        self.bad = _lits(self.bad)
        self.constraints = _lits(self.constraints)
        self.fairness = _lits(self.fairness)
        self.justice = [_lits(j) for j in self.justice]
        for attr, n in (
            ("input_names", self.num_inputs),
            ("latch_names", self.num_latches),
            ("output_names", self.num_outputs),
            ("bad_names", len(self.bad)),
            ("constraint_names", len(self.constraints)),
        ):
            names = list(getattr(self, attr))
            if len(names) < n:
                names += [""] * (n - len(names))
            setattr(self, attr, names[:n])

    # -- sizes -------------------------------------------------------------------------------------
    @property
    def num_latches(self) -> int:
        """``L``."""
        return int(self.latches.shape[0])

    @property
    def num_outputs(self) -> int:
        """``O``."""
        return int(self.outputs.shape[0])

    @property
    def num_ands(self) -> int:
        """``A``."""
        return int(self.ands.shape[0])

    @property
    def max_var(self) -> int:
        """``M = I + L + A``, the largest variable index."""
        return self.num_inputs + self.num_latches + self.num_ands

    @property
    def first_and_var(self) -> int:
        """Variable index of the first AND, ``I + L + 1``."""
        return self.num_inputs + self.num_latches + 1

    # -- comparison --------------------------------------------------------------------------------
    def same_structure(self, other: AIG) -> bool:
        """True when both AIGs have identical sections (symbols and comments ignored)."""
        if self.num_inputs != other.num_inputs or len(self.justice) != len(other.justice):
            return False
        pairs = [
            (self.ands, other.ands),
            (self.outputs, other.outputs),
            (self.latches, other.latches),
            (self.bad, other.bad),
            (self.constraints, other.constraints),
            (self.fairness, other.fairness),
            *zip(self.justice, other.justice),
        ]
        return all(a.shape == b.shape and bool(np.array_equal(a, b)) for a, b in pairs)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, AIG):
            return NotImplemented
        return (
            self.same_structure(other)
            and self.input_names == other.input_names
            and self.latch_names == other.latch_names
            and self.output_names == other.output_names
            and self.bad_names == other.bad_names
            and self.constraint_names == other.constraint_names
        )

    def __repr__(self) -> str:
        return (
            f"AIG(name={self.name!r}, inputs={self.num_inputs}, latches={self.num_latches}, "
            f"outputs={self.num_outputs}, ands={self.num_ands})"
        )
