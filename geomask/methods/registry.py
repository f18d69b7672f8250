"""Build pretraining methods by name: the one place where configuration becomes modules.

``build_method(name, **kwargs)`` with ``name`` in :data:`METHODS`:

* ``mgvga``: MGM + VGA over Verilog chunks; ``mgvga_single``: MGM + VGA over one pooled Verilog vector
  (the reference's mode); ``mgm``: MGM only; ``graphmae``: GraphMAE-style input feature masking.

Shared keywords: ``encoder`` (``deepgcn``, ``gcn``, ``gin`` or ``gat``), ``hidden``, ``layers``,
``num_types``, ``dropout`` (inside encoder blocks; the reference's 0), ``gat_heads``, ``checkpoint_nodes``
(DeepGCN: recompute blocks in backward when at least this many rows), ``decoder_layers``.  MGVGA also takes
``head_dropout`` (feed-forward dropout of the degree heads and VGA layers; the reference's 0.1; at 0 every
part of the step runs once per cone class) and ``dedup`` (see :class:`~geomask.methods.mgvga.MGVGA`).
Method keywords are those of the builder functions below.  An unknown name or keyword raises
``ValueError`` listing the valid ones.

Parts as config sections (:mod:`geomask.methods.compose`): every builder takes ``masker`` and ``loss``, a
``{name: ..., option: value}`` mapping built through the masker / loss registries, defaulting to the method's own
part.  The graph methods' ``masker`` hides nodes (a :class:`~geomask.masking.layout.RowLayout`; default
``{name: uniform, ratio: mgm_ratio}`` for MGM, ``mask_ratio`` for GraphMAE); MGVGA's ``vga_masker`` the nodes VGA
hides (``{name: uniform, ratio: vga_ratio}``); ``loss`` scores the masked gate types: MGM's and VGA's
``{name: cross_entropy}``, GraphMAE's ``{name: sce, gamma: gamma}``.  The older keywords (``mgm_ratio``,
``vga_ratio``, ``mask_ratio``, ``gamma``) remain as short forms of the default; giving one together with its
section is an error.  A bad section is the registry's one-line :class:`~geomask.errors.UsageError` (a
``ValueError``) prefixed ``method.<section>:``.

Every method is a :class:`~geomask.methods.base.Method` (one interface: ``forward(batch, generator)``,
``on_train_step_end(step)``, ``encoder``, ``features(batch)``).  Each method class declares the data kinds it
trains on in its ``data_kinds`` attribute (the ``data.kind`` names of the training config: ``circuits``,
``pairs``, ``synthetic`` graphs; ``objects`` point clouds; ``scans``), the one place they are written;
:func:`method_data_kinds` and :data:`DATA_KINDS` read it through the class a builder's return annotation names
(:func:`method_class`), so a run can refuse the wrong data before anything is built.  A new method is
registered by adding its builder to :data:`METHODS` (return-annotated with its class), or from any module with
``@register_method(name)`` on the builder; the method contract
test (``tests/methods/test_contract.py``) covers it from then on (a tiny case in ``tests/methods/method_cases.py``
keeps that fast).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator, Mapping

from torch import nn

from geomask.masking.layout import RowLayout
from geomask.methods.compose import loss_section, masker_section, section_aliases
from geomask.methods.graphmae import build_graphmae
from geomask.methods.mgvga import MGVGA
from geomask.nn.cross_attention import AlignBlock
from geomask.nn.encoders import ENCODERS, build_encoder

__all__ = [
    "DATA_KINDS",
    "ENCODERS",
    "METHODS",
    "build_encoder",
    "build_method",
    "method_class",
    "method_data_kinds",
    "method_defaults",
    "method_keywords",
    "register_method",
]


def _mgvga(
    verilog_mode: str | None,
    *,
    encoder: str = "deepgcn",
    hidden: int = 64,
    layers: int = 7,
    num_types: int = 5,
    dropout: float = 0.0,
    gat_heads: int = 4,
    checkpoint_nodes: int | None = 100_000,
    decoder_layers: int = 1,
    mgm_ratio: float = 0.3,
    vga_ratio: float = 0.5,
    masker: Mapping | str | None = None,
    vga_masker: Mapping | str | None = None,
    loss: Mapping | str | None = None,
    verilog_dim: int = 384,
    cross_heads: int = 8,
    cross_layers: int = 2,
    mgm_weight: float = 1.0,
    vga_weight: float = 1.0,
    degree_weight: float = 0.1,
    head_dropout: float = 0.1,
    dedup: bool = True,
    num_relations: int = 1,
) -> MGVGA:
    enc = build_encoder(encoder, hidden, layers, dropout, gat_heads, checkpoint_nodes, num_relations)
    dec = build_encoder(encoder, hidden, decoder_layers, dropout, gat_heads, checkpoint_nodes, num_relations)
    align = None
    if verilog_mode is not None:
        align = nn.ModuleList(AlignBlock(hidden, verilog_dim, cross_heads, head_dropout) for _ in range(cross_layers))
    mgm_masker = masker_section(masker, {"name": "uniform", "ratio": mgm_ratio}, layout=RowLayout)
    vga = None
    if align is not None:
        vga_default = {"name": "uniform", "ratio": vga_ratio}
        vga = masker_section(vga_masker, vga_default, section="vga_masker", layout=RowLayout)
    return MGVGA(
        enc,
        hidden,
        num_types,
        mgm_decoder=dec,
        mgm_masker=mgm_masker,
        align=align,
        vga_masker=vga,
        loss=loss_section(loss, {"name": "cross_entropy"}),
        verilog_mode=verilog_mode or "chunks",
        mgm_weight=mgm_weight,
        vga_weight=vga_weight,
        degree_weight=degree_weight,
        head_dropout=head_dropout,
        dedup=dedup,
    )


@section_aliases(masker="mgm_ratio", vga_masker="vga_ratio")
def build_mgvga(**kwargs) -> MGVGA:
    """MGM + VGA, nodes attending over Verilog chunk embeddings."""
    return _mgvga("chunks", **kwargs)


@section_aliases(masker="mgm_ratio", vga_masker="vga_ratio")
def build_mgvga_single(**kwargs) -> MGVGA:
    """MGM + VGA attending to one pooled Verilog vector per design (the reference's behaviour)."""
    return _mgvga("single", **kwargs)


@section_aliases(masker="mgm_ratio")
def build_mgm(
    *,
    encoder: str = "deepgcn",
    hidden: int = 64,
    layers: int = 7,
    num_types: int = 5,
    dropout: float = 0.0,
    gat_heads: int = 4,
    checkpoint_nodes: int | None = 100_000,
    decoder_layers: int = 1,
    mgm_ratio: float = 0.3,
    masker: Mapping | str | None = None,
    loss: Mapping | str | None = None,
    degree_weight: float = 0.1,
    head_dropout: float = 0.1,
    dedup: bool = True,
    num_relations: int = 1,
) -> MGVGA:
    """Masked gate modeling only."""
    return _mgvga(
        None,
        encoder=encoder,
        hidden=hidden,
        layers=layers,
        num_types=num_types,
        dropout=dropout,
        gat_heads=gat_heads,
        checkpoint_nodes=checkpoint_nodes,
        decoder_layers=decoder_layers,
        mgm_ratio=mgm_ratio,
        masker=masker,
        loss=loss,
        degree_weight=degree_weight,
        head_dropout=head_dropout,
        dedup=dedup,
        num_relations=num_relations,
    )


# Builders of the point and scan methods live in their own files and load on first use (they pull in the
# sparse and point stacks, which circuit users need not import): "module:function".
METHODS: dict[str, Callable[..., nn.Module] | str] = {
    "mgvga": build_mgvga,
    "mgvga_single": build_mgvga_single,
    "mgm": build_mgm,
    "graphmae": build_graphmae,
    "pointmae": "geomask.methods.pointmae:build_pointmae",
    "pointbert": "geomask.methods.pointbert:build_pointbert",
    "msm": "geomask.methods.msm:build_msm",
    "cpcm": "geomask.methods.cpcm:build_cpcm",
}


def register_method(name: str) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator: register a method builder under ``name`` in :data:`METHODS` (configs and the contract test see it).

    The builder takes keyword-only arguments (a config's ``method:`` keys; ``masker`` / ``loss`` sections through
    :mod:`geomask.methods.compose`) and is return-annotated with its :class:`~geomask.methods.base.Method` class,
    whose ``data_kinds`` say what it trains on.

    Raises:
        ValueError: ``name`` is registered already, with another builder.
    """

    def deco(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        old = METHODS.get(name)
        if old is not None and old is not fn:
            raise ValueError(f"method {name!r} is already registered ({getattr(old, '__qualname__', old)})")
        METHODS[name] = fn
        return fn

    return deco


def method_class(name: str) -> type | None:
    """The class method ``name``'s builder returns, from its return annotation (``None``: not annotated)."""
    fn = _builder(name)
    try:
        ret = inspect.signature(fn, eval_str=True).return_annotation
    except (NameError, TypeError):
        return None
    return ret if isinstance(ret, type) else None


def method_data_kinds(name: str) -> tuple[str, ...] | None:
    """The data kinds method ``name`` trains on, its class's ``data_kinds`` (``None``: unknown name or not
    declared, anything goes).  Imports the method's module (the point and scene stacks load on first use)."""
    if name not in METHODS:
        return None
    kinds = tuple(getattr(method_class(name), "data_kinds", ()))
    return kinds or None


class _DataKinds(Mapping[str, tuple[str, ...]]):
    """Read-only ``{method name: data kinds}`` over :data:`METHODS`, read from the classes when looked up."""

    def __getitem__(self, name: str) -> tuple[str, ...]:
        kinds = method_data_kinds(name)
        if kinds is None:
            raise KeyError(name)
        return kinds

    def __iter__(self) -> Iterator[str]:
        return (name for name in METHODS if method_data_kinds(name) is not None)

    def __len__(self) -> int:
        return sum(1 for _ in self)


# The data kinds (``data.kind`` of the training config) each method trains on, as its class declares them:
# circuit-graph methods take AIG graphs with or without Verilog, point methods object clouds [B, N, 3], scene
# methods prepared scans or generated scenes.
DATA_KINDS: Mapping[str, tuple[str, ...]] = _DataKinds()


def _builder(name: str) -> Callable[..., nn.Module]:
    fn = METHODS[name]
    if isinstance(fn, str):
        import importlib

        module, attr = fn.split(":")
        fn = getattr(importlib.import_module(module), attr)
    return fn


def method_keywords(name: str) -> tuple[str, ...]:
    """The keywords the builder of ``name`` accepts."""
    fn = _builder(name)
    if fn in (build_mgvga, build_mgvga_single):
        fn = _mgvga
    return tuple(p.name for p in inspect.signature(fn).parameters.values() if p.kind is p.KEYWORD_ONLY)


def method_defaults(name: str) -> dict[str, object]:
    """The builder's keyword defaults of method ``name`` (keywords without a default are left out)."""
    fn = _builder(name)
    if fn in (build_mgvga, build_mgvga_single):
        fn = _mgvga
    params = inspect.signature(fn).parameters.values()
    return {p.name: p.default for p in params if p.kind is p.KEYWORD_ONLY and p.default is not p.empty}


def build_method(name: str, **kwargs) -> nn.Module:
    """Build a registered method.

    Args:
        name: one of :data:`METHODS`.
        **kwargs: the builder's keywords.

    Raises:
        ValueError: unknown method name or keyword (the message lists the valid ones).
    """
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; valid: {', '.join(sorted(METHODS))}")
    valid = method_keywords(name)
    unknown = sorted(set(kwargs) - set(valid))
    if unknown:
        raise ValueError(f"unknown keyword(s) {', '.join(unknown)} for method {name!r}; valid: {', '.join(valid)}")
    return _builder(name)(**kwargs)
