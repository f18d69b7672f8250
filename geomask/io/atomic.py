"""Atomic file writes: a temporary file in the same folder, fsync, then rename.

A killed process leaves either the old file, the complete new file, or nothing: never a half-written one —
but it may leave its temporary file (``.NAME.XXXXXXXX.tmp``). While a writer fills one it holds an exclusive
``flock`` on it, which the kernel drops when the process dies: :func:`sweep_temporaries`, run by a resumed job,
removes exactly the temporaries nobody holds.
The file ends with the permissions any other tool would give it (``0o666`` less the umask, so ``0644`` under
the usual umask 022), not ``mkstemp``'s private ``0600``: collaborators can read a shared dataset.
"""

from __future__ import annotations

import os
import re
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = [
    "atomic_write_bytes",
    "atomic_write_text",
    "atomic_write_with",
    "build_lock",
    "build_once",
    "file_mode",
    "sweep_temporaries",
]

_UMASK_LOCK = threading.Lock()


def file_mode() -> int:
    """The mode a plain ``open(path, "w")`` would create a file with: ``0o666`` less the process umask."""
    with _UMASK_LOCK:  # the umask can only be read by setting it
        mask = os.umask(0o022)
        os.umask(mask)
    return 0o666 & ~mask


def atomic_write_with(path: str | Path, writer: Callable[[str], None]) -> None:
    """Call ``writer(tmp_path)`` to fill a temporary file, then rename it to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        _lock(fd, blocking=True)  # "in use": sweep_temporaries leaves it alone until this process lets go or dies
        writer(tmp)
        os.chmod(tmp, file_mode())  # after the writer, which may have replaced the file
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    finally:
        os.close(fd)


#: The names :func:`atomic_write_with` gives its temporary files (``mkstemp``'s 8 random characters).
_TEMPORARY = re.compile(r"^\..+\.[A-Za-z0-9_]{8}\.tmp$")


def _lock(fd: int, blocking: bool) -> bool:
    """An exclusive ``flock`` on ``fd``; False when another process holds one (non-blocking). No-op off POSIX."""
    try:
        import fcntl
    except ImportError:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
    except BlockingIOError:
        return False
    return True


def sweep_temporaries(folder: str | Path) -> list[Path]:
    """Remove the temporary files that killed writers left in ``folder`` (not its subfolders); returns them.

    Only :func:`atomic_write_with` 's names (``.NAME.XXXXXXXX.tmp``) are candidates, and of those only files
    no live process holds (a writer keeps an ``flock`` on its temporary until the rename), so a resumed job may
    sweep a folder another writer is filling. Off POSIX (no ``flock``) every matching file is removed.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed = []
    for p in sorted(folder.iterdir()):
        if not _TEMPORARY.match(p.name) or not p.is_file():
            continue
        try:
            fd = os.open(p, os.O_RDONLY)
        except FileNotFoundError:  # renamed or removed by its writer meanwhile
            continue
        try:
            if _lock(fd, blocking=False):
                p.unlink(missing_ok=True)
                removed.append(p)
        finally:
            os.close(fd)
    return removed


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""

    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())

    atomic_write_with(path, write)


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


@contextmanager
def build_lock(out: str | Path) -> Iterator[None]:
    """Hold ``<out>.lock`` exclusively (``flock``) while one process builds ``out``: others wait, then find it built.

    Not POSIX (no ``fcntl``): no lock, one process builds at a time by convention.
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out.with_name(out.name + ".lock"), "a") as lock:
        _lock(lock.fileno(), blocking=True)  # released when the file closes (or the process dies)
        yield


def build_once(out: str | Path, message: str | None, write: Callable[[Path], Path], *, resume: bool = False) -> Path:
    """The dataset folder ``out``, built on first use (``out/manifest.json`` marks a finished build).

    Under :func:`build_lock`, ``message`` goes to stderr and ``write(work)`` fills a build folder of a fixed name,
    ``.<out name>.building`` beside ``out`` (a killed builder's leftovers are removed first), returning the folder
    inside it (or ``work`` itself) that is renamed into place. The fixed name keeps any source path a manifest
    records the same, so every build under one cache root writes the same bytes.  ``message`` None prints
    nothing; ``resume`` keeps a killed builder's work instead (folder ``<out name>.partial``, for builders whose
    ``write`` skips what is already finished, such as the resumable ``prep`` writers).
    """
    import shutil
    import sys

    out = Path(out)
    if (out / "manifest.json").is_file():
        return out
    with build_lock(out):  # one builder among processes
        if (out / "manifest.json").is_file():  # another process built it while this one waited
            return out
        if message is not None:
            print(message, file=sys.stderr, flush=True)
        work = out.with_name(f"{out.name}.partial" if resume else f".{out.name}.building")
        if not resume:
            shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True, exist_ok=resume)
        result = write(work)
        if out.exists():
            shutil.rmtree(out)
        os.replace(result, out)
        shutil.rmtree(work, ignore_errors=True)
    return out
