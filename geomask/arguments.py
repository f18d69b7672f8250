"""Argparse building blocks every ``geomask`` command shares.

- :class:`Parser`: an ``ArgumentParser`` whose usage errors raise :class:`ArgumentsError` (one line, exit
  status 2 in :func:`geomask.cli.main`) instead of printing the usage block and exiting, and whose leaf
  commands accept options anywhere among the positionals (``pretrain --set k=v CONFIG``, ``info --json F``).
- :class:`HelpFormatter`: keeps descriptions and example epilogs as written and shows every default.
- value types for option values: :func:`positive_int`, :func:`nonnegative_int`, :func:`positive_float`,
  :func:`nonnegative_float`, :func:`fraction` — a bad value is a usage error naming the option.

This module sits at the bottom of the command layer (it imports only :mod:`geomask.errors`), so the
``pretrain`` and ``eval`` parsers, which live in their own packages, use the same rules as :mod:`geomask.cli`.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Sequence
from typing import Any

from geomask.errors import UsageError

__all__ = [
    "ArgumentsError",
    "HelpFormatter",
    "Parser",
    "fraction",
    "nonnegative_float",
    "nonnegative_int",
    "positive_float",
    "positive_int",
]


class ArgumentsError(UsageError):
    """A command line argparse rejected: ``PROG: MESSAGE`` on one line (exit status 2)."""

    def __init__(self, prog: str, message: str) -> None:
        self.prog = prog
        super().__init__(f"{prog}: {message} (see '{prog} --help')")


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Descriptions and epilogs as written (examples keep their lines); ``(default: X)`` after each option.

    Defaults that say nothing (``None``, ``False``, an empty list) are not shown, nor a default the help
    text already mentions.
    """

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if (
            "%(default)" in text
            or "default" in text.lower()
            or default is argparse.SUPPRESS
            or default is None
            or default is False
            or (isinstance(default, (list, tuple)) and not default)
            or not action.option_strings
        ):
            return text
        shown = " ".join(map(str, default)) if isinstance(default, (list, tuple)) else "%(default)s"
        return f"{text} (default: {shown})" if text else f"(default: {shown})"

    def _format_action_invocation(self, action: argparse.Action) -> str:
        if action.choices is not None and action.option_strings and action.nargs != 0:
            # '--methods {a,b,c} [{a,b,c} ...]' is unreadable with long lists: show the choices once
            metavar = "{" + ",".join(map(str, action.choices)) + "}"
            if action.nargs in ("+", "*"):
                metavar += " ..."
            return ", ".join(action.option_strings) + " " + metavar
        return super()._format_action_invocation(action)


class Parser(argparse.ArgumentParser):
    """``ArgumentParser`` with one-line errors (:class:`ArgumentsError`) and options anywhere.

    Subcommand parsers made with ``add_subparsers().add_parser`` are of this class too, with the same
    formatter.  A leaf command (one without subcommands) parses with ``parse_known_intermixed_args``, so
    options may come before, between or after the positionals.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)
        self._intermixing = False

    def error(self, message: str) -> Any:  # argparse's hook: never returns
        raise ArgumentsError(self.prog, message)

    def parse_known_args(self, args: Sequence[str] | None = None, namespace: Any = None) -> Any:
        if self._subparsers is None and not self._intermixing:
            self._intermixing = True
            try:
                return self.parse_known_intermixed_args(args, namespace)
            finally:
                self._intermixing = False
        return super().parse_known_args(args, namespace)


def _number(kind: Callable[[str], Any], test: Callable[[Any], bool], what: str, name: str) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if not test(value):
            raise argparse.ArgumentTypeError(f"must be {what}, got {text}")
        return value

    parse.__name__ = name  # argparse names the type in some messages
    return parse


def _finite(x: float) -> bool:
    return math.isfinite(x)


positive_int = _number(int, lambda v: v >= 1, "a whole number of at least 1", "positive_int")
nonnegative_int = _number(int, lambda v: v >= 0, "a whole number of at least 0", "nonnegative_int")
positive_float = _number(float, lambda v: _finite(v) and v > 0, "a number above 0", "positive_float")
nonnegative_float = _number(float, lambda v: _finite(v) and v >= 0, "a number of at least 0", "nonnegative_float")
fraction = _number(float, lambda v: _finite(v) and 0 < v <= 1, "a fraction in (0, 1]", "fraction")
