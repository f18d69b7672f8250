"""Read any supported circuit file into an :class:`~geomask.io.aig.AIG`, and turn command-line sources into
designs.

Formats, by suffix: ``.aag`` / ``.aig`` (AIGER; the header decides which), ``.bench`` (ISCAS gate-level
netlist), ``.v`` / ``.sv`` or a folder of them (Verilog RTL, through yosys).  :func:`expand_sources` is the
one rule every command (``info``, ``convert``, ``prep circuits``, ``prep pairs``, ``eval``) uses to turn files
and folders into designs.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from geomask.errors import FormatError, GeomaskError, UsageError
from geomask.io.aig import AIG

__all__ = [
    "CIRCUIT_SUFFIXES",
    "LATCH_MODES",
    "CircuitSource",
    "circuit_format",
    "expand_sources",
    "folder_kind",
    "read_aig",
    "single_source",
]

CIRCUIT_SUFFIXES = {".aag": "aiger", ".aig": "aiger", ".bench": "bench", ".v": "verilog", ".sv": "verilog"}
LATCH_MODES = ("keep", "cut")
_VERILOG = (".v", ".sv")
_TOP = re.compile(r"[A-Za-z_][\w$]*")
_KEY_BAD = re.compile(r"[^A-Za-z0-9_.+-]")  # the same rule as geomask.datasets.store.safe_key


@dataclass(frozen=True)
class CircuitSource:
    """One design: its unique, file-name-safe ``key``, its ``path`` (a circuit file or a Verilog folder) and
    its Verilog ``top`` module (``None``: found from the sources)."""

    key: str
    path: Path
    top: str | None = None

    @property
    def format(self) -> str:
        """``"aiger"``, ``"bench"`` or ``"verilog"``."""
        return circuit_format(self.path)


def _visible(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if not p.name.startswith("."))


def _is_circuit_file(p: Path) -> bool:
    return p.is_file() and p.suffix.lower() in CIRCUIT_SUFFIXES


def _holds_circuits(folder: Path) -> bool:
    return any(_is_circuit_file(p) or (p.is_dir() and _holds_circuits(p)) for p in _visible(folder))


def folder_kind(folder: str | Path) -> str:
    """``"verilog"`` (one Verilog design), ``"collection"`` (several designs) or ``"empty"`` (no circuit
    files); see :func:`expand_sources`."""
    kids = _visible(Path(folder))
    files = [p for p in kids if _is_circuit_file(p)]
    dirs = [p for p in kids if p.is_dir() and _holds_circuits(p)]
    if files and not dirs and all(p.suffix.lower() in _VERILOG for p in files):
        return "verilog"
    return "collection" if files or dirs else "empty"


def _split_top(source: str | Path) -> tuple[Path, str | None]:
    text = str(source)
    if "@" not in text or Path(text).exists():
        return Path(text), None
    path, _, top = text.rpartition("@")
    if not _TOP.fullmatch(top):
        raise UsageError(f"{text}: {top!r} is not a module name (PATH@TOP names a Verilog top module)")
    return Path(path), top


def expand_sources(sources: Sequence[str | Path], failures: list[tuple[str, str]] | None = None) -> list[CircuitSource]:
    """Turn command-line sources (files, folders, ``PATH@TOP``) into designs, in order.

    The rule, the same for every command:

    * a circuit file (``.aig``, ``.aag``, ``.bench``, ``.v``, ``.sv``) is one design, keyed by its stem;
    * a folder whose circuit files are all Verilog (``.v``/``.sv``) and that has no subfolder holding circuit
      files is ONE Verilog design, keyed by the folder's name: its files are read together (header files
      and subfolders of headers come along for ``include``).  Its top module is the one module no other
      instantiates; when several are, the one that instantiates others while the rest instantiate none
      (the unused ones are reported as a warning); any other case is an error listing the candidates,
      e.g. ``iscas85: 11 top modules (c17, c432, ...): name one as iscas85@TOP or pass the files
      separately`` -- never a silent choice;
    * any other folder is a collection: each circuit file directly in it is one design (so a folder mixing
      Verilog with ``.aig``/``.aag``/``.bench`` files gives one design per file, Verilog files included),
      and each subfolder is expanded by the same rule; other files and hidden entries are ignored;
    * ``PATH@TOP`` names the top module of a Verilog file or design folder (``opencores/aes_core@aes_cipher_top``).

    Keys are made file-name safe; where two designs share a name, files get their suffix appended
    (``adder_aig``, ``adder_v``) and any remaining clash a counter (``ctrl_2``).  A design given twice
    (same path and top) is kept once.

    Args:
        sources: the command-line sources.
        failures: when given, a source that cannot be expanded is appended here as ``(source, one-line
            message)`` and the other sources are still expanded (bad input never stops the rest); when
            ``None``, the first such source raises.

    Raises:
        FormatError: a source that does not exist, a file of unknown format, or a folder without circuit files.
        UsageError: ``@TOP`` on anything but a Verilog design, or a top that is not a module name.
    """
    found: list[tuple[Path, str | None]] = []

    def expand(p: Path, top: str | None, given: bool) -> None:
        if p.is_file():
            fmt = circuit_format(p)  # raises on an unknown suffix
            if top is not None and fmt != "verilog":
                raise UsageError(f"{p}@{top}: @TOP names a Verilog top module; {p} is {fmt}")
            found.append((p, top))
        elif p.is_dir():
            kind = folder_kind(p)
            if kind == "verilog":
                found.append((p, top))
            elif kind == "collection":
                if top is not None:
                    raise UsageError(f"{p}@{top}: @TOP names a Verilog design's top module; {p} is a collection")
                for kid in _visible(p):
                    if _is_circuit_file(kid) or (kid.is_dir() and _holds_circuits(kid)):
                        expand(kid, None, False)
            elif given:
                known = ", ".join(sorted(CIRCUIT_SUFFIXES))
                raise FormatError(p, f"folder holds no circuit files ({known})")
        else:
            raise FormatError(p, "no such file or folder")

    for s in sources:
        before = len(found)
        try:
            path, top = _split_top(s)
            expand(path, top, True)
        except GeomaskError as e:
            if failures is None:
                raise
            del found[before:]  # a folder that failed half-way adds none of its designs
            failures.append((str(s), str(e)))
    kept, given = [], set()
    for p, top in found:
        if (p.resolve(), top) not in given:
            given.add((p.resolve(), top))
            kept.append((p, top))
    stems = [p.name if p.is_dir() else p.stem for p, _ in kept]
    counts: dict[str, int] = defaultdict(int)
    for stem in stems:
        counts[stem] += 1
    out, seen = [], defaultdict(int)
    for (p, top), stem in zip(kept, stems):
        name = stem if counts[stem] == 1 or p.is_dir() else f"{stem}_{p.suffix.lstrip('.').lower()}"
        key = _KEY_BAD.sub("_", name).strip(".") or "design"
        seen[key] += 1
        if seen[key] > 1:
            key = f"{key}_{seen[key]}"
        out.append(CircuitSource(key, p, top))
    return out


def single_source(source: str | Path) -> CircuitSource:
    """The one design a command that reads a single circuit (``convert``) was given.

    Raises:
        FormatError: the source holds several designs (naming how many and the first few).
    """
    found = expand_sources([source])
    if len(found) != 1:
        names = ", ".join(s.key for s in found[:5]) + (", ..." if len(found) > 5 else "")
        raise FormatError(source, f"holds {len(found)} designs ({names}); name one file or design folder")
    return found[0]


def circuit_format(path: str | Path) -> str:
    """``"aiger"``, ``"bench"`` or ``"verilog"`` for a file or a Verilog design folder.

    Raises:
        FormatError: an unknown suffix, or a folder that is a collection of designs or holds none.
    """
    path = Path(path)
    if path.is_dir():
        kind = folder_kind(path)
        if kind == "verilog":
            return "verilog"
        if kind == "empty":
            raise FormatError(path, "folder holds no circuit files (.aag, .aig, .bench, .sv, .v)")
        n = len(expand_sources([path]))
        raise FormatError(path, f"folder holds {n} designs, not one circuit; name one of its files or design folders")
    fmt = CIRCUIT_SUFFIXES.get(path.suffix.lower())
    if fmt is None:
        known = ", ".join(sorted(CIRCUIT_SUFFIXES))
        raise FormatError(path, f"unknown circuit format {path.suffix!r} (known: {known}, or a Verilog folder)")
    return fmt


def read_aig(path: str | Path, *, latches: str = "keep", top: str | None = None, timeout: float = 600.0) -> AIG:
    """Read a circuit as an AIG.

    Args:
        path: an AIGER, .bench or Verilog file, or a Verilog design folder (see :func:`expand_sources`; a
            collection folder is a :class:`FormatError` saying how many designs it holds).
        latches: ``"keep"`` latches as AIGER latches, or ``"cut"`` them full-scan (latch outputs become
            inputs appended after the primary inputs, next-state functions outputs appended after the
            primary outputs).
        top: Verilog top module (default: found from the sources, see :func:`expand_sources`).
        timeout: seconds allowed for yosys.

    Returns:
        The AIG, with ``undriven`` (output bits nothing drives: Verilog only, else empty), ``warnings``
        (one line per thing the conversion changed or left out, see :func:`geomask.io.verilog.read_verilog`) and
        ``latches_cut`` (how many latches ``"cut"`` turned into inputs and outputs; 0 with ``"keep"``).

    Raises:
        FormatError / ToolError: a bad file, or yosys rejecting the design.
        UsageError: a bad ``latches`` value.
    """
    if latches not in LATCH_MODES:
        raise UsageError(f"latches must be one of {', '.join(LATCH_MODES)}, got {latches!r}")
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
    undriven, warnings = list(getattr(aig, "undriven", [])), list(getattr(aig, "warnings", []))
    cut = aig.num_latches if latches == "cut" else 0
    if cut:
        from geomask.io.transform import cut_latches

        aig = cut_latches(aig)
    aig.undriven, aig.warnings = undriven, warnings
    aig.latches_cut = cut  # what the table of `prep circuits --latches cut` shows (the AIG has none left)
    if not aig.name:
        aig.name = path.stem if path.is_file() else path.name
    return aig
