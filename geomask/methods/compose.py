"""A method's parts from its config sections: ``masker:`` and ``loss:`` (``{name: ..., option: value}``).

Every method builder takes its masker(s) and its loss as *sections*, built through the registries
(:func:`geomask.masking.build_masker`, :func:`geomask.losses.build_loss`), and each section defaults to the part
the method always had, so configs without one keep their numbers.  How a section is read:

* left out (``None``): the method's default part, e.g. MGM's ``{name: uniform, ratio: 0.3}``;
* a mapping with the default's ``name``, or without a ``name``: the default updated with the options given
  (``masker: {ratio: 0.5}``, ``--set method.masker.ratio=0.5``; MSM's ``loss: {name: cosine}`` keeps its
  ``eps: 1e-6``);
* a mapping with another ``name``: that component with exactly the options given;
* a bare name (``loss: smooth_l1``): ``{name: smooth_l1}`` by the same rules;
* a built :class:`~geomask.masking.base.Masker` or loss module (from Python): used as it is.

An unknown name or option is the registry's one-line :class:`~geomask.errors.UsageError`, prefixed with the
section (``method.masker: unknown masker 'blok' (valid: ...)``); the training engine reports it as a config error.

A method's older keywords that set part of a default (``mgm_ratio``, ``mask_ratio``, ...) stay as short forms:
:func:`section_aliases` declares them on the builder, and giving a section together with one of its short forms
is a :class:`~geomask.errors.UsageError` (one source of truth per part).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from torch import nn

from geomask.errors import UsageError
from geomask.losses import build_loss
from geomask.masking import Layout, Masker, build_masker

__all__ = ["loss_section", "masker_section", "resolve_section", "section_aliases"]

F = TypeVar("F", bound=Callable[..., Any])


def resolve_section(section: str, spec: Any, default: Mapping[str, Any]) -> dict[str, Any]:
    """The ``{name: ..., **options}`` spec of a section given ``spec`` and the method's ``default`` (rules above).

    Raises:
        UsageError: ``spec`` is neither ``None``, a name nor a mapping.
    """
    if spec is None:
        return dict(default)
    if isinstance(spec, str):
        spec = {"name": spec}
    if not isinstance(spec, Mapping):
        raise UsageError(
            f"method.{section}: expected a mapping with a name (e.g. {{name: {default['name']}}}), got {spec!r}"
        )
    name = spec.get("name", default["name"])
    base = dict(default) if name == default["name"] else {}
    return {**base, **dict(spec), "name": name}


def masker_section(
    spec: Any, default: Mapping[str, Any], *, section: str = "masker", layout: type[Layout] | None = None
) -> Masker:
    """The masker of a section (:func:`resolve_section`, then :func:`~geomask.masking.build_masker`).

    Args:
        spec: the section's value (``None``, a name, a mapping, or a :class:`Masker`).
        default: the method's default spec.
        section: the section's key, for messages.
        layout: the layout type the method gives the masker; a masker that does not take it is refused here,
            at build time, rather than at the first step.

    Raises:
        UsageError: ``method.<section>: <the registry's message>``.
    """
    try:
        masker = spec if isinstance(spec, Masker) else build_masker(resolve_section(section, spec, default))
    except UsageError as e:
        raise UsageError(_prefixed(section, e)) from None
    if layout is not None and not issubclass(layout, tuple(masker.layouts)):
        want = " or ".join(t.__name__ for t in masker.layouts)
        raise UsageError(
            f"method.{section}: masker {masker.name or type(masker).__name__!r} takes a {want}, "
            f"but this method masks the rows of a {layout.__name__}"
        )
    return masker


def loss_section(spec: Any, default: Mapping[str, Any], *, section: str = "loss") -> nn.Module:
    """The loss module of a section (:func:`resolve_section`, then :func:`~geomask.losses.build_loss`).

    Raises:
        UsageError: ``method.<section>: <the registry's message>``.
    """
    if isinstance(spec, nn.Module):
        return spec
    try:
        return build_loss(resolve_section(section, spec, default))
    except UsageError as e:
        raise UsageError(_prefixed(section, e)) from None


def _prefixed(section: str, e: UsageError) -> str:
    msg = str(e)
    return msg if msg.startswith(f"method.{section}:") else f"method.{section}: {msg}"


def section_aliases(**aliases: str | tuple[str, ...]) -> Callable[[F], F]:
    """Builder decorator: ``section=(keyword, ...)``, the builder keywords that are short forms of a section.

    ``@section_aliases(masker=("mgm_ratio",))``: ``mgm_ratio`` sets the ratio of the default masker, so a call
    giving both ``masker`` and ``mgm_ratio`` raises :class:`UsageError`.  The builder's signature (keywords,
    defaults, return annotation) is unchanged for :mod:`inspect`; the table is ``builder.section_aliases``.
    """
    table = {s: (a,) if isinstance(a, str) else tuple(a) for s, a in aliases.items()}

    def deco(fn: F) -> F:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            for section, keys in table.items():
                both = [k for k in keys if k in kwargs]
                if kwargs.get(section) is not None and both:
                    short = " and ".join(f"method.{k}" for k in both)
                    raise UsageError(
                        f"method.{section} and {short} both set the {section}: give one "
                        f"({', '.join(both)} {'is a short form' if len(both) == 1 else 'are short forms'} "
                        f"of the {section} section)"
                    )
            return fn(*args, **kwargs)

        wrapper.section_aliases = table  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

    return deco
