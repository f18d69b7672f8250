"""prep circuits on Ray: the executor interface, one error line without ray, and a driver killed mid-run
whose restart ends with the bytes of a ``--jobs 1`` run."""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from geomask.cli import main
from geomask.datasets.executors import RAY_MISSING, ThreadExecutor, check_executor, make_executor
from geomask.datasets.prep_circuits import prep_circuits
from geomask.errors import UsageError
from geomask.io.aig import AIG
from geomask.io.aiger import write_aiger

REPO = Path(__file__).resolve().parents[2]
needs_abc = pytest.mark.skipif(shutil.which("berkeley-abc") is None, reason="berkeley-abc not installed")


def make_designs(folder: Path, n: int) -> list[Path]:
    """``n`` random AIGs of 120 to 160 ANDs (big enough that a recipe takes ABC a moment)."""
    rng = np.random.default_rng(7)
    folder.mkdir(parents=True)
    paths = []
    for k in range(n):
        n_in, n_and = 10 + k, 120 + 8 * k
        ands = np.array([rng.integers(2, 2 * (n_in + 1 + i), size=2) for i in range(n_and)])
        aig = AIG(num_inputs=n_in, ands=ands, outputs=2 * (n_in + n_and - np.arange(4)))
        paths.append(folder / f"d{k}.aag")
        write_aiger(aig, paths[-1])
    return paths


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def ray_address():
    """A local two-CPU Ray cluster for this module; its address (for a second driver process)."""
    ray = pytest.importorskip("ray", reason="ray not installed (pip install 'geomask[ray]')")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="error")
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()


def test_threads_executor_interface():
    with make_executor("threads", 2) as ex:
        assert isinstance(ex, ThreadExecutor) and ex.workers == 2
        assert sorted(ex.map_unordered(abs, range(-2, 3))) == [0, 1, 1, 2, 2]
        blob = b"x" * 1000
        assert ex.share(blob) is blob and ex.submit(len, ex.share(blob)).result() == 1000


def test_ray_executor_interface(ray_address):
    with make_executor("ray", 2) as ex:  # this process is connected already: that cluster is used and kept
        assert ex.workers == 2
        # builtins: a worker imports a task's function by reference (geomask's are installed, tests' are not)
        assert sorted(ex.map_unordered(abs, range(-2, 3))) == [0, 1, 1, 2, 2]
        handle = ex.share(b"y" * 300_000)  # stored once, resolved in every task
        assert [f.result() for f in [ex.submit(len, handle) for _ in range(3)]] == [300_000] * 3
    import ray

    assert ray.is_initialized()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("processes", 1, None), "executor must be one of threads, ray"),
        (("threads", 0, None), "jobs must be >= 1"),
        (("threads", 2, "10.0.0.1:6379"), "--address names a Ray cluster"),
    ],
)
def test_bad_executor_options(args, message):
    with pytest.raises(UsageError, match=message):
        check_executor(*args)


def test_missing_ray_is_one_line_before_anything_is_written(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` fails, find_spec finds nothing
    src = tmp_path / "d.aag"
    write_aiger(AIG(num_inputs=2, ands=np.array([[2, 4]]), outputs=np.array([6])), src)
    out = tmp_path / "out"
    assert main(["prep", "circuits", str(src), "--out", str(out), "--recipes", "2", "--executor", "ray"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: {RAY_MISSING}"]
    assert not out.exists()


@pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="ray not installed")
def test_unreachable_address_is_one_line_before_anything_is_written(tmp_path, capsys):
    with socket.socket() as s:  # a port nobody listens on once closed
        s.bind(("127.0.0.1", 0))
        addr = f"127.0.0.1:{s.getsockname()[1]}"
    src = tmp_path / "d.aag"
    write_aiger(AIG(num_inputs=2, ands=np.array([[2, 4]]), outputs=np.array([6])), src)
    out = tmp_path / "out"
    argv = ["prep", "circuits", str(src), "--out", str(out), "--executor", "ray", "--address", addr, "--quiet"]
    assert main(argv) == 1
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"error: {addr}: ray: no Ray cluster answers there")
    assert not out.exists()


@needs_abc
@pytest.mark.slow  # a second driver process (Python + torch + ray imports): ~35 s on the loaded machine
def test_killed_ray_driver_restarts_to_the_bytes_of_jobs_1(tmp_path, ray_address):
    src = make_designs(tmp_path / "src", 5)
    opts = {"recipes": 4, "recipe_length": 6, "seed": 5}
    out = tmp_path / "ray"
    argv = [sys.executable, str(REPO / "tools" / "prep_circuits.py"), *map(str, src), "--out", str(out), "--quiet"]
    argv += ["--recipes", "4", "--recipe-length", "6", "--seed", "5", "--executor", "ray", "--address", ray_address]
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    labels = out / "labels"
    try:
        deadline = time.monotonic() + 120
        while not (labels.is_dir() and any(labels.glob("*.csv"))):
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the driver wrote no labels (exit {proc.poll()}): {proc.stderr.read()[-2000:]!r}")
            time.sleep(0.02)
        os.killpg(proc.pid, signal.SIGKILL)  # the driver (and anything in its session), not the cluster
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
    done = sorted(p.name for p in labels.glob("*.csv"))
    assert 1 <= len(done) < len(src), f"the kill did not land mid-run: {done}"
    assert not (out / "qor.csv").exists()

    report = prep_circuits(src, out, executor="ray", address=ray_address, progress=False, **opts)  # restart
    assert not report.failures and all(r["labels"] == 4 for r in report.rows)
    assert [r["status"] for r in report.rows] == ["kept"] * len(src)  # graphs were all converted before the kill

    ref = tmp_path / "jobs1"
    prep_circuits(src, ref, jobs=1, progress=False, **opts)
    got, want = snapshot(out), snapshot(ref)
    assert sorted(got) == sorted(want)
    assert [name for name in want if got[name] != want[name]] == []  # byte-identical, manifest included
