"""Training configuration: YAML sections as dataclasses, ``--set key=value`` overrides, strict keys.

A config has five top-level sections::

    seed: 0
    method:  {name: mgvga, ...keyword arguments of the method's builder}
    data:    {kind, roots, batch_size, not_nodes, num_workers, val_fraction, pack_length, synthetic: {...},
             objects: {...},
             corpus: {...}, scenes: {...}, shapes: {...}, images: {...}, generated_text: {...},
             generated_peptides: {...}}
    optim:   {name, lr, weight_decay, betas, scheduler, warmup_steps, min_lr, schedule_steps, grad_clip}
    trainer: {max_steps, out_dir, accelerator, devices, num_nodes, strategy, find_unused, precision, log_every,
              checkpoint_every, keep_checkpoints, val_every, resume, progress_bar, loggers, summary, threads}

Every key except the method's keyword arguments is known here; any other key raises :class:`ConfigError`
naming the key and its section.  The method's keywords are checked by
:func:`geomask.methods.registry.build_method` when the method is built.  Defaults live only in the
dataclass fields below.

Overrides are ``SECTION.KEY=VALUE`` (nested: ``data.synthetic.graphs=32``); ``VALUE`` is parsed as YAML
(``true``, ``3``, ``1e-3``, ``[a, b]``) and coerced to the field's type (``"3"`` for an ``int`` field is 3,
``2`` for a ``float`` field is 2.0, a single string for a list field is a one-element list).

The sections are an OmegaConf structured config (:class:`_Schema`: these dataclasses, the method section open):
OmegaConf merges the file and the overrides onto the defaults, refuses unknown keys, converts values to the field
types and resolves interpolations: ``${optim.lr}`` is another key's value (of any section, the method's keywords
included; ``${.hidden}`` is a key of the same section), ``runs/${method.name}`` a string built from one,
``${oc.env:VAR,default}`` an environment variable; ``\\${`` writes a literal ``${``.  Interpolations are resolved
once, at load: a stored ``config.yaml`` holds the values.  Before OmegaConf sees a value written out, it applies
the rules above that OmegaConf lacks or differs on (:func:`_written`); an interpolated value gets OmegaConf's
conversions.  OmegaConf is imported by the first load, not with this module (listing configs stays quick).

A config is a YAML file, or the name of a config shipped with the package (``mgm_cpu``, also written
``configs/mgm_cpu.yaml`` from any folder where that path does not exist): :func:`available_configs` lists them,
:func:`config_descriptions` gives each one's leading comment, :func:`resolve_config` finds one.

Error messages are one line, ``SECTION.KEY: what is wrong`` (``data.roots: no such folder: X``), prefixed
with the config file when there is one.

Which keys make two runs different: :data:`RUN_ONLY_KEYS` change how a run is carried out and recorded, never
what it computes (where it lives, logging, checkpoint cadence, CPU threads, loader workers); every other key
does.  :func:`config_differences` compares two configs on the others, with the learning-rate schedule's length
compared as its effective value (``optim.schedule_steps``, or ``trainer.max_steps`` when that is 0), so
``trainer.max_steps`` alone may grow ("train longer") as long as the schedule stays the same.  The engine
resumes a run folder only when this comparison finds nothing (see :mod:`geomask.train.engine`).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import re
import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from geomask.datasets.kinds import AUTO, data_kind_choices, get_data_kind
from geomask.errors import UsageError

__all__ = [
    "RUN_ONLY_KEYS",
    "Config",
    "ConfigError",
    "DataConfig",
    "GeneratedPeptidesConfig",
    "GeneratedTextConfig",
    "ImagesConfig",
    "MethodConfig",
    "OptimConfig",
    "ScenesConfig",
    "ShapesConfig",
    "SyntheticConfig",
    "TrainerConfig",
    "apply_override",
    "available_configs",
    "config_descriptions",
    "config_differences",
    "config_to_dict",
    "load_config",
    "resolve_config",
]

NOT_MODES = ("per_edge", "shared", "attr")
OPTIMIZERS = ("adamw", "adam", "sgd", "lamb")
SCHEDULERS = ("none", "cosine", "linear")
ACCELERATORS = ("auto", "cpu", "gpu", "cuda", "mps")
LOGGERS = ("csv", "tensorboard")
IMAGE_NORMALIZE = ("dataset", "imagenet", "none")  # geomask.datasets.images.NORMALIZE (not imported: no torch here)


def __getattr__(name: str) -> Any:
    # DATA_KINDS: the values data.kind may take, ``auto`` and every kind registered at the time of asking
    # (geomask.datasets.kinds); a view, so that kinds registered after this import count too
    if name == "DATA_KINDS":
        return data_kind_choices()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class ConfigError(UsageError):
    """A bad training config: an unknown key, a value of the wrong type, or a value out of range.

    The message is one line, ``[SOURCE: ]SECTION.KEY: MESSAGE`` (``trainer.max_steps: expected an integer,
    got 'abc'``), or ``[SOURCE: ]MESSAGE`` when ``bare`` (the message names the key itself) or ``key`` is empty.

    Args:
        section: dotted section name (``"trainer"``, ``"data.synthetic"``; ``""`` for the top level).
        key: the offending key.
        message: what is wrong.
        source: the config file, when there is one.
        bare: the message is a whole sentence already: no ``SECTION.KEY:`` in front.
    """

    def __init__(
        self, section: str, key: str, message: str, source: str | Path | None = None, *, bare: bool = False
    ) -> None:
        self.section = section
        self.key = key
        self.source = None if source is None else str(source)
        where = f"{self.source}: " if self.source else ""
        name = f"{section}.{key}" if section else key
        super().__init__(f"{where}{message}" if bare or not key else f"{where}{name}: {message}")


@dataclass
class SyntheticConfig:
    """Random AIGs made on the fly (``data.kind: synthetic``); ranges are inclusive ``[low, high]``.

    ``verilog_dim > 0`` attaches random ``verilog_emb [C, D]`` / ``verilog_vec [1, D]`` to a
    ``verilog_fraction`` of the graphs, standing in for the Verilog-AIG pairs dataset.
    """

    graphs: int = 64
    inputs: list[int] = field(default_factory=lambda: [4, 10])
    ands: list[int] = field(default_factory=lambda: [16, 48])
    outputs: list[int] = field(default_factory=lambda: [1, 4])
    verilog_dim: int = 0
    verilog_chunks: list[int] = field(default_factory=lambda: [1, 6])
    verilog_fraction: float = 1.0


@dataclass
class ObjectsConfig:
    """Labelled synthetic object clouds (``data.kind: objects``) for the point methods: ``num_objects`` clouds of
    ``num_points`` points each, sampled from primitive shapes (:mod:`geomask.points.synthetic`)."""

    num_objects: int = 256
    num_points: int = 1024
    noise: float = 0.01


@dataclass
class CorpusConfig:
    """The embedded Verilog corpus as training data (``data.kind: corpus`` or ``corpus_pairs``): ``designs`` of its
    400 designs (evenly spaced over their names), built once into ``cache`` (empty: ``$GEOMASK_CACHE``, else
    ``<repo>/out/cache``) with ``jobs`` parallel conversions; ``corpus_pairs`` adds ``recipes`` ABC variants per
    design and embeds the Verilog with ``text_encoder`` (empty: the model-free ``hashing`` encoder at the method's
    ``verilog_dim``)."""

    designs: int = 60
    cache: str = ""
    jobs: int = 2
    recipes: int = 1
    text_encoder: str = ""


@dataclass
class ScenesConfig:
    """GENERATED indoor scenes (``data.kind: scenes``; synthetic rooms, not real scans) for the scene methods:
    ``scenes`` rooms of ``points`` points from seed ``seed`` (the set's own, not the run's: runs share one set),
    built once into ``cache`` (empty: ``$GEOMASK_CACHE``, else ``<repo>/out/cache``);
    :mod:`geomask.datasets.generated_scenes`."""

    scenes: int = 8
    points: int = 20000
    seed: int = 0
    cache: str = ""


@dataclass
class ShapesConfig:
    """GENERATED pictures of drawn shapes (``data.kind: shapes``; 10 classes, not real images): ``images`` of
    ``size × size`` pixels from seed ``seed``, built once into ``cache`` (as :class:`ScenesConfig`);
    :mod:`geomask.datasets.generated_images`."""

    images: int = 2000
    size: int = 32
    seed: int = 0
    cache: str = ""


@dataclass
class GeneratedTextConfig:
    """GENERATED sentences of a small grammar (``data.kind: generated_text``; not real text): ``lines`` lines of
    ``sentences_per_line`` sentences from seed ``seed``, a WordPiece tokenizer of ``vocab_size`` trained on them,
    built once into ``cache`` (as :class:`ScenesConfig`); :mod:`geomask.datasets.text`."""

    lines: int = 2000
    sentences_per_line: int = 3
    seed: int = 0
    vocab_size: int = 200
    cache: str = ""


@dataclass
class GeneratedPeptidesConfig:
    """GENERATED receptor-peptide pairs (``data.kind: generated_peptides``; a learnable rule, not real binders):
    ``pairs`` pairs from seed ``seed``, built once into ``cache`` (as :class:`ScenesConfig`);
    :mod:`geomask.datasets.peptides`."""

    pairs: int = 2000
    seed: int = 0
    cache: str = ""


@dataclass
class ImagesConfig:
    """Image batches (``data.kind: images`` or ``shapes``): the random resized crop (area ``crop_scale``, aspect
    ``crop_ratio``) and horizontal flip drawn by the method from each training step's generator (``augment``),
    the normalisation (``dataset``: the folder's per-channel mean/std, ``imagenet``, ``none``) and the batch's
    patch size; :class:`geomask.datasets.images.ImagesOptions`."""

    augment: bool = True
    crop_scale: list[float] = field(default_factory=lambda: [0.2, 1.0])
    crop_ratio: list[float] = field(default_factory=lambda: [0.75, 1.3333333333333333])
    flip: bool = True
    normalize: str = "dataset"
    patch_size: int = 16


@dataclass
class DataConfig:
    """Where the training data comes from and how it is batched.

    ``kind``: a registered data kind (:mod:`geomask.datasets.kinds`: ``circuits``, ``pairs``, ``scans``,
    ``images`` read ``roots``, folders of ``geomask prep``; ``synthetic`` random AIGs and ``objects`` point clouds
    are made from the sections of the same names; ``corpus``, ``corpus_pairs`` are built from the embedded corpus,
    ``scenes`` (generated rooms) and ``shapes`` (generated pictures) are generated, each from its section below),
    or ``auto`` (each root by the kind in its ``manifest.json``).  A default-data kind (``corpus``,
    ``corpus_pairs``, ``scenes``, ``shapes``) with ``roots`` set reads those folders instead (as ``auto``).  Items of
    different groups (graphs with and without Verilog fields) never share a batch.  ``val_fraction`` of the
    items (by a seeded permutation) is held out for validation.  ``not_nodes`` is the NOT mode of graph kinds;
    ``images`` the crop, flip and normalisation of image batches.  ``pack_length > 0`` packs the sequences of a
    text/sequence batch into rows of that many tokens (:func:`geomask.sequences.packing.collate_packed`: first-fit
    decreasing, attention kept within each sequence, positions restarting; ``mlm`` takes packed batches); 0 pads
    each batch to its longest sequence.
    """

    kind: str = "auto"
    roots: list[str] = field(default_factory=list)
    batch_size: int = 8
    not_nodes: str = "per_edge"
    num_workers: int = 0
    val_fraction: float = 0.0
    pack_length: int = 0
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)
    objects: ObjectsConfig = field(default_factory=ObjectsConfig)
    corpus: CorpusConfig = field(default_factory=CorpusConfig)
    scenes: ScenesConfig = field(default_factory=ScenesConfig)
    shapes: ShapesConfig = field(default_factory=ShapesConfig)
    images: ImagesConfig = field(default_factory=ImagesConfig)
    generated_text: GeneratedTextConfig = field(default_factory=GeneratedTextConfig)
    generated_peptides: GeneratedPeptidesConfig = field(default_factory=GeneratedPeptidesConfig)


@dataclass
class OptimConfig:
    """Optimiser and learning-rate schedule: ``warmup_steps`` of linear warm-up, then ``scheduler`` decay to
    ``min_lr`` at step ``schedule_steps`` (0: ``trainer.max_steps``; set it when a run will be continued
    to a larger ``max_steps``, so the schedule does not change); ``grad_clip > 0`` clips the gradient norm."""

    name: str = "adamw"
    lr: float = 1e-3
    weight_decay: float = 0.0
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    scheduler: str = "none"
    warmup_steps: int = 0
    min_lr: float = 0.0
    schedule_steps: int = 0
    grad_clip: float = 0.0


@dataclass
class TrainerConfig:
    """The Lightning trainer: steps, hardware, distribution, logging and checkpoints.

    ``devices`` is a count or ``"auto"``; ``strategy`` is a Lightning strategy name (``auto``, ``ddp``,
    ``ddp_spawn``, ...); on CPU ``ddp`` communicates over gloo.  ``find_unused`` is DDP's
    ``find_unused_parameters``: needed when a batch may leave parameters idle (MGVGA's alignment on graphs
    without Verilog); set it false for a little speed when every batch uses every parameter.
    ``checkpoint_every`` steps a checkpoint is written and ``last.ckpt`` updated; ``keep_checkpoints``
    periodic ones are kept (-1: all).  ``val_every`` steps (0: only at the end) the validation split is
    evaluated.  ``resume`` decides what happens when ``out_dir`` already holds a run
    (``checkpoints/last.ckpt``): ``auto`` continues it only when its ``config.yaml`` equals this config up to
    :data:`RUN_ONLY_KEYS` (and refuses, naming the keys that differ, otherwise); ``true`` (``--resume``)
    continues it anyway where the weights fit; ``false`` starts over there (its checkpoints are deleted first).
    A run already at ``max_steps`` is not run again.  ``threads > 0``
    sets torch's CPU threads per process for the run (small graphs train fastest on one); 0 keeps torch's
    (Lightning's, under DDP) choice.
    """

    max_steps: int = 1000
    out_dir: str = "runs/default"
    accelerator: str = "auto"
    devices: int | str = 1
    num_nodes: int = 1
    strategy: str = "auto"
    find_unused: bool = True
    precision: str = "32-true"
    log_every: int = 10
    checkpoint_every: int = 500
    keep_checkpoints: int = 3
    val_every: int = 0
    resume: bool | str = "auto"
    progress_bar: bool = True
    loggers: list[str] = field(default_factory=lambda: ["csv", "tensorboard"])
    summary: bool = True
    threads: int = 0


@dataclass
class MethodConfig:
    """The method's registry ``name`` and the keyword arguments of its builder (checked by the registry)."""

    name: str = "mgvga"
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass
class ScanEvalConfig:
    """The scan probes' budget (``geomask eval probe|weak --config``); ``geomask pretrain`` ignores it."""

    crop_points: int = 20000
    probe_epochs: int = 300
    knn_k: int = 20
    knn_bank: int = 20000
    sample_mode: str = "nearest"
    label_map: str | None = None


@dataclass
class Config:
    """A whole training config."""

    seed: int = 0
    method: MethodConfig = field(default_factory=MethodConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    scan_eval: ScanEvalConfig = field(default_factory=ScanEvalConfig)


# ---------------------------------------------------------------------------------------------------
# the OmegaConf schema, today's coercion rules where OmegaConf's differ, OmegaConf's errors in our words


@dataclass
class _Schema:
    """The tree OmegaConf checks: :class:`Config` with the method's name beside its keywords (an open section)."""

    seed: int = Config.seed
    method: dict[str, Any] = field(default_factory=dict)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    scan_eval: ScanEvalConfig = field(default_factory=ScanEvalConfig)


_SCALARS = (int, float, bool, str, str | None)
_REFERENCE = re.compile(r"\$\{[^${}]*\}")  # one whole interpolation, ``${optim.lr}``: may stand for a list


def _written(value: Any, tp: Any, section: str, key: str, source: str | None) -> Any:
    """A value written out, made ready for OmegaConf under the module's rules where OmegaConf's differ: a single
    value for a list field is a one-element list (OmegaConf refuses it), an integral float for an ``int`` field is
    that integer (refused too); a YAML boolean is no string (``off`` is not ``"False"``), a boolean only true,
    false, 0 or 1, a list item no section (OmegaConf accepts these three).  A value with an interpolation is left
    to OmegaConf, which converts it once resolved; OmegaConf's "no value", ``???``, would keep the default."""
    if isinstance(value, str) and value == "???":
        raise ConfigError(section, key, "no value given ('???')", source)
    if isinstance(value, str) and "${" in value and (typing.get_origin(tp) is not list or _REFERENCE.fullmatch(value)):
        return value
    if typing.get_origin(tp) is list:
        items = value if isinstance(value, (list, tuple)) else [value]
        return [_written(v, typing.get_args(tp)[0], section, key, source) for v in items]
    if tp is int and isinstance(value, float) and value.is_integer():
        return int(value)
    if tp in _SCALARS and (
        isinstance(value, (Mapping, list, tuple))
        or (isinstance(value, bool) and tp in (str, str | None))
        or (tp is bool and type(value) is int and value not in (0, 1))
    ):
        raise ConfigError(section, key, f"expected {_type_name(tp)}, got {value!r}", source)
    return value


def _normalise(values: Mapping[str, Any], cls: type, section: str, source: str | None) -> dict[str, Any]:
    """The raw tree of dataclass ``cls`` with :func:`_written` applied to every known leaf (OmegaConf reports
    unknown keys)."""
    hints = typing.get_type_hints(cls)
    out = {}
    for k, v in values.items():
        tp = hints.get(k, Any)
        if not dataclasses.is_dataclass(tp):
            out[k] = _written(v, tp, section, k, source)
        elif isinstance(v, Mapping):
            out[k] = _normalise(v, tp, f"{section}.{k}" if section else k, source)
        else:
            raise ConfigError(section, k, f"expected a mapping of keys, got {v!r}", source)
    return out


def _field_type(path: str) -> Any:
    """The declared type at a dotted ``path`` of :class:`_Schema` (``trainer.loggers[1]``: a list's item type)."""
    tp: Any = _Schema
    for part in path.split("."):
        name, _, index = part.partition("[")
        tp = typing.get_type_hints(tp).get(name, Any) if dataclasses.is_dataclass(tp) else Any
        if index and typing.get_origin(tp) is list:
            tp = typing.get_args(tp)[0]
    return tp


def _config_error(e: Exception, source: str | None) -> ConfigError:
    """An OmegaConf error as a one-line :class:`ConfigError` in this module's words, naming the key."""
    from omegaconf.errors import (
        ConfigKeyError,
        GrammarParseError,
        InterpolationResolutionError,
        InterpolationValidationError,
        MissingMandatoryValue,
        ValidationError,
    )

    full = getattr(e, "full_key", None) or ""
    section, _, key = re.sub(r"\[\d+\]", "", full).rpartition(".")  # a list's item is reported as the list
    first = str(getattr(e, "msg", e)).splitlines()[0]
    tp = _field_type(full)
    if isinstance(e, ConfigKeyError) and dataclasses.is_dataclass(e.object_type):
        where = f"in section '{section}'" if section else "at the top level"
        names = ", ".join(f.name for f in dataclasses.fields(e.object_type))
        return ConfigError(section, key, f"unknown key {key!r} {where}; valid keys: {names}", source, bare=True)
    if typing.get_origin(tp) in (typing.Union, types.UnionType):  # named as its first type, as before OmegaConf
        tp = typing.get_args(tp)[0]
    if isinstance(e, ValidationError) and tp is not Any:
        ref = re.search(r"interpolation '(.*?)'", first) if isinstance(e, InterpolationValidationError) else None
        how = f" (from {ref[1]})" if ref else ""
        return ConfigError(section, key, f"expected {_type_name(tp)}, got {_plain(e.value)!r}{how}", source)
    if isinstance(e, MissingMandatoryValue):
        return ConfigError(section, key, "no value given ('???')", source)
    what = f"{first[:1].lower()}{first[1:]}"
    if isinstance(e, (InterpolationResolutionError, GrammarParseError)):
        what = f"cannot resolve: {what}"
    return ConfigError(section, key, what, source)


@functools.cache
def _schema() -> Any:
    """The defaults as a read-only OmegaConf node, built once (half the time of a load): a merge copies it."""
    from omegaconf import OmegaConf

    node = OmegaConf.structured(_Schema)
    OmegaConf.set_readonly(node, True)
    return node


def _structured(raw: dict[str, Any], source: str | None) -> Config:
    """``raw`` merged onto the defaults by OmegaConf, interpolations resolved, as a :class:`Config`."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    method = raw.get("method")
    if isinstance(method, Mapping) and "name" not in method:
        raise ConfigError("method", "name", "the method needs a name", source)
    try:
        tree = OmegaConf.to_object(OmegaConf.merge(_schema(), _normalise(raw, _Schema, "", source)))
    except OmegaConfBaseException as e:
        raise _config_error(e, source) from None
    kwargs = dict(tree.method)
    name = kwargs.pop("name", MethodConfig.name)
    if isinstance(name, bool) or not isinstance(name, (str, int, float)):
        raise ConfigError("method", "name", f"expected a string, got {name!r}", source)
    sections = {f.name: getattr(tree, f.name) for f in dataclasses.fields(Config) if f.name != "method"}
    return Config(method=MethodConfig(name=str(name), kwargs=kwargs), **sections)


def _type_name(tp: Any) -> str:
    """``int`` → "an integer", ``list[str]`` → "a list", ``int | str`` → "an integer or a string", ..."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp) if a is not type(None))
    if dataclasses.is_dataclass(tp) or origin is dict or tp is dict:
        return "a mapping of keys"
    if origin is list:
        return "a list"
    names = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}
    return names.get(tp, getattr(tp, "__name__", str(tp)))


def _check(cfg: Config, source: str | None) -> None:
    """Value ranges and choices."""

    def choice(section: str, key: str, value: Any, allowed: Iterable[str]) -> None:
        if value not in allowed:
            raise ConfigError(section, key, f"must be one of {', '.join(allowed)}, got {value!r}", source)

    def positive(section: str, key: str, value: float, allow_zero: bool = False) -> None:
        if value < 0 or (value == 0 and not allow_zero):
            raise ConfigError(section, key, f"must be {'>= 0' if allow_zero else '> 0'}, got {value}", source)

    d, o, t = cfg.data, cfg.optim, cfg.trainer
    choice("data", "kind", d.kind, data_kind_choices())
    choice("data", "not_nodes", d.not_nodes, NOT_MODES)
    positive("data", "batch_size", d.batch_size)
    positive("data", "pack_length", d.pack_length, allow_zero=True)
    positive("data", "num_workers", d.num_workers, allow_zero=True)
    if not 0.0 <= d.val_fraction < 1.0:
        raise ConfigError("data", "val_fraction", f"must be in [0, 1), got {d.val_fraction}", source)
    if (d.kind == AUTO or get_data_kind(d.kind).reads_folders) and not d.roots:
        raise ConfigError("data", "roots", f"empty, but data.kind {d.kind!r} needs at least one dataset folder", source)
    s = cfg.data.synthetic
    for key in ("inputs", "ands", "outputs", "verilog_chunks"):
        r = getattr(s, key)
        if len(r) != 2 or r[0] > r[1] or r[0] < (0 if key == "ands" else 1):
            low = 0 if key == "ands" else 1
            raise ConfigError("data.synthetic", key, f"must be a range [low, high] with low >= {low}, got {r}", source)
    positive("data.synthetic", "graphs", s.graphs)
    positive("data.synthetic", "verilog_dim", s.verilog_dim, allow_zero=True)
    positive("data.objects", "num_objects", d.objects.num_objects)
    positive("data.objects", "num_points", d.objects.num_points)
    positive("data.objects", "noise", d.objects.noise, allow_zero=True)
    positive("data.corpus", "designs", d.corpus.designs)
    positive("data.corpus", "jobs", d.corpus.jobs)
    positive("data.corpus", "recipes", d.corpus.recipes, allow_zero=True)
    positive("data.scenes", "scenes", d.scenes.scenes)
    positive("data.scenes", "points", d.scenes.points)
    positive("data.shapes", "images", d.shapes.images)
    positive("data.generated_text", "lines", d.generated_text.lines)
    positive("data.generated_text", "sentences_per_line", d.generated_text.sentences_per_line)
    positive("data.generated_text", "vocab_size", d.generated_text.vocab_size)
    positive("data.generated_peptides", "pairs", d.generated_peptides.pairs)
    if d.shapes.size < 8:
        raise ConfigError("data.shapes", "size", f"must be >= 8, got {d.shapes.size}", source)
    choice("data.images", "normalize", d.images.normalize, IMAGE_NORMALIZE)
    positive("data.images", "patch_size", d.images.patch_size)
    for key, top in (("crop_scale", 1.0), ("crop_ratio", math.inf)):
        r = getattr(d.images, key)
        if len(r) != 2 or not 0 < r[0] <= r[1] <= top:
            bound = "low <= high <= 1" if top == 1.0 else "low <= high"
            raise ConfigError("data.images", key, f"must be two numbers [low, high] with 0 < {bound}, got {r}", source)
    choice("optim", "name", o.name, OPTIMIZERS)
    choice("optim", "scheduler", o.scheduler, SCHEDULERS)
    positive("optim", "lr", o.lr)
    positive("optim", "warmup_steps", o.warmup_steps, allow_zero=True)
    positive("optim", "schedule_steps", o.schedule_steps, allow_zero=True)
    positive("optim", "grad_clip", o.grad_clip, allow_zero=True)
    positive("optim", "min_lr", o.min_lr, allow_zero=True)
    if len(o.betas) != 2:
        raise ConfigError("optim", "betas", f"must be two numbers, got {o.betas}", source)
    choice("trainer", "accelerator", t.accelerator, ACCELERATORS)
    for key in ("max_steps", "log_every", "checkpoint_every", "num_nodes"):
        positive("trainer", key, getattr(t, key))
    positive("trainer", "val_every", t.val_every, allow_zero=True)
    positive("trainer", "threads", t.threads, allow_zero=True)
    if t.keep_checkpoints == 0 or t.keep_checkpoints < -1:
        raise ConfigError("trainer", "keep_checkpoints", f"must be >= 1 or -1 (all), got {t.keep_checkpoints}", source)
    if isinstance(t.devices, str) and t.devices != "auto":
        raise ConfigError("trainer", "devices", f"must be a count or 'auto', got {t.devices!r}", source)
    if isinstance(t.devices, int) and t.devices < 1:
        raise ConfigError("trainer", "devices", f"must be >= 1, got {t.devices}", source)
    for lg in t.loggers:
        choice("trainer", "loggers", lg, LOGGERS)
    if isinstance(t.resume, str) and t.resume != "auto":
        raise ConfigError("trainer", "resume", f"must be auto, true or false, got {t.resume!r}", source)


# ---------------------------------------------------------------------------------------------------
# public API


def apply_override(raw: dict[str, Any], override: str) -> None:
    """Apply one ``SECTION.KEY=VALUE`` override to a raw (not yet validated) config dict, in place."""
    if "=" not in override:
        msg = f"override {override!r} is not KEY=VALUE (e.g. trainer.max_steps=100)"
        raise ConfigError("", override, msg, bare=True)
    key, text = override.split("=", 1)
    parts = [p for p in key.strip().split(".") if p]
    if not parts:
        raise ConfigError("", key, f"override {override!r} has no key before '='", bare=True)
    try:
        value = yaml.safe_load(text) if text.strip() else ""
    except yaml.YAMLError:
        value = text
    node = raw
    for i, p in enumerate(parts[:-1]):
        child = node.get(p)
        if child is None:
            child = node[p] = {}
        if not isinstance(child, dict):
            msg = f"override {override!r}: {'.'.join(parts[: i + 1])} is a value, not a section"
            raise ConfigError(".".join(parts[:i]), p, msg, bare=True)
        node = child
    node[parts[-1]] = value


def _read(path: Path) -> dict[str, Any]:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError("", "", f"no such config file: {path}") from None
    except IsADirectoryError:
        raise ConfigError("", "", f"{path} is a folder, not a config file") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError("", "", f"not valid YAML{where}", path) from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError("", "", "the config must be a mapping of sections", path)
    return raw


def _configs_dir() -> Path | None:
    """The configs shipped with the package (``geomask/configs``, a link to the checkout's ``configs/``)."""
    from importlib.resources import files

    folder = files("geomask") / "configs"
    return Path(str(folder)) if folder.is_dir() else None


def available_configs() -> dict[str, Path]:
    """The configs shipped with the package: name (the file name without ``.yaml``) → path, sorted by name."""
    folder = _configs_dir()
    if folder is None:
        return {}
    return {p.stem: p for p in sorted(folder.glob("*.yaml"), key=lambda p: p.stem)}


def config_descriptions() -> dict[str, str]:
    """Each shipped config's one-line description (its first comment line; ``""`` without one), sorted by name."""
    out = {}
    for name, path in available_configs().items():
        first = ""
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                first = line.strip().lstrip("#").strip() if line.lstrip().startswith("#") else ""
                break
        out[name] = first
    return out


def resolve_config(config: str | Path) -> Path:
    """The YAML file that ``config`` names: an existing file, else a shipped config.

    A shipped config is named bare (``mgm_cpu``, ``mgm_cpu.yaml``) or as ``configs/mgm_cpu.yaml``; the latter
    two only when no such file exists where the command runs, so a local file always wins.

    Raises:
        ConfigError: no such file and no such shipped config (the message lists the shipped names).
    """
    path = Path(config)
    if path.exists():
        return path
    shipped = available_configs()
    names = ", ".join(shipped) or "(none)"
    parts = path.parts
    yaml_suffix = path.suffix in (".yaml", ".yml")
    if len(parts) == 1 or (len(parts) == 2 and parts[0] == "configs"):
        name = path.stem if yaml_suffix else path.name
        if name in shipped:
            return shipped[name]
        if not yaml_suffix and len(parts) == 1:
            raise ConfigError("", "", f"unknown config {str(config)!r}: not a file, nor one of {names}")
    raise ConfigError("", "", f"no such config file: {config} (shipped configs: {names})")


def load_config(config: Config | Mapping[str, Any] | str | Path, overrides: Iterable[str] = ()) -> Config:
    """A validated :class:`Config` from a YAML file, a dict or a ``Config``, with ``overrides`` applied.

    Raises:
        ConfigError: an unknown key (naming it and its section), a wrong type or a value out of range.
    """
    source: str | None = None
    if isinstance(config, Config):
        raw = config_to_dict(config)
    elif isinstance(config, Mapping):
        raw = _plain(config)
    else:
        path = resolve_config(config)
        source = str(path)
        raw = _read(path)
    for o in overrides:
        apply_override(raw, o)
    cfg = _structured(raw, source)
    _check(cfg, source)
    _settle_data(cfg)
    return cfg


def _settle_data(cfg: Config) -> None:
    """Fill in what the data section leaves to other sections: a default-data kind with ``roots`` set reads those
    folders (``auto``); ``corpus_pairs`` embeds with ``hashing`` at the method's ``verilog_dim`` unless told."""
    d = cfg.data
    if d.roots and d.kind != AUTO and get_data_kind(d.kind).default_data:
        d.kind = AUTO
    if d.kind == "corpus_pairs" and not d.corpus.text_encoder:
        dim = cfg.method.kwargs.get("verilog_dim", 384)  # MGVGA's default; the method checks the value itself
        d.corpus.text_encoder = f"hashing:{dim if isinstance(dim, int) and dim > 0 else 384}"


def _plain(obj: Any) -> Any:
    """Deep copy into plain Python containers (dict, list, str, int, float, bool, None)."""
    if isinstance(obj, Mapping):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    return obj


def config_to_dict(cfg: Config) -> dict[str, Any]:
    """The config as a plain nested dict (the YAML layout: the method's keywords beside its name)."""
    out = _plain(dataclasses.asdict(cfg))
    method = out.pop("method")
    out["method"] = {"name": method["name"], **method["kwargs"]}
    return {k: out[k] for k in ("seed", "method", "data", "optim", "trainer")}


RUN_ONLY_KEYS = frozenset(
    {
        "trainer.out_dir",
        "trainer.resume",
        "trainer.max_steps",  # compared through the schedule's length (optim.schedule_steps), see below
        "trainer.progress_bar",
        "trainer.summary",
        "trainer.loggers",
        "trainer.log_every",
        "trainer.checkpoint_every",
        "trainer.keep_checkpoints",
        "trainer.val_every",  # validation draws its own generators: it never changes training
        "trainer.threads",
        "trainer.find_unused",
        "data.num_workers",  # batches are step-indexed: the same with any number of loader processes
    }
)
"""Config keys that cannot change what a run computes: a run folder resumes across changes of these."""


def _flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in tree.items():
        name = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(_flatten(v, f"{name}."))
        else:
            out[name] = v
    return out


def _comparable(cfg: Config, method_defaults: Mapping[str, Any]) -> dict[str, Any]:
    flat = _flatten(config_to_dict(cfg))
    for k, v in method_defaults.items():  # a keyword left at its default equals the default written out
        flat.setdefault(f"method.{k}", v)
    if cfg.optim.scheduler == "none":
        flat.pop("optim.schedule_steps", None)  # no decay: the schedule has no length
    else:
        flat["optim.schedule_steps"] = cfg.optim.schedule_steps or cfg.trainer.max_steps
    flat["data.roots"] = [str(Path(r).resolve()) for r in cfg.data.roots]
    return {k: v for k, v in flat.items() if k not in RUN_ONLY_KEYS}


_UNSET = "(unset)"


def config_differences(
    old: Config, new: Config, method_defaults: Mapping[str, Any] | None = None
) -> dict[str, tuple[Any, Any]]:
    """The keys (dotted) on which two configs would compute differently: key → (old value, new value).

    Keys in :data:`RUN_ONLY_KEYS` are left out; ``optim.schedule_steps`` is compared as the schedule's
    effective length (``trainer.max_steps`` where it is 0) and not at all without a scheduler; ``data.roots``
    as resolved paths.  ``method_defaults`` (the method builder's keyword defaults, when both configs name
    the same method) make a keyword left out equal to the same value written out.
    """
    same_method = old.method.name == new.method.name
    defaults = _plain(dict(method_defaults or {})) if same_method else {}
    a, b = _comparable(old, defaults), _comparable(new, defaults)
    keys = list(a) + [k for k in b if k not in a]
    return {k: (a.get(k, _UNSET), b.get(k, _UNSET)) for k in keys if a.get(k, _UNSET) != b.get(k, _UNSET)}


def dump_config(cfg: Config) -> str:
    """The config as YAML text (loads back to an equal config)."""
    return yaml.safe_dump(config_to_dict(cfg), sort_keys=False)
