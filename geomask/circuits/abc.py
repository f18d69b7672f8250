"""Run Berkeley ABC (Debian's ``berkeley-abc``) on circuit files: statistics, recipes, QoR labels, CEC.

Every call is one ``berkeley-abc -c SCRIPT`` subprocess.  ABC often exits with status 0 after an error,
so its output is scanned for error lines (``Error``, ``Cannot``, ``failed``, ``unknown command``, ...)
and those raise :class:`~geomask.errors.ToolError` carrying ABC's own message.

The Debian build (ABC 1.01) reads only *binary* AIGER: ASCII ``.aag`` files (and AIGER files with
another suffix) are converted to a temporary binary ``.aig`` with :mod:`geomask.io.aiger` first.
Other formats ABC knows by suffix (``.blif``, ``.bench``, ``.v``, ...) are passed through unchanged.

The QoR label of a recipe is exactly what ``read F; strash; RECIPE; print_stats`` reports: the AND count
(``and =``) and the number of logic levels (``lev =``).
"""

from __future__ import annotations

import contextlib
import math
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from geomask.circuits.recipes import recipe_steps
from geomask.errors import FormatError, GeomaskError, ToolError, UsageError
from geomask.io.aiger import read_aiger, write_aiger
from geomask.progress import progress_bar

__all__ = ["QorLabel", "abc_binary", "abc_cec", "abc_stats", "label_chunk", "label_recipes", "run_abc", "run_recipe"]

_TOOL = "abc"
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_STATS = re.compile(
    r"i/o\s*=\s*(\d+)\s*/\s*(\d+)\s+lat\s*=\s*(\d+)\s+and\s*=\s*(\d+)\s+lev\s*=\s*(\d+)",
)
_ERROR = re.compile(
    r"^\s*(error\b|cannot\b|\*\* cmd error)|has failed|unknown command|wrong input file|requires a known file"
    r"|assertion .* failed|does not exist",
    re.IGNORECASE,
)

Recipe = str | Sequence[int | str] | np.ndarray


def abc_binary() -> str:
    """Path of the ``berkeley-abc`` executable.

    Raises:
        ToolError: it is not on ``PATH``.
    """
    exe = shutil.which("berkeley-abc")
    if exe is None:
        raise ToolError(None, _TOOL, "berkeley-abc not found on PATH; install it with: apt-get install berkeley-abc")
    return exe


# -- running ABC -----------------------------------------------------------------------------------


def _quote(path: str | Path) -> str:
    text = str(path)
    if '"' in text:
        raise FormatError(text, "ABC cannot read a path containing a double quote; rename or copy the file")
    return f'"{text}"'


def _diagnostics(text: str) -> list[str]:
    """Output lines that are neither the command-line echo, blank, nor a statistics line."""
    return [
        line.strip()
        for line in text.splitlines()
        if line.strip() and not line.startswith("ABC command line") and not _STATS.search(line)
    ]


def run_abc(path: str | Path, script: str, timeout: float, cwd: str) -> str:
    """Run ``berkeley-abc -c script`` in ``cwd`` (an empty temporary folder, so no stray ``abc.rc`` is
    sourced); return stdout + stderr with colour codes removed.  ``path`` names the design in errors.

    Raises:
        ToolError: a timeout, a non-zero exit, or an error line in the output.
    """
    try:
        proc = subprocess.run(
            [abc_binary(), "-c", script],
            capture_output=True,
            text=True,
            errors="replace",
            timeout=timeout,
            cwd=cwd,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise ToolError(path, _TOOL, f"ABC timed out after {timeout:g} s") from None
    out = _ANSI.sub("", (proc.stdout or "") + "\n" + (proc.stderr or ""))
    errors = [line for line in _diagnostics(out) if _ERROR.search(line)]
    if errors or proc.returncode != 0:
        lines = errors or _diagnostics(out)[-2:] or [f"exit status {proc.returncode}"]
        raise ToolError(path, _TOOL, " / ".join(dict.fromkeys(lines)))
    return out


def _stats(out: str) -> list[tuple[int, ...]]:
    """Every ``print_stats`` line as ``(inputs, outputs, latches, ands, levels)``."""
    return [tuple(int(g) for g in m.groups()) for m in _STATS.finditer(out)]


def _readable(path: str | Path, tmp: str, k: int) -> Path:
    """A path ABC can ``read``: AIGER that is not already binary ``.aig`` is converted into ``tmp``.

    Raises:
        FormatError: the file cannot be opened, or an ``.aag`` / AIGER file is malformed.
    """
    p = Path(path)
    try:
        with p.open("rb") as f:
            head = f.read(4)
    except OSError as e:
        raise FormatError(p, f"cannot read: {e.strerror or e}") from None
    suffix = p.suffix.lower()
    if suffix == ".aag" or head == b"aag " or (head == b"aig " and suffix != ".aig"):
        conv = Path(tmp) / f"{k}.aig"
        write_aiger(read_aiger(p), conv, binary=True)
        return conv
    return p.resolve()


@contextlib.contextmanager
def _abc_readable(paths: Sequence[str | Path]) -> Iterator[tuple[str, list[Path]]]:
    """Yield a temporary folder and :func:`_readable` paths (converted copies live in the folder)."""
    with tempfile.TemporaryDirectory(prefix="geomask-abc-") as tmp:
        yield tmp, [_readable(p, tmp, k) for k, p in enumerate(paths)]


def _steps(recipe: Recipe) -> list[str]:
    return recipe_steps(recipe)


def _script(path: Path, steps: list[str], per_step: bool) -> str:
    if per_step:
        body = "".join(f"{s}; print_stats; " for s in steps)
        return f"read {_quote(path)}; strash; {body}".rstrip("; ")
    return "; ".join([f"read {_quote(path)}", "strash", *steps, "print_stats"])


# -- public API ------------------------------------------------------------------------------------


def abc_stats(path: str | Path, timeout: float = 60.0) -> dict[str, int]:
    """Statistics of a circuit as ``read F; print_stats`` reports them.

    Returns:
        ``{"inputs", "outputs", "latches", "ands", "levels"}``.

    Raises:
        ToolError: ABC fails, times out, or prints no AIG statistics (a non-AIG network).
    """
    with _abc_readable([path]) as (tmp, (p,)):
        out = run_abc(path, f"read {_quote(p)}; print_stats", timeout, tmp)
    found = _stats(out)
    if not found:
        raise ToolError(path, _TOOL, f"no AIG statistics in ABC output: {' / '.join(_diagnostics(out)) or '(empty)'}")
    return dict(zip(("inputs", "outputs", "latches", "ands", "levels"), found[-1]))


def run_recipe(
    path: str | Path, recipe: Recipe, per_step: bool = False, timeout: float = 60.0
) -> tuple[int, int] | list[tuple[int, int]]:
    """Apply a synthesis recipe and report the result's size and depth.

    Runs exactly ``berkeley-abc -c "read F; strash; RECIPE; print_stats"`` (with ``per_step``, a
    ``print_stats`` after every step instead).

    Args:
        path: the circuit file.
        recipe: an ABC script fragment (``"rewrite; balance"``, ``;``-separated commands passed to ABC as
            written), or a sequence of op ids (see :data:`~geomask.circuits.recipes.OPS`), op names
            (``["balance", "rewrite -z"]``) or ABC commands, mixed freely
            (:func:`~geomask.circuits.recipes.recipe_steps`).
        per_step: report after every step.
        timeout: seconds before ABC is killed.

    Returns:
        ``(ands, levels)`` after the recipe, or with ``per_step`` a list with one ``(ands, levels)``
        per step (the last equals the plain result).

    Raises:
        ToolError: ABC fails or times out.
        UsageError: a recipe step that is neither an op id ``0 .. 6`` nor a command string.
    """
    steps = _steps(recipe)
    with _abc_readable([path]) as (tmp, (p,)):
        out = run_abc(path, _script(p, steps, per_step), timeout, tmp)
    found = [(s[3], s[4]) for s in _stats(out)]
    want = len(steps) if per_step else 1
    if len(found) != want:
        raise ToolError(path, _TOOL, f"expected {want} print_stats lines from ABC, got {len(found)}")
    return found if per_step else found[0]


def abc_cec(a: str | Path, b: str | Path, timeout: float = 60.0) -> bool:
    """Combinational equivalence of two circuits with ``&r A; &cec B`` (latches, if any, are cut:
    inputs, outputs and latches are matched by position).

    Returns:
        True when ABC prints "Networks are equivalent"; False when it finds them different (including
        different numbers of inputs or outputs).

    Raises:
        ToolError: ABC fails, times out, or gives no verdict.
    """
    with _abc_readable([a, b]) as (tmp, (pa, pb)):
        out = run_abc(a, f"&r {_quote(pa)}; &cec {_quote(pb)}", timeout, tmp)
    low = out.lower()
    if "networks are equivalent" in low:
        return True
    if "not equivalent" in low or "different number of" in low:
        return False
    raise ToolError(a, _TOOL, f"no equivalence verdict from ABC: {' / '.join(_diagnostics(out)) or '(empty)'}")


@dataclass(frozen=True, eq=False)
class QorLabel:
    """The QoR label of one (design, recipe) pair.

    Attributes:
        design: index into the ``designs`` given to :func:`label_recipes`.
        recipe: index into its ``recipes``.
        ands: AND count after the recipe (``-1`` on error).
        levels: logic levels after the recipe (``-1`` on error).
        steps: ``[S, 2]`` int64 ``(ands, levels)`` after each step when ``per_step``, else ``None``.
        error: the failure (``ToolError`` for a timeout or ABC error, ``FormatError`` for an unreadable
            design) when there is no label, else ``None``.
        seconds: this pair's share of its ABC process's wall time (the process's time over its recipes; 0 when
            the design could not be read).
    """

    design: int
    recipe: int
    ands: int
    levels: int
    steps: np.ndarray | None = None
    error: GeomaskError | None = None
    seconds: float = 0.0


#: What :func:`label_chunk` returns per recipe: ``(recipe, ands, levels, steps or None, error or None, seconds)``.
ChunkRow = tuple[int, int, int, "np.ndarray | None", "str | None", float]


def label_chunk(
    data: bytes,
    suffix: str,
    shown: str,
    chunk: list[tuple[int, list[str]]],
    per_step: bool,
    timeout: float,
) -> list[ChunkRow]:
    """One ABC process running several recipes on one design, re-reading the design before each.

    A pure function of its arguments, so that it runs alike on a thread, in another process or on another
    machine (a Ray worker): the design travels as bytes (written to a private temporary folder as
    ``design<suffix>``) and the result is plain data, with an error as ABC's one-line message.

    Args:
        data: the design file's content (binary AIGER, or a format ABC reads by ``suffix``).
        suffix: the file suffix ABC should see (``.aig``, ``.blif``, ``.bench``, ...).
        shown: the design's name in error messages.
        chunk: ``(recipe index, steps)`` pairs.
        per_step: report ``(ands, levels)`` after every step.
        timeout: seconds per recipe (the process gets ``len(chunk) * timeout``).

    Returns:
        One :data:`ChunkRow` per pair of ``chunk``, in its order; ``ands = levels = -1`` with the error message;
        ``seconds``: the process's wall time over the pairs.
    """
    with tempfile.TemporaryDirectory(prefix="geomask-abc-") as tmp:
        path = Path(tmp) / f"design{suffix}"
        path.write_bytes(data)
        script = "; ".join(_script(path, steps, per_step) for _, steps in chunk)
        start = time.perf_counter()
        try:
            found = [(s[3], s[4]) for s in _stats(run_abc(shown, script, timeout * len(chunk), tmp))]
        except ToolError as e:
            share = (time.perf_counter() - start) / len(chunk)
            return [(r, -1, -1, None, e.message, share) for r, _ in chunk]
        share = (time.perf_counter() - start) / len(chunk)
    rows: list[ChunkRow] = []
    pos = 0
    for r, steps in chunk:
        n = len(steps) if per_step else 1
        got = found[pos : pos + n]
        pos += n
        if len(got) != n:
            rows.append((r, -1, -1, None, f"missing print_stats output for recipe {r}", share))
            continue
        arr = np.asarray(got, dtype=np.int64).reshape(n, 2)
        rows.append((r, int(arr[-1, 0]), int(arr[-1, 1]), arr if per_step else None, None, share))
    return rows


def _labels(d: int, shown: str | Path, rows: list[ChunkRow]) -> list[QorLabel]:
    """:func:`label_chunk` rows as :class:`QorLabel` s of design ``d`` (errors as :class:`ToolError`)."""
    return [
        QorLabel(d, r, ands, lev, steps, None if err is None else ToolError(shown, _TOOL, err), sec)
        for r, ands, lev, steps, err, sec in rows
    ]


def label_recipes(
    designs: Sequence[str | Path],
    recipes: Sequence[Recipe] | np.ndarray,
    jobs: int = 1,
    timeout: float = 60.0,
    per_step: bool = False,
    progress: bool = True,
    recipes_per_process: int | None = None,
    executor: Any = None,
) -> Iterator[QorLabel]:
    """QoR labels of every (design, recipe) pair, yielded as they finish (in no fixed order).

    Each ABC process runs a chunk of recipes on one design as one plain script
    (``read F; strash; R1; print_stats; read F; strash; R2; print_stats; ...``), which saves ABC's start-up
    per recipe (about 3x faster than one process per pair on small designs, measured); chunks run on
    ``jobs`` threads.  A failed or timed-out chunk yields a label with ``error`` set for each of its
    pairs, and the rest completes.

    Args:
        designs: circuit files.
        recipes: ``[R, S]`` op ids, or a list of op-id sequences / ABC script fragments.
        jobs: concurrent ABC processes.
        timeout: seconds allowed per recipe (a chunk of ``k`` recipes gets ``k * timeout``).
        per_step: also report ``(ands, levels)`` after every step (:attr:`QorLabel.steps`).
        progress: show a progress bar on stderr (plain lines when it is not a terminal).
        recipes_per_process: chunk size; by default large enough to amortise start-up yet small enough
            to give every job work (at most 32).
        executor: where the chunks run instead of ``jobs`` threads: an object with
            ``submit(fn, *args) -> concurrent.futures.Future``, ``share(value)`` (a handle ``submit`` resolves
            to ``value``: the design bytes are shared once, not sent with every chunk) and ``workers`` (its
            parallelism, which then sizes the chunks), e.g. :func:`geomask.datasets.executors.make_executor`.
            Every chunk is :func:`label_chunk`, so the labels do not depend on where it ran.  The caller
            owns (and shuts down) the executor.

    Returns:
        An iterator of :class:`QorLabel`, one per pair, ``len(designs) * len(recipes)`` in all.  Arguments
        are checked (``UsageError``) and ABC located (``ToolError``) when called, before iteration.
    """
    if jobs < 1:
        raise UsageError(f"jobs must be >= 1, got {jobs}")
    if timeout <= 0:
        raise UsageError(f"timeout must be positive, got {timeout}")
    steps = [_steps(r) for r in recipes]
    n_rec, n_des = len(steps), len(designs)
    if n_rec == 0 or n_des == 0:
        return iter(())
    if recipes_per_process is None:
        per_design = max(1, math.ceil(4 * jobs / n_des))  # about 4 chunks per job overall
        recipes_per_process = min(32, max(1, math.ceil(n_rec / per_design)))
    if recipes_per_process < 1:
        raise UsageError(f"recipes_per_process must be >= 1, got {recipes_per_process}")
    if executor is not None:
        jobs = max(1, int(executor.workers))
    abc_binary()  # fail early when ABC is missing (on this machine; a cluster's workers need it too)
    chunks = [list(range(lo, min(lo + recipes_per_process, n_rec))) for lo in range(0, n_rec, recipes_per_process)]
    return _label_stream(designs, steps, chunks, jobs, timeout, per_step, progress, executor)


def _label_stream(
    designs: Sequence[str | Path],
    steps: list[list[str]],
    chunks: list[list[int]],
    jobs: int,
    timeout: float,
    per_step: bool,
    progress: bool,
    executor: Any = None,
) -> Iterator[QorLabel]:
    """The generator behind :func:`label_recipes` (whose arguments are checked eagerly)."""
    n_rec, n_des = len(steps), len(designs)
    with (
        tempfile.TemporaryDirectory(prefix="geomask-abc-") as tmp,
        contextlib.ExitStack() as stack,
        progress_bar(total=n_des * n_rec, disable=not progress, desc="QoR labels", unit="pair") as bar,
    ):
        if executor is None:
            executor = stack.enter_context(ThreadPoolExecutor(max_workers=jobs))
            share = _same
        else:
            share = executor.share
        futures: dict[Any, tuple[int, str | Path]] = {}
        failed = []
        for d, design in enumerate(designs):
            try:
                path = _readable(design, tmp, d)
                data = path.read_bytes()
            except OSError as e:
                failed += [
                    QorLabel(d, r, -1, -1, None, FormatError(design, f"cannot read: {e.strerror or e}"))
                    for r in range(n_rec)
                ]
                continue
            except GeomaskError as e:  # an unreadable design fails alone
                failed += [QorLabel(d, r, -1, -1, None, e) for r in range(n_rec)]
                continue
            handle = share(data)
            for rs in chunks:
                work = [(r, steps[r]) for r in rs]
                fut = executor.submit(label_chunk, handle, path.suffix, str(design), work, per_step, timeout)
                futures[fut] = (d, design)
        try:
            bar.update(len(failed))
            yield from failed
            for fut in as_completed(futures):
                d, design = futures[fut]
                labels = _labels(d, design, fut.result())
                bar.update(len(labels))
                yield from labels
        finally:
            for fut in futures:
                fut.cancel()


def _same(value: Any) -> Any:
    return value
