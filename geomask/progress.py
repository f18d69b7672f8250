"""Progress bars that suit where the output goes.

:func:`progress_bar` is tqdm on a terminal (or in a notebook).  When the stream is not a terminal (a log
file, a pipe, ``make demo > log``), tqdm's carriage returns and the cursor moves of nested bars leave
debris, so it returns a :class:`LineProgress` instead: plain lines (``desc: n/total (p%), t s``), at most
one per ``interval`` seconds, and a last line when a ``leave`` bar closes.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from typing import IO, Any

__all__ = ["LineProgress", "progress_bar"]


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:.4g}"


def _is_tty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


class LineProgress:
    """The part of tqdm's interface the project uses (iterate, ``update``, ``close``, ``with``,
    ``set_postfix_str``), writing one plain line per ``interval`` seconds at most."""

    def __init__(
        self,
        iterable: Iterable[Any] | None = None,
        *,
        total: float | None = None,
        desc: str | None = None,
        unit: str = "it",
        disable: bool = False,
        leave: bool = True,
        file: IO[str] | None = None,
        interval: float = 30.0,
    ) -> None:
        if total is None and iterable is not None:
            try:
                total = len(iterable)  # type: ignore[arg-type]
            except TypeError:
                total = None
        self.iterable = iterable
        self.total = total
        self.desc = desc or ""
        self.unit = unit
        self.disable = disable
        self.leave = leave
        self.file = file
        self.interval = float(interval)
        self.n = 0
        self.postfix = ""
        self._start = time.monotonic()
        self._last = self._start
        self._closed = False

    def _line(self) -> str:
        head = f"{self.desc}: " if self.desc else ""
        count = f"{_num(self.n)}/{_num(self.total)}" if self.total else _num(self.n)
        pct = f" ({100.0 * self.n / self.total:.0f}%)" if self.total else ""
        post = f", {self.postfix}" if self.postfix else ""
        return f"{head}{count} {self.unit}{pct}, {time.monotonic() - self._start:.0f} s{post}"

    def _print(self) -> None:
        print(self._line(), file=self.file if self.file is not None else sys.stderr, flush=True)

    def update(self, n: float = 1) -> None:
        """Count ``n`` more; print a line when ``interval`` seconds have passed since the last one."""
        if self.disable:
            return
        self.n += n
        now = time.monotonic()
        if now - self._last >= self.interval and not (self.total and self.n >= self.total):
            self._last = now
            self._print()

    def set_postfix_str(self, s: str = "", refresh: bool = True) -> None:
        """Text appended to the next lines."""
        self.postfix = str(s)

    def close(self) -> None:
        """Print the last line (when ``leave``); idempotent."""
        if self._closed:
            return
        self._closed = True
        if not self.disable and self.leave:
            self._print()

    def __iter__(self) -> Iterator[Any]:
        if self.iterable is None:
            raise TypeError("this progress bar was made without an iterable")
        try:
            for item in self.iterable:
                yield item
                self.update(1)
        finally:
            self.close()

    def __enter__(self) -> LineProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def progress_bar(
    iterable: Iterable[Any] | None = None,
    *,
    total: float | None = None,
    desc: str | None = None,
    unit: str = "it",
    disable: bool = False,
    leave: bool = True,
    file: IO[str] | None = None,
    interval: float = 30.0,
) -> Any:
    """A progress bar over ``iterable`` (or updated by hand up to ``total``).

    Args:
        iterable: what to iterate over, or None for ``update()`` by hand.
        total: the expected count (default ``len(iterable)`` where it has one).
        desc: the label.
        unit: what is counted.
        disable: no output at all.
        leave: keep the bar (tqdm), or print a last line (plain mode), when it closes.
        file: the stream (default ``sys.stderr``).
        interval: plain mode only: the fewest seconds between two lines.

    Returns:
        A ``tqdm`` bar when ``file`` is a terminal or the code runs in a notebook, else a
        :class:`LineProgress`.
    """
    from tqdm.auto import tqdm as auto_tqdm
    from tqdm.autonotebook import tqdm as notebook_or_std
    from tqdm.std import tqdm as std_tqdm

    stream = file if file is not None else sys.stderr
    in_notebook = notebook_or_std is not std_tqdm  # tqdm.autonotebook picked the notebook widget
    if disable or in_notebook or _is_tty(stream):
        return auto_tqdm(iterable, total=total, desc=desc, unit=unit, disable=disable, leave=leave, file=file)
    return LineProgress(
        iterable, total=total, desc=desc, unit=unit, disable=disable, leave=leave, file=file, interval=interval
    )
