"""Where preprocessing jobs run: local threads, or the workers of a Ray cluster, behind one interface.

Both executors are :class:`concurrent.futures.Executor` s (``submit(fn, *args) -> Future``, usable with
``as_completed``, ``with`` and ``shutdown``) with three additions:

* ``workers`` — how many jobs run at once (threads, or the cluster's CPUs), for sizing the work;
* ``share(value)`` — a handle that ``submit`` resolves to ``value`` in the job: the value itself for threads,
  a Ray object reference (stored once in the cluster's object store) for Ray, so a design sent to many
  jobs travels once;
* ``map_unordered(fn, items)`` — ``fn(item)`` for every item, yielded in completion order.

Jobs must be pure functions of their arguments that return plain data (picklable, no open files): the
caller (the driver) stays the only writer of outputs, so a run gives the same bytes on either executor.
"""

from __future__ import annotations

import concurrent.futures as cf
import importlib.util
import socket
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from geomask.errors import ToolError, UsageError

__all__ = ["EXECUTORS", "RAY_MISSING", "RayExecutor", "ThreadExecutor", "check_executor", "make_executor"]

#: The executor names :func:`make_executor` knows.
EXECUTORS = ("threads", "ray")
#: The one error line of ``--executor ray`` without the ray package.
RAY_MISSING = "--executor ray needs the ray package: pip install 'geomask[ray]'"


class _Unordered:
    def map_unordered(self, fn: Callable[[Any], Any], items: Iterable[Any]) -> Iterator[Any]:
        """``fn(item)`` for every item, yielded as each finishes (an exception is raised when its turn comes)."""
        futures = [self.submit(fn, item) for item in items]  # type: ignore[attr-defined]
        try:
            for fut in cf.as_completed(futures):
                yield fut.result()
        finally:
            for fut in futures:
                fut.cancel()


class ThreadExecutor(_Unordered, cf.ThreadPoolExecutor):
    """``jobs`` threads on this machine (a :class:`~concurrent.futures.ThreadPoolExecutor`)."""

    def __init__(self, jobs: int) -> None:
        super().__init__(max_workers=jobs)
        self.workers = jobs

    def share(self, value: Any) -> Any:
        return value


class RayExecutor(_Unordered, cf.Executor):
    """Jobs as Ray tasks (one CPU each) on a Ray cluster.

    Connects to the cluster at ``address`` (``ray start --head`` prints it; ``"auto"`` finds a local one),
    or, without an address, starts a private local cluster of ``jobs`` CPUs that :meth:`shutdown` stops.
    When this process is already connected (``ray.init`` was called), that connection is used and kept.
    Every machine of a cluster needs the same Python packages (geomask) and tools (``berkeley-abc``).

    Raises:
        UsageError: ray is not installed (:data:`RAY_MISSING`).
        ToolError: the cluster cannot be reached or started.
    """

    def __init__(self, jobs: int, address: str | None = None) -> None:
        try:
            import ray
        except ImportError:
            raise UsageError(RAY_MISSING) from None
        self._ray = ray
        self._owned = False
        if not ray.is_initialized():
            kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "logging_level": "error"}
            if address is None:
                kwargs["num_cpus"] = jobs
            try:
                ray.init(address=address, **kwargs)
            except Exception as e:  # ConnectionError, ValueError, RuntimeError, ... all mean "no cluster"
                msg = " ".join(str(e).split()) or type(e).__name__
                what = "cannot reach the Ray cluster" if address else "cannot start a local Ray cluster"
                raise ToolError(address or "ray.init", "ray", f"{what}: {msg[:300]}") from None
            self._owned = True
        self.workers = max(1, int(ray.cluster_resources().get("CPU", 1)))
        self._call = ray.remote(num_cpus=1)(_call)  # any picklable callable: functions, builtins, partials
        self._refs: list[Any] = []
        self._lock = threading.Lock()

    def share(self, value: Any) -> Any:
        return self._ray.put(value)

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> cf.Future:
        with self._lock:
            ref = self._call.remote(fn, *args, **kwargs)  # object references among args arrive as their values
            self._refs.append(ref)
        return ref.future()

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Cancel the tasks still unfinished (a driver that stops wants no more results; ``wait`` and
        ``cancel_futures`` change nothing), and stop the cluster this executor started."""
        ray = self._ray
        with self._lock:
            refs, self._refs = self._refs, []
        if refs:
            _, pending = ray.wait(refs, num_returns=len(refs), timeout=0)
            for ref in pending:
                ray.cancel(ref)  # a KeyboardInterrupt in the task: subprocess.run kills its ABC process
        if self._owned and ray.is_initialized():
            ray.shutdown()
            self._owned = False


def _reachable(address: str, timeout: float = 10.0) -> None:
    """Fail fast on a ``HOST:PORT`` nobody listens on (``ray.init`` would retry it for minutes).

    Raises:
        ToolError: no connection to ``address`` within ``timeout`` seconds.
    """
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or "://" in host:
        return  # "auto", ray://..., or something ray.init judges itself
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as e:
        raise ToolError(address, "ray", f"no Ray cluster answers there ({e.strerror or e})") from None


def _call(fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
    """The one Ray task: ``fn(*args, **kwargs)`` on a worker (``fn`` travels pickled, by reference when importable)."""
    return fn(*args, **kwargs)


def check_executor(kind: str, jobs: int = 1, address: str | None = None) -> None:
    """Check :func:`make_executor` 's arguments without starting anything (ray is looked up, not imported;
    a ``HOST:PORT`` address must accept a connection).

    Raises:
        UsageError: what :func:`make_executor` would raise for them.
        ToolError: nothing listens at a ``HOST:PORT`` address.
    """
    if kind not in EXECUTORS:
        raise UsageError(f"executor must be one of {', '.join(EXECUTORS)}, got {kind!r}")
    if jobs < 1:
        raise UsageError(f"jobs must be >= 1, got {jobs}")
    if kind == "threads" and address is not None:
        raise UsageError("--address names a Ray cluster; use it with --executor ray")
    if kind == "ray" and importlib.util.find_spec("ray") is None:
        raise UsageError(RAY_MISSING)
    if kind == "ray" and address is not None:
        _reachable(address)


def make_executor(kind: str, jobs: int = 1, address: str | None = None) -> ThreadExecutor | RayExecutor:
    """An executor by name: ``"threads"`` (``jobs`` threads) or ``"ray"`` (a Ray cluster at ``address``,
    or a local one of ``jobs`` CPUs).

    Raises:
        UsageError: an unknown kind, ``jobs < 1``, an address with ``threads``, or ray missing.
        ToolError: the Ray cluster cannot be reached.
    """
    check_executor(kind, jobs, address)
    return ThreadExecutor(jobs) if kind == "threads" else RayExecutor(jobs, address)
