"""``train(config) -> TrainResult``: one pretraining run on Lightning.

The run lives in ``trainer.out_dir`` (see :mod:`geomask.train.checkpoint` for the files).  Before anything is
built, the configured data kind is checked against the kinds the method trains on
(:data:`geomask.methods.registry.DATA_KINDS`), and an ``out_dir`` that already holds a run
(``checkpoints/last.ckpt``) is dealt with by ``trainer.resume``:

* ``auto`` (the default): the run continues only when its stored ``config.yaml`` equals this config on every
  key that can change results (:func:`geomask.train.config.config_differences`; out_dir, logging, checkpoint
  cadence, threads and loader workers may differ, and ``trainer.max_steps`` may grow as long as the
  learning-rate schedule keeps its length).  Otherwise :class:`RunConflictError` names the keys that differ
  (old → new) and the ways out: a new ``out_dir``, or ``resume: true``.
* ``true`` (``geomask pretrain --resume``): continue anyway, where the stored weights fit the configured
  method (else one line names the first parameter that does not, with both shapes).
* ``false``: start over in ``out_dir``; its old checkpoints are deleted first.

A run whose checkpoint already reached ``max_steps`` is not run again (``TrainResult.status == "complete"``).
A resumed run takes weights, optimiser, schedule and loop state from the checkpoint, the batches from the
step-indexed sampler and the masks from per-step generators, so it ends where an uninterrupted one would.
Distributed data parallel is a matter of config (``devices``, ``num_nodes``, ``strategy: ddp``); on CPU it
runs over gloo.  With ``strategy: ddp`` Lightning starts the other local ranks by re-running the current
command, so every rank executes :func:`train` and gets a :class:`TrainResult` (with its ``rank``).
"""

from __future__ import annotations

import json
import logging
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback, LearningRateMonitor, ModelCheckpoint, TQDMProgressBar
from torch import nn

from geomask.errors import FormatError, GeomaskError
from geomask.io.atomic import atomic_write_text
from geomask.train.checkpoint import AtomicCheckpointIO, load_weights, save_weights
from geomask.train.config import (
    Config,
    ConfigError,
    TrainerConfig,
    config_differences,
    config_to_dict,
    dump_config,
    load_config,
)
from geomask.train.data import GraphDataModule, data_kinds
from geomask.train.module import MethodModule

__all__ = ["RunConflictError", "TrainResult", "build_method_from_config", "check_data_kind", "train"]

LAST = "last.ckpt"


@dataclass
class TrainResult:
    """What a run produced.

    Attributes:
        metrics: the final metrics (``train/<loss>`` of the last step, ``val/<loss>`` of the final
            validation when there is a validation split), as floats.
        checkpoint: ``out_dir/checkpoints/last.ckpt``.
        log_dir: the CSV log folder of this run (``None`` without loggers).
        out_dir: the run folder.
        model_path: ``out_dir/model.pt``, the method's weights.
        encoder_path: ``out_dir/encoder.pt`` when the method has an ``encoder`` submodule, else ``None``.
        steps: the global step reached.
        resumed_from: the step the run resumed at (``None`` for a fresh run, or when nothing ran).
        rank, world_size: this process's rank and the number of processes.
        data: one line describing the training data (graph counts per split, with Verilog; ``""`` when
            nothing ran).
        method: the trained method (on CPU, in eval mode).
        method_name: the method's registry name (``cfg.method.name``).
        status: ``"new"`` (trained from step 0), ``"resumed"`` (continued a stored run) or ``"complete"``
            (the stored run had reached ``max_steps`` already: nothing ran, ``method`` holds its weights).
    """

    metrics: dict[str, float]
    checkpoint: Path
    log_dir: Path | None
    out_dir: Path
    model_path: Path
    encoder_path: Path | None
    steps: int
    resumed_from: int | None
    rank: int
    world_size: int
    data: str
    method: nn.Module
    method_name: str = ""
    status: str = "new"

    def __repr__(self) -> str:
        losses = ", ".join(f"{k}={v:.4g}" for k, v in self.metrics.items() if k != "step")
        resumed = f", resumed_from={self.resumed_from}" if self.resumed_from is not None else ""
        name = self.method_name or type(self.method).__name__
        return (
            f"TrainResult(method={name}, status={self.status}, steps={self.steps}{resumed}, "
            f"out_dir={self.out_dir}, metrics={{{losses}}})"
        )


class RunConflictError(ConfigError):
    """``trainer.out_dir`` holds a run that this config cannot continue (one line naming why and the ways out).

    Attributes:
        out_dir: the run folder.
        differences: dotted key → (stored value, new value), for a refusal over a changed config.
    """

    def __init__(self, out_dir: Path, message: str, differences: Mapping[str, tuple[Any, Any]] | None = None):
        self.out_dir = Path(out_dir)
        self.differences = dict(differences or {})
        super().__init__("trainer", "out_dir", message, bare=True)


def _end_process_group(trainer: Any) -> None:
    """After a multi-process run: wait for every rank (rank 0 has just written the weights), then destroy the
    process group, so that no rank exits with gloo's threads still running (under torchrun a rank leaving first
    died with ``terminate called without an active exception``, SIGABRT)."""
    import torch.distributed as dist

    if trainer.world_size > 1 and dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def check_data_kind(cfg: Config) -> list[tuple[str | None, str]]:
    """Refuse data the configured method does not train on, before anything is built.

    Returns:
        ``(root, kind)`` of the data (see :func:`geomask.train.data.data_kinds`).

    Raises:
        ConfigError: the method, the kind found (and its folder) and the kinds the method takes.
    """
    from geomask.methods import registry

    found = data_kinds(cfg.data)
    takes = registry.method_data_kinds(cfg.method.name)
    if takes is None:
        return found
    accepted = " or ".join([", ".join(takes[:-1]), takes[-1]] if len(takes) > 1 else takes)
    for root, kind in found:
        if kind not in takes:
            what = f"{root} is a {kind} dataset" if root is not None else f"data.kind is {kind}"
            raise ConfigError("data", "kind", f"method {cfg.method.name!r} trains on {accepted} data, but {what}")
    if cfg.data.pack_length and not getattr(registry.method_class(cfg.method.name), "takes_packed", False):
        raise ConfigError(
            "data", "pack_length", f"method {cfg.method.name!r} does not train on packed sequences (set it to 0)"
        )
    return found


def build_method_from_config(cfg: Config) -> nn.Module:
    """The method named in ``cfg.method`` from the registry; a bad name or keyword is a :class:`ConfigError`."""
    from geomask.methods import registry

    name, kwargs = cfg.method.name, cfg.method.kwargs
    if name not in registry.METHODS:
        valid = ", ".join(sorted(registry.METHODS))
        raise ConfigError("method", "name", f"unknown method {name!r}; valid: {valid}", bare=True)
    try:
        return registry.build_method(name, **kwargs)
    except (ValueError, TypeError) as e:
        keywords = getattr(registry, "method_keywords", None)
        unknown = sorted(set(kwargs) - set(keywords(name))) if keywords is not None else []
        msg = str(e).splitlines()[0] if str(e) else repr(e)
        if not unknown and not msg.startswith(f"method {name!r}"):  # a bad value, in the builder's words
            msg = f"method {name!r}: {msg}"
        raise ConfigError("method", unknown[0] if unknown else name, msg, bare=True) from None


class _RunHooks(Callback):
    """The run's own hooks: CPU threads, ``config.yaml`` and a one-line model summary once the processes exist,
    ``last.ckpt`` at the end.

    ``last.ckpt`` is written when training stops, so a run stopped at ``max_steps`` resumes exactly (a killed
    run resumes from the latest periodic checkpoint instead).  ``config.yaml`` is written before the first
    checkpoint and checked again at every checkpoint, so a checkpoint never lies there without it.
    """

    def __init__(self, last: Path, threads: int, config_text: str, summary: str | None = None) -> None:
        self.last, self.threads, self.config_text, self.summary = last, threads, config_text, summary
        self.start_step: int | None = None  # the global step training (re)started at

    @property
    def config_path(self) -> Path:
        return self.last.parent.parent / "config.yaml"

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.threads > 0:  # after Lightning's DDP launcher, which sets its own count
            torch.set_num_threads(self.threads)
        if trainer.is_global_zero:
            atomic_write_text(self.config_path, self.config_text)
            if self.summary is not None:
                params = list(pl_module.parameters())
                total = sum(p.numel() for p in params)
                trainable = sum(p.numel() for p in params if p.requires_grad)
                print(f"model: {self.summary}, {total:,} parameters ({trainable:,} trainable)", flush=True)

    def on_save_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: Any) -> None:
        if trainer.is_global_zero and not self.config_path.is_file():
            atomic_write_text(self.config_path, self.config_text)

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.start_step = trainer.global_step

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        trainer.save_checkpoint(self.last, weights_only=False)


class _StepProgressBar(TQDMProgressBar):
    """A progress bar over global steps (``step/max_steps``), not over epochs of an endless loader."""

    def on_train_epoch_start(self, trainer: pl.Trainer, *args: Any) -> None:
        super().on_train_epoch_start(trainer, *args)
        bar = self.train_progress_bar
        bar.total = trainer.max_steps
        bar.n = bar.initial = trainer.global_step
        bar.set_description("train")

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        super().on_train_batch_end(trainer, pl_module, outputs, batch, trainer.global_step - 1)


def _loggers(cfg: Config, out: Path) -> list[Any]:
    from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

    loggers: list[Any] = []
    for name in cfg.trainer.loggers:
        if name == "csv":
            loggers.append(CSVLogger(out / "logs", name="csv"))
        elif name == "tensorboard":
            try:
                loggers.append(TensorBoardLogger(out / "logs", name="tensorboard", default_hp_metric=False))
            except ModuleNotFoundError:
                warnings.warn("tensorboard is not installed: logging to CSV only", stacklevel=3)
    return loggers


class _NoAdverts(logging.Filter):
    """Drops Lightning's "💡 Tip: ... try installing litlogger/litmodels" lines."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).lstrip().startswith("💡")


def _quiet_lightning() -> None:
    """Lightning's tips about workers and log intervals do not apply to step-indexed graph batches; its
    advertisements do not apply at all."""
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero"):
        lg = logging.getLogger(name)
        if not any(isinstance(f, _NoAdverts) for f in lg.filters):
            lg.addFilter(_NoAdverts())
    for pattern in (
        r".*does not have many workers.*",
        r".*log_every_n_steps.*",
        r".*Checkpoint directory .* exists and is not empty.*",
        r".*that ended before the epoch ended.*",
        r".*is an infinite.*",
        r".*isinstance\(treespec, LeafSpec\).*",
        r".*callbacks used to create the checkpoint need to be provided.*",  # trainer.checkpoint_every changed
    ):
        warnings.filterwarnings("ignore", message=pattern)


def train(
    config: Config | Mapping[str, Any] | str | Path,
    overrides: Iterable[str] = (),
    *,
    method: nn.Module | None = None,
    build: Callable[[Config], nn.Module] | None = None,
    callbacks: Sequence[Callback] = (),
) -> TrainResult:
    """Pretrain a method as configured.

    Args:
        config: a YAML path, a dict in the YAML layout, or a :class:`Config`.
        overrides: ``SECTION.KEY=VALUE`` strings applied on top (as ``--set`` on the command line).
        method: an already built method to train instead of the one the config names.
        build: ``build(cfg) -> method`` instead of the registry (for methods defined outside geomask).
        callbacks: extra Lightning callbacks (early stopping, custom logging, ...).

    Returns:
        The :class:`TrainResult` of this process (``status`` says whether it trained or found the run complete).

    Raises:
        ConfigError: an unknown or malformed config key, an unknown method or method keyword, data of a kind
            the method does not train on, a missing data folder.
        RunConflictError: ``out_dir`` holds a run of another config (``trainer.resume: auto``), or one whose
            weights do not fit the configured method.
    """
    cfg = load_config(config, overrides)
    threads = torch.get_num_threads()
    try:
        return _run(cfg, method, build, callbacks)
    finally:
        torch.set_num_threads(threads)


DDP_START = {"ddp": "popen", "ddp_spawn": "spawn", "ddp_fork": "fork", "ddp_notebook": "fork"}


def _strategy(t: TrainerConfig) -> Any:
    """Lightning's strategy, DDP ones with ``find_unused_parameters`` as configured.

    A method whose parameters depend on the batch (MGVGA's Verilog alignment is idle on batches without
    Verilog, and ranks draw different batches) deadlocks under DDP without ``find_unused_parameters``, so
    ``auto`` on several devices or nodes is resolved here (as Lightning would: ``ddp``, or ``ddp_fork``
    in an interactive session) instead of taking Lightning's default DDP settings.
    """
    name = t.strategy
    if name == "auto":
        if isinstance(t.devices, int):
            count = t.devices
        elif t.accelerator in ("gpu", "cuda") or (t.accelerator == "auto" and torch.cuda.is_available()):
            count = torch.cuda.device_count()
        else:
            count = 1
        if count <= 1 and t.num_nodes <= 1:
            return name
        from lightning.fabric.utilities.imports import _IS_INTERACTIVE

        name = "ddp_fork" if _IS_INTERACTIVE else "ddp"
    if name not in DDP_START:
        return name
    from lightning.pytorch.strategies import DDPStrategy

    return DDPStrategy(start_method=DDP_START[name], find_unused_parameters=t.find_unused)


def _trainer(cfg: Config, data: GraphDataModule, hooks: list[Callback], loggers: list[Any]) -> pl.Trainer:
    t = cfg.trainer
    return pl.Trainer(
        max_steps=t.max_steps,
        max_epochs=-1,
        accelerator=t.accelerator,
        devices=t.devices,
        num_nodes=t.num_nodes,
        strategy=_strategy(t),
        precision=t.precision,
        logger=loggers or False,
        callbacks=hooks,
        log_every_n_steps=t.log_every,
        val_check_interval=t.val_every or t.max_steps,
        check_val_every_n_epoch=None,
        limit_val_batches=None if data.has_val else 0,
        num_sanity_val_steps=0,
        use_distributed_sampler=False,
        enable_progress_bar=t.progress_bar,
        enable_model_summary=False,  # _RunHooks prints one line naming the method by its registry name
        gradient_clip_val=cfg.optim.grad_clip or None,
        default_root_dir=t.out_dir,
        plugins=[AtomicCheckpointIO()],
    )


def _rank() -> int:
    """This process's global rank as the launcher's environment gives it (before a trainer exists)."""
    from lightning.pytorch.utilities.rank_zero import rank_zero_only

    return int(getattr(rank_zero_only, "rank", 0))


def _is_rank_zero() -> bool:
    return _rank() == 0


def _say(text: str) -> None:
    if _is_rank_zero():
        print(text, flush=True)


def _short(value: Any) -> str:
    text = json.dumps(value) if isinstance(value, (list, dict)) else str(value)
    return text if len(text) <= 80 else text[:30] + "..." + text[-47:]  # paths differ at their ends


def _describe_differences(diffs: Mapping[str, tuple[Any, Any]]) -> str:
    parts = []
    for key, (old, new) in diffs.items():
        name = "optim.schedule_steps (0: trainer.max_steps)" if key == "optim.schedule_steps" else key
        parts.append(f"{name} {_short(old)} → {_short(new)}")
    return ", ".join(parts)


@dataclass
class _Prior:
    """What ``out_dir`` holds: ``status`` new | restart | resume | complete, the stored step and weights' shapes."""

    status: str
    step: int = 0
    shapes: dict[str, tuple[int, ...]] | None = None
    differences: dict[str, tuple[Any, Any]] | None = None


def _peek(last: Path) -> tuple[int, dict[str, Any] | None, dict[str, tuple[int, ...]]]:
    """A checkpoint's global step, stored config (hyper-parameters) and parameter shapes, cheaply (mmap)."""
    try:
        ckpt = torch.load(last, map_location="cpu", weights_only=True, mmap=True)
    except Exception as e:  # noqa: BLE001 - torch raises several types for foreign or corrupt files
        msg = f"cannot be read as a checkpoint ({type(e).__name__}); delete it or use a new trainer.out_dir"
        raise FormatError(last, msg) from None
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("global_step"), int):
        raise FormatError(last, "not a Lightning checkpoint; delete it or use a new trainer.out_dir")
    hp = ckpt.get("hyper_parameters")
    state = ckpt.get("state_dict") if isinstance(ckpt.get("state_dict"), dict) else {}
    shapes = {k: tuple(v.shape) for k, v in state.items() if isinstance(v, torch.Tensor)}
    return int(ckpt["global_step"]), dict(hp) if isinstance(hp, Mapping) else None, shapes


def _stored_config(out: Path, hparams: dict[str, Any] | None) -> Config | None:
    """The config of the run in ``out``: its ``config.yaml``, else the checkpoint's copy (``None``: neither)."""
    path = out / "config.yaml"
    for source in (path if path.is_file() else None, hparams):
        if source is None:
            continue
        try:
            return load_config(source)
        except GeomaskError:
            continue
    return None


def _method_defaults(name: str) -> dict[str, Any]:
    from geomask.methods import registry

    return registry.method_defaults(name) if name in registry.METHODS else {}


WAYS_OUT = "use a new trainer.out_dir (--out DIR), or trainer.resume=true (--resume) to continue it anyway"


def _prior_run(cfg: Config, out: Path, last: Path) -> _Prior:
    """Decide what to do with ``out_dir`` (see the module docstring); raise :class:`RunConflictError` to refuse."""
    resume = cfg.trainer.resume
    if not last.is_file():
        return _Prior("new")
    if resume is False:
        return _Prior("restart")
    step, hparams, shapes = _peek(last)
    old = _stored_config(out, hparams)
    diffs = None
    if old is None:
        if resume is not True:  # "auto"
            raise RunConflictError(out, f"{out} holds a checkpoint without a readable config.yaml: {WAYS_OUT}")
    else:
        diffs = config_differences(old, cfg, _method_defaults(cfg.method.name))
        if diffs and resume is not True:
            hint = ""
            if "optim.schedule_steps" in diffs and old.optim.schedule_steps == 0:
                length = old.optim.schedule_steps or old.trainer.max_steps
                hint = f"; to train longer on the same schedule, set optim.schedule_steps={length}"
            msg = f"{out} holds a run with another config ({_describe_differences(diffs)}): {WAYS_OUT}{hint}"
            raise RunConflictError(out, msg, diffs)
    status = "complete" if step >= cfg.trainer.max_steps else "resume"
    return _Prior(status, step, shapes, diffs or None)


def _upgraded_shapes(shapes: Mapping[str, tuple[int, ...]], method: nn.Module) -> dict[str, tuple[int, ...]]:
    """The checkpoint's ``method.*`` shapes after ``method``'s load-state-dict pre-hooks (key renames of old
    checkpoints, such as MSM's ``teacher.*`` → ``teacher.module.*``), as :meth:`nn.Module.load_state_dict` will
    see them; other keys are kept as they are.  The hooks run on ``meta`` tensors (no memory, no copy)."""
    state: dict[str, Any] = {k[7:]: torch.empty(s, device="meta") for k, s in shapes.items() if k.startswith("method.")}
    for name, module in method.named_modules():
        prefix = f"{name}." if name else ""
        for hook in module._load_state_dict_pre_hooks.values():  # as Module._load_from_state_dict calls them
            hook(state, prefix, {}, True, [], [], [])
    rest = {k: s for k, s in shapes.items() if not k.startswith("method.")}
    return {**rest, **{f"method.{k}": tuple(v.shape) for k, v in state.items()}}


def _check_weights(last: Path, shapes: Mapping[str, tuple[int, ...]], method: nn.Module) -> None:
    """One line naming the first parameter of the checkpoint that does not fit ``method`` (prefix ``method.``),
    compared after the method's load hooks, so that a checkpoint they upgrade is not refused."""
    own = {f"method.{k}": tuple(v.shape) for k, v in method.state_dict().items()}
    shapes = _upgraded_shapes(shapes, method)

    def refuse(detail: str) -> RunConflictError:
        out = last.parent.parent
        return RunConflictError(out, f"cannot continue {last}: {detail}; use a new trainer.out_dir (--out DIR)")

    def fmt(shape: tuple[int, ...]) -> str:
        return "[" + ", ".join(map(str, shape)) + "]"

    for key, shape in own.items():
        name = key.removeprefix("method.")
        if key not in shapes:
            raise refuse(f"the configured method has parameter {name!r}, the checkpoint does not")
        if shapes[key] != shape:
            raise refuse(f"parameter {name!r} is {fmt(shapes[key])} in the checkpoint, {fmt(shape)} in the method")
    extra = [k for k in shapes if k.startswith("method.") and k not in own]
    if extra:
        raise refuse(f"the checkpoint has parameter {extra[0].removeprefix('method.')!r}, the method does not")


def _complete(cfg: Config, out: Path, last: Path, method: nn.Module, step: int) -> TrainResult:
    """The result of a run that had already reached ``max_steps``: its weights and final metrics, nothing run."""
    method.load_state_dict(load_weights(last))
    method = method.cpu().eval()
    metrics: dict[str, float] = {}
    try:
        stored = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
        metrics = {str(k): float(v) for k, v in stored.items()}
    except (OSError, ValueError, TypeError, AttributeError):
        pass
    metrics["step"] = float(step)
    model_path, encoder_path = out / "model.pt", None
    encoder = getattr(method, "encoder", None)
    if isinstance(encoder, nn.Module):
        encoder_path = out / "encoder.pt"
    if _is_rank_zero():  # a run killed between its last checkpoint and its weights gets them now
        if not model_path.is_file():
            save_weights(model_path, method)
        if encoder_path is not None and not encoder_path.is_file():
            save_weights(encoder_path, encoder)
    return TrainResult(
        metrics=metrics,
        checkpoint=last,
        log_dir=None,
        out_dir=out,
        model_path=model_path,
        encoder_path=encoder_path,
        steps=step,
        resumed_from=None,
        rank=_rank(),
        world_size=1,
        data="",
        method=method,
        method_name=cfg.method.name,
        status="complete",
    )


def _run(
    cfg: Config, method: nn.Module | None, build: Callable[[Config], nn.Module] | None, callbacks: Sequence[Callback]
) -> TrainResult:
    t = cfg.trainer
    out = Path(t.out_dir)
    if method is None and build is None:
        check_data_kind(cfg)  # before anything is built: the wrong data fails in a step, after a summary
    last = out / "checkpoints" / LAST
    prior = _prior_run(cfg, out, last)
    if t.threads > 0:
        torch.set_num_threads(t.threads)
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    if method is None:
        method = build(cfg) if build is not None else build_method_from_config(cfg)
    if prior.shapes is not None:
        _check_weights(last, prior.shapes, method)
    if prior.status == "complete":
        return _complete(cfg, out, last, method, prior.step)
    if prior.status == "resume":
        diffs = prior.differences
        changed = f" although the config differs ({_describe_differences(diffs)})" if diffs else ""
        _say(f"resuming from step {prior.step}{changed}")
    data = GraphDataModule(cfg.data, cfg.seed)
    data.setup("fit")
    module = MethodModule(method, cfg.optim, t.max_steps, cfg.seed, config_to_dict(cfg))
    checkpointing = ModelCheckpoint(
        dirpath=last.parent,
        filename="step{step:08d}",
        auto_insert_metric_name=False,
        every_n_train_steps=t.checkpoint_every,
        save_last=True,
        save_top_k=t.keep_checkpoints if t.keep_checkpoints >= 0 else -1,
        monitor="step",
        mode="max",
        enable_version_counter=False,  # one last.ckpt, overwritten (with _RunHooks' copy at the end)
    )
    loggers = _loggers(cfg, out)
    summary = f"{cfg.method.name} ({type(method).__name__})" if t.summary else None
    run_hooks = _RunHooks(last, t.threads, dump_config(cfg), summary)
    hooks: list[Callback] = [checkpointing, run_hooks, *callbacks]
    if loggers:
        hooks.append(LearningRateMonitor(logging_interval="step"))
    if t.progress_bar:
        hooks.append(_StepProgressBar())
    _quiet_lightning()
    trainer = _trainer(cfg, data, hooks, loggers)
    if prior.status == "restart":  # resume: false starts over: the old run's checkpoints go
        for old in last.parent.glob("*.ckpt"):
            old.unlink(missing_ok=True)
    resume = last if prior.status == "resume" else None
    trainer.fit(module, datamodule=data, ckpt_path=resume)
    start = run_hooks.start_step if run_hooks.start_step is not None else trainer.global_step  # None: nothing left
    resumed_from = start if resume is not None else None
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("train/")}
    if data.has_val:
        if module.validated_at != trainer.global_step:
            trainer.validate(module, datamodule=data, verbose=False)
        metrics.update({k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/")})
    metrics["step"] = float(trainer.global_step)
    method = module.method.cpu().eval()
    model_path, encoder_path = out / "model.pt", None
    encoder = getattr(method, "encoder", None)
    if isinstance(encoder, nn.Module):
        encoder_path = out / "encoder.pt"
    if trainer.is_global_zero:
        save_weights(model_path, method)
        if encoder_path is not None:
            save_weights(encoder_path, encoder)
        atomic_write_text(out / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    _end_process_group(trainer)
    csv = next((lg for lg in loggers if type(lg).__name__ == "CSVLogger"), None)
    return TrainResult(
        metrics=metrics,
        checkpoint=last,
        log_dir=Path(csv.log_dir) if csv is not None else None,
        out_dir=out,
        model_path=model_path,
        encoder_path=encoder_path,
        steps=int(trainer.global_step),
        resumed_from=resumed_from,
        rank=int(trainer.global_rank),
        world_size=int(trainer.world_size),
        data=data.describe(),
        method=method,
        method_name=cfg.method.name,
        status="resumed" if resumed_from is not None else "new",
    )
