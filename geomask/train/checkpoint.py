"""Checkpoints that load with ``torch.load(path, weights_only=True)``, written atomically.

A run's ``out_dir`` holds::

    checkpoints/last.ckpt            Lightning checkpoint to resume from (weights, optimiser, loop state)
    checkpoints/step00000500.ckpt    periodic checkpoints
    model.pt                         the method's ``state_dict`` (plain tensors), written at the end
    encoder.pt                       the method's ``encoder`` ``state_dict``, when it has one
    config.yaml                      the resolved config, to rebuild the method

Every file holds only tensors and plain containers (dict, list, str, int, float, bool, None), so all of
them load with ``weights_only=True``; :class:`AtomicCheckpointIO` refuses to load anything else, which
keeps resumption honest.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from torch import nn

from geomask.errors import FormatError
from geomask.io.atomic import atomic_write_bytes

__all__ = ["AtomicCheckpointIO", "load_method", "load_weights", "save_weights"]

PREFIX = "method."


def _to_bytes(obj: Any) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning checkpoint I/O: write to a temporary file and rename; load with ``weights_only=True``."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any = None) -> None:
        atomic_write_bytes(Path(path), _to_bytes(checkpoint))

    def load_checkpoint(self, path: Any, map_location: Any = None, weights_only: bool | None = None) -> dict[str, Any]:
        path = Path(path)
        if not path.is_file():
            raise FormatError(path, "checkpoint not found")
        return torch.load(path, map_location=map_location or "cpu", weights_only=True)


def save_weights(path: str | Path, module: nn.Module) -> Path:
    """Write ``module.state_dict()`` (moved to CPU) to ``path`` atomically."""
    state = {k: v.detach().cpu() for k, v in module.state_dict().items()}
    atomic_write_bytes(Path(path), _to_bytes(state))
    return Path(path)


def load_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """The method's ``state_dict`` from ``model.pt`` or a Lightning ``.ckpt`` (``method.`` prefix removed).

    Raises:
        FormatError: the file is missing or not a weights-only checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise FormatError(path, "checkpoint not found")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - torch raises several types for foreign or corrupt files
        raise FormatError(path, f"not a weights-only checkpoint ({type(e).__name__})") from None
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = {k[len(PREFIX) :]: v for k, v in obj["state_dict"].items() if k.startswith(PREFIX)}
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise FormatError(path, "holds no state_dict")
    return obj


def load_method(source: str | Path, build: Callable[..., nn.Module] | None = None) -> nn.Module:
    """Rebuild a trained method from a run folder (its ``config.yaml`` and ``model.pt``) or a checkpoint.

    Args:
        source: the run's ``out_dir``, or a ``.ckpt`` / ``.pt`` file inside it (``config.yaml`` is looked up
            beside it and one folder up).
        build: ``build(name, **kwargs)`` (default :func:`geomask.methods.registry.build_method`).

    Returns:
        The method in eval mode with the trained weights.
    """
    from geomask.train.config import load_config

    source = Path(source)
    run = source if source.is_dir() else source.parent
    cfg_path = next((p / "config.yaml" for p in (run, run.parent) if (p / "config.yaml").is_file()), None)
    if cfg_path is None:
        raise FormatError(source, "no config.yaml beside it: not a geomask run folder")
    cfg = load_config(cfg_path)
    if build is None:
        from geomask.methods.registry import build_method as build
    method = build(cfg.method.name, **cfg.method.kwargs)
    weights = source / "model.pt" if source.is_dir() else source
    method.load_state_dict(load_weights(weights))
    return method.eval()
