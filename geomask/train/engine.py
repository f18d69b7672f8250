"""``train(config) -> TrainResult``: one pretraining run on Lightning.

The run lives in ``trainer.out_dir`` (see :mod:`geomask.train.checkpoint` for the files).  With
``trainer.resume`` (the default) a run whose ``checkpoints/last.ckpt`` exists continues from it: weights,
optimiser, schedule and loop state come from the checkpoint, the batches from the step-indexed sampler
and the masks from per-step generators, so the resumed run ends where an uninterrupted one would.
Distributed data parallel is a matter of config (``devices``, ``num_nodes``, ``strategy: ddp``); on CPU it
runs over gloo.  With ``strategy: ddp`` Lightning starts the other local ranks by re-running the current
command, so every rank executes :func:`train` and gets a :class:`TrainResult` (with its ``rank``).
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback, LearningRateMonitor, ModelCheckpoint, TQDMProgressBar
from torch import nn

from geomask.io.atomic import atomic_write_text
from geomask.train.checkpoint import AtomicCheckpointIO, save_weights
from geomask.train.config import Config, ConfigError, TrainerConfig, config_to_dict, dump_config, load_config
from geomask.train.data import GraphDataModule
from geomask.train.module import MethodModule

__all__ = ["TrainResult", "build_method_from_config", "train"]

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
        resumed_from: the step the run resumed at (``None`` for a fresh run).
        rank, world_size: this process's rank and the number of processes.
        data: one line describing the training data (graph counts per split, with Verilog).
        method: the trained method (on CPU, in eval mode).
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


def build_method_from_config(cfg: Config) -> nn.Module:
    """The method named in ``cfg.method`` from the registry; a bad name or keyword is a :class:`ConfigError`."""
    from geomask.methods import registry

    name, kwargs = cfg.method.name, cfg.method.kwargs
    if name not in registry.METHODS:
        raise ConfigError("method", "name", f"unknown method {name!r}; valid: {', '.join(sorted(registry.METHODS))}")
    try:
        return registry.build_method(name, **kwargs)
    except (ValueError, TypeError) as e:
        keywords = getattr(registry, "method_keywords", None)
        unknown = sorted(set(kwargs) - set(keywords(name))) if keywords is not None else []
        raise ConfigError("method", unknown[0] if unknown else name, str(e).splitlines()[0] or repr(e)) from None


class _RunHooks(Callback):
    """The run's own hooks: CPU threads and ``config.yaml`` once the processes exist, ``last.ckpt`` at the end.

    ``last.ckpt`` is written when training stops, so a run stopped at ``max_steps`` resumes exactly (a killed
    run resumes from the latest periodic checkpoint instead).
    """

    def __init__(self, last: Path, threads: int, config_text: str) -> None:
        self.last, self.threads, self.config_text = last, threads, config_text
        self.start_step: int | None = None  # the global step training (re)started at

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.threads > 0:  # after Lightning's DDP launcher, which sets its own count
            torch.set_num_threads(self.threads)
        if trainer.is_global_zero:
            atomic_write_text(self.last.parent.parent / "config.yaml", self.config_text)

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


def _quiet_lightning() -> None:
    """Lightning's tips about workers and log intervals do not apply to step-indexed graph batches."""
    for pattern in (
        r".*does not have many workers.*",
        r".*log_every_n_steps.*",
        r".*Checkpoint directory .* exists and is not empty.*",
        r".*that ended before the epoch ended.*",
        r".*is an infinite.*",
        r".*isinstance\(treespec, LeafSpec\).*",
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
        The :class:`TrainResult` of this process.

    Raises:
        ConfigError: an unknown or malformed config key, or an unknown method or method keyword.
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
        enable_model_summary=t.summary,
        gradient_clip_val=cfg.optim.grad_clip or None,
        default_root_dir=t.out_dir,
        plugins=[AtomicCheckpointIO()],
    )


def _run(
    cfg: Config, method: nn.Module | None, build: Callable[[Config], nn.Module] | None, callbacks: Sequence[Callback]
) -> TrainResult:
    t = cfg.trainer
    out = Path(t.out_dir)
    if t.threads > 0:
        torch.set_num_threads(t.threads)
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    if method is None:
        method = build(cfg) if build is not None else build_method_from_config(cfg)
    data = GraphDataModule(cfg.data, cfg.seed)
    data.setup("fit")
    module = MethodModule(method, cfg.optim, t.max_steps, cfg.seed, config_to_dict(cfg))
    last = out / "checkpoints" / LAST
    checkpointing = ModelCheckpoint(
        dirpath=last.parent,
        filename="step{step:08d}",
        auto_insert_metric_name=False,
        every_n_train_steps=t.checkpoint_every,
        save_last=True,
        save_top_k=t.keep_checkpoints if t.keep_checkpoints >= 0 else -1,
        monitor="step",
        mode="max",
    )
    loggers = _loggers(cfg, out)
    run_hooks = _RunHooks(last, t.threads, dump_config(cfg))
    hooks: list[Callback] = [checkpointing, run_hooks, *callbacks]
    if loggers:
        hooks.append(LearningRateMonitor(logging_interval="step"))
    if t.progress_bar:
        hooks.append(_StepProgressBar())
    _quiet_lightning()
    trainer = _trainer(cfg, data, hooks, loggers)
    resume = last if t.resume and last.is_file() else None
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
    )
