"""Atomic writes honour the umask like any other tool (not mkstemp's private 0600); killed writers' temporaries
are swept, live writers' are not."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time

import pytest

from geomask.io.atomic import atomic_write_bytes, atomic_write_text, atomic_write_with, sweep_temporaries


@pytest.fixture
def umask():
    """Set a umask for one test and restore the previous one."""
    old = os.umask(0o022)
    yield lambda m: os.umask(m)
    os.umask(old)


@pytest.mark.parametrize(("mask", "mode"), [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_written_files_follow_the_umask(tmp_path, umask, mask, mode):
    umask(mask)
    atomic_write_text(tmp_path / "a.txt", "x")
    atomic_write_bytes(tmp_path / "sub" / "b.bin", b"y")
    atomic_write_with(tmp_path / "c.bin", lambda p: open(p, "wb").write(b"z"))
    for name in ("a.txt", "sub/b.bin", "c.bin"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == mode, name
    assert (tmp_path / "a.txt").read_text() == "x"
    assert not [p for p in tmp_path.rglob("*.tmp")]


def test_a_failed_writer_leaves_the_old_file(tmp_path):
    atomic_write_text(tmp_path / "a.txt", "old")

    def broken(tmp: str) -> None:
        with open(tmp, "w") as f:
            f.write("half")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        atomic_write_with(tmp_path / "a.txt", broken)
    assert (tmp_path / "a.txt").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"]


def test_build_lock_is_exclusive_across_processes(tmp_path):
    import subprocess
    import sys

    from geomask.io.atomic import build_lock

    out = tmp_path / "cache" / "thing"
    probe = (
        "import fcntl, sys\n"
        "f = open(sys.argv[1], 'a')\n"
        "try:\n    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)\nexcept BlockingIOError:\n    sys.exit(3)\n"
    )
    lock = str(out) + ".lock"
    with build_lock(out):
        assert out.parent.is_dir()
        held = subprocess.run([sys.executable, "-c", probe, lock])
    free = subprocess.run([sys.executable, "-c", probe, lock])
    assert (held.returncode, free.returncode) == (3, 0)


def test_build_once_builds_once_in_a_fixed_folder_and_clears_leftovers(tmp_path, capsys):
    """``build_once``: a killed builder's leftovers are removed, ``write`` sees the fixed ``.<name>.building``
    folder and its returned folder lands at ``out``; a second call finds the manifest and does not build again."""
    from geomask.io.atomic import build_once

    out = tmp_path / "cache" / "thing"
    leftover = tmp_path / "cache" / ".thing.building"
    leftover.mkdir(parents=True)
    (leftover / "stale.txt").write_text("from a killed build")
    calls = []

    def write(work):
        calls.append(work)
        assert not (work / "stale.txt").exists()
        (work / "data").mkdir()
        (work / "data" / "manifest.json").write_text("{}")
        (work / "source.txt").write_text("scratch")
        return work / "data"

    assert build_once(out, "building thing", write) == out
    assert calls == [leftover] and (out / "manifest.json").is_file() and not leftover.exists()
    assert "building thing" in capsys.readouterr().err
    assert build_once(out, "building thing", write) == out and len(calls) == 1


_SLOW_WRITER = """
import sys, time
from geomask.io.atomic import atomic_write_with
def write(tmp):
    with open(tmp, "wb") as f:
        f.write(b"half")
        f.flush()
    time.sleep(120)
atomic_write_with(sys.argv[1], write)
"""


def test_sweep_removes_a_killed_writers_temporary_and_keeps_a_live_ones(tmp_path):
    target = tmp_path / "labels.csv"
    proc = subprocess.Popen([sys.executable, "-c", _SLOW_WRITER, str(target)])
    try:
        deadline = time.monotonic() + 60
        while not list(tmp_path.glob(".labels.csv.*.tmp")):
            assert proc.poll() is None and time.monotonic() < deadline, "the writer made no temporary file"
            time.sleep(0.02)
        (tmp,) = tmp_path.glob(".labels.csv.*.tmp")
        others = [tmp_path / ".notes.tmp", tmp_path / "x.csv.abcdefgh.tmp", tmp_path / ".y.csv.abcdefgh.tmp.bak"]
        for p in others:  # not atomic_write_with's names: never touched
            p.write_bytes(b"keep")
        assert sweep_temporaries(tmp_path) == [] and tmp.exists()  # alive: its lock is held
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert tmp.exists() and not target.exists()  # what a killed writer leaves
        assert sweep_temporaries(tmp_path) == [tmp]
        assert not tmp.exists() and all(p.exists() for p in others)
        assert sweep_temporaries(tmp_path / "missing") == []
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
