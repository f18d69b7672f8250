"""The one error type geomask raises for bad input.

Every reader, converter and command raises :class:`GeomaskError` (or a subclass) for a problem with
the user's input.  Its ``str`` is a single line naming the file and the problem, with a byte offset or
line number where one applies, so the command line can print it as-is without a traceback.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["GeomaskError", "FormatError", "MissingFileError", "ToolError", "UsageError"]


class GeomaskError(Exception):
    """Base class of every error geomask raises for bad input or a failed external tool."""


class FormatError(GeomaskError, ValueError):
    """A file that cannot be read: truncated, inconsistent, out of range, garbage.

    Args:
        path: the file (or ``None`` for in-memory data).
        message: what is wrong, without the file name.
        offset: byte offset of the problem, if known.
        line: 1-based line number of the problem, if known.
    """

    def __init__(
        self,
        path: str | Path | None,
        message: str,
        *,
        offset: int | None = None,
        line: int | None = None,
    ) -> None:
        self.path = None if path is None else str(path)
        self.message = message
        self.offset = offset
        self.line = line
        where = self.path or "<memory>"
        if line is not None:
            where += f":{line}"
        elif offset is not None:
            where += f" (byte {offset})"
        super().__init__(f"{where}: {message}")


class MissingFileError(FormatError, FileNotFoundError):
    """An input file or folder that does not exist (a :class:`FormatError` and a ``FileNotFoundError``)."""

    def __init__(self, path: str | Path, what: str = "file") -> None:
        super().__init__(path, f"no such {what}")


class ToolError(GeomaskError, RuntimeError):
    """An external tool (yosys, ABC) failed or timed out; the message is the tool's own, one line."""

    def __init__(self, path: str | Path | None, tool: str, message: str) -> None:
        self.path = None if path is None else str(path)
        self.tool = tool
        self.message = " ".join(message.split())
        super().__init__(f"{self.path or '<memory>'}: {tool}: {self.message}")


class UsageError(GeomaskError, ValueError):
    """A bad argument or option value (a size ≤ 0, an unknown name, a wrong kind of input).

    The command line prints it as one ``error:`` line and exits with status 2 (usage), where other
    :class:`GeomaskError` s (bad data, a failed tool) exit with 1.
    """
