"""Name → component registries for targets (and, through :class:`Registry`, for losses).

A component is registered under a name with a one-line description and built from a YAML-style mapping
``{"name": ..., **keywords}``; objects that cannot come from YAML (a student module, a tokenizer) are passed
to the build call as keyword arguments.  Unknown names and keywords raise :class:`~geomask.errors.UsageError`
listing the valid ones.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from geomask.errors import UsageError

__all__ = ["Registry", "available_targets", "build_target", "register_target"]

T = TypeVar("T", bound=Callable[..., Any])


class Registry:
    """Components of one kind (``"loss"``, ``"target"``) by name.

    Args:
        kind: the word used in error messages.
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, tuple[Callable[..., Any], str]] = {}

    def register(self, name: str, description: str | None = None) -> Callable[[T], T]:
        """Decorator registering a class or factory under ``name``.

        Args:
            name: the name used in configs.
            description: one line for :meth:`available` (default: the first line of the docstring).
        """

        def deco(obj: T) -> T:
            old = self._entries.get(name)
            if old is not None and old[0] is not obj:
                raise ValueError(f"{self.kind} {name!r} is already registered ({old[0].__qualname__})")
            doc = description or (inspect.getdoc(obj) or "").strip().split("\n")[0]
            self._entries[name] = (obj, doc)
            return obj

        return deco

    def available(self) -> dict[str, str]:
        """``{name: one-line description}``, sorted by name."""
        return {name: self._entries[name][1] for name in sorted(self._entries)}

    def get(self, name: str) -> Callable[..., Any]:
        """The registered class or factory (UsageError listing the valid names when unknown)."""
        if name not in self._entries:
            raise UsageError(f"unknown {self.kind} {name!r}; valid: {', '.join(sorted(self._entries))}")
        return self._entries[name][0]

    def keywords(self, name: str) -> tuple[str, ...]:
        """The keyword arguments the component accepts, in signature order."""
        sig = inspect.signature(self.get(name))
        kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
        return tuple(p.name for p in sig.parameters.values() if p.kind in kinds)

    def build(self, spec: Mapping[str, Any] | str, **objects: Any) -> Any:
        """Build from ``{"name": ..., **keywords}`` (or a bare name); ``objects`` are extra keyword arguments.

        Raises:
            UsageError: no or an unknown name, an unknown or missing keyword, a keyword given twice.
        """
        if isinstance(spec, str):
            spec = {"name": spec}
        if not isinstance(spec, Mapping) or not isinstance(spec.get("name"), str):
            raise UsageError(f"a {self.kind} is a mapping with a 'name' (one of {', '.join(self.available())})")
        kwargs = {k: v for k, v in spec.items() if k != "name"}
        name = spec["name"]
        factory = self.get(name)
        valid = self.keywords(name)
        twice = sorted(set(kwargs) & set(objects))
        if twice:
            raise UsageError(f"{self.kind} {name!r}: {', '.join(twice)} given both in the spec and as objects")
        kwargs.update(objects)
        unknown = sorted(k for k in kwargs if k not in valid)
        if unknown:
            raise UsageError(
                f"{self.kind} {name!r} has no keyword {', '.join(map(repr, unknown))}; valid: {', '.join(valid)}"
            )
        try:
            inspect.signature(factory).bind(**kwargs)
        except TypeError as e:
            raise UsageError(f"{self.kind} {name!r}: {e}; valid keywords: {', '.join(valid)}") from None
        return factory(**kwargs)


TARGETS = Registry("target")


def register_target(name: str, description: str | None = None) -> Callable[[T], T]:
    """Register a target class or factory under ``name`` (see :meth:`Registry.register`)."""
    return TARGETS.register(name, description)


def build_target(spec: Mapping[str, Any] | str, **objects: Any) -> Any:
    """Build a target from ``{"name": ..., **keywords}``; modules (``student``, ``module``, ``tokenizer``) go in
    ``objects``, e.g. ``build_target({"name": "ema_teacher", "momentum": 0.996}, student=backbone)``."""
    return TARGETS.build(spec, **objects)


def available_targets() -> dict[str, str]:
    """``{name: one-line description}`` of every registered target."""
    return TARGETS.available()
