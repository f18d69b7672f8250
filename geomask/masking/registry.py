"""Maskers by name: ``register_masker(name)``, ``build_masker({"name": ..., **options})``, ``available_maskers()``.

The built-in maskers register themselves when :mod:`geomask.masking` is imported (which importing this
module does first, as its package).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from geomask.errors import UsageError
from geomask.masking.base import Masker

__all__ = ["available_maskers", "build_masker", "masker_class", "register_masker"]

_MASKERS: dict[str, type[Masker]] = {}
M = TypeVar("M", bound=type[Masker])


def register_masker(name: str) -> Callable[[M], M]:
    """Class decorator: make a :class:`~geomask.masking.base.Masker` subclass buildable as ``name``.

    The first line of the class docstring is its description in :func:`available_maskers`.
    """

    def deco(cls: M) -> M:
        if not (isinstance(cls, type) and issubclass(cls, Masker)):
            raise TypeError(f"register_masker({name!r}) decorates Masker subclasses, got {cls!r}")
        if _MASKERS.get(name, cls) is not cls:
            raise ValueError(f"masker {name!r} is already registered ({_MASKERS[name].__qualname__})")
        cls.name = name
        _MASKERS[name] = cls
        return cls

    return deco


def _names() -> str:
    return ", ".join(sorted(_MASKERS))


def masker_class(name: str) -> type[Masker]:
    """The class registered as ``name`` (UsageError naming the valid ones otherwise)."""
    if not isinstance(name, str) or name not in _MASKERS:
        raise UsageError(f"unknown masker {name!r} (valid: {_names()})")
    return _MASKERS[name]


def options(name: str) -> list[str]:
    """The keyword options of masker ``name``."""
    sig = inspect.signature(masker_class(name).__init__)
    return [p for p in sig.parameters if p != "self"]


def build_masker(spec: Mapping[str, Any] | str | Masker) -> Masker:
    """A masker from ``{"name": "block", "low": 0.25, ...}`` (a YAML mapping), a bare name, or a masker as-is.

    Raises:
        UsageError: no or unknown ``name``, or an option the masker does not have (each names the valid
            ones), or a bad option value.
    """
    if isinstance(spec, Masker):
        return spec
    if isinstance(spec, str):
        spec = {"name": spec}
    if not isinstance(spec, Mapping):
        raise UsageError(f"a masker is a mapping with a 'name' (valid: {_names()}), got {type(spec).__name__}")
    if "name" not in spec:
        raise UsageError(f"a masker needs a 'name' (valid: {_names()})")
    cls = masker_class(spec["name"])
    kwargs = {k: v for k, v in spec.items() if k != "name"}
    valid = options(cls.name)
    unknown = sorted(set(kwargs) - set(valid))
    if unknown:
        raise UsageError(
            f"masker {cls.name!r}: unknown option {', '.join(map(repr, unknown))} (valid: {', '.join(valid)})"
        )
    params = inspect.signature(cls.__init__).parameters
    missing = [p for p in valid if params[p].default is inspect.Parameter.empty and p not in kwargs]
    if missing:
        raise UsageError(f"masker {cls.name!r}: missing option {', '.join(map(repr, missing))}")
    return cls(**kwargs)


def available_maskers() -> dict[str, str]:
    """``{name: one-line description}`` of every registered masker, sorted by name."""
    out = {}
    for name in sorted(_MASKERS):
        doc = inspect.getdoc(_MASKERS[name]) or ""
        out[name] = doc.strip().splitlines()[0] if doc.strip() else ""
    return out
