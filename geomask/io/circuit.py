"""Read any supported circuit file into an :class:`~geomask.io.aig.AIG`.

Formats, by suffix: ``.aag`` / ``.aig`` (AIGER; the header decides which), ``.bench`` (ISCAS gate-level
netlist), ``.v`` / ``.sv`` or a folder of them (Verilog RTL, through yosys).
"""

from __future__ import annotations

from pathlib import Path

from geomask.errors import FormatError
from geomask.io.aig import AIG

__all__ = ["CIRCUIT_SUFFIXES", "LATCH_MODES", "circuit_format", "read_aig"]

CIRCUIT_SUFFIXES = {".aag": "aiger", ".aig": "aiger", ".bench": "bench", ".v": "verilog", ".sv": "verilog"}
LATCH_MODES = ("keep", "cut")


def circuit_format(path: str | Path) -> str:
    """``"aiger"``, ``"bench"`` or ``"verilog"`` for a file (or a folder of Verilog)."""
    path = Path(path)
    if path.is_dir():
        if any(p.suffix.lower() in (".v", ".sv") for p in path.rglob("*")):
            return "verilog"
        raise FormatError(path, "folder holds no Verilog (.v/.sv) files")
    fmt = CIRCUIT_SUFFIXES.get(path.suffix.lower())
    if fmt is None:
        known = ", ".join(sorted(CIRCUIT_SUFFIXES))
        raise FormatError(path, f"unknown circuit format {path.suffix!r} (known: {known}, or a Verilog folder)")
    return fmt


def read_aig(path: str | Path, *, latches: str = "keep", top: str | None = None, timeout: float = 600.0) -> AIG:
    """Read a circuit as an AIG.

    Args:
        path: an AIGER, .bench or Verilog file, or a folder of Verilog files (one design).
        latches: ``"keep"`` latches as AIGER latches, or ``"cut"`` them full-scan (latch outputs become
            inputs appended after the primary inputs, next-state functions outputs appended after the
            primary outputs).
        top: Verilog top module (default: detected by yosys).
        timeout: seconds allowed for yosys.

    Raises:
        FormatError / ToolError: a bad file, or yosys rejecting the design.
    """
    if latches not in LATCH_MODES:
        raise ValueError(f"latches must be one of {LATCH_MODES}, got {latches!r}")
    path = Path(path)
    if not path.exists():
        raise FormatError(path, "no such file or folder")
    fmt = circuit_format(path)
    if fmt == "aiger":
        from geomask.io.aiger import read_aiger

        aig = read_aiger(path)
    elif fmt == "bench":
        from geomask.io.bench import read_bench

        aig = read_bench(path)
    else:
        from geomask.io.verilog import read_verilog

        aig = read_verilog(path, top=top, latches="keep", timeout=timeout)
    if latches == "cut" and aig.num_latches:
        from geomask.io.transform import cut_latches

        aig = cut_latches(aig)
    if not aig.name:
        aig.name = path.stem if path.is_file() else path.name
    return aig
