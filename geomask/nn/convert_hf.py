"""Hugging Face ViT checkpoints into geomask: ``ViTMAEForPreTraining`` → ``mae``, ``ViTForMaskedImageModeling`` →
``simmim`` (same numbers: ``tests/methods/test_mae.py`` and ``test_simmim.py`` check losses and outputs).

From a local folder (no download; ``transformers`` is not needed to read it)::

    config, state = read_hf_checkpoint("path/to/vit-mae-base")
    mae = build_method("mae", **mae_keywords(config))
    mae.load_state_dict(convert_vit_mae(state))

What changes on the way:

* ``q_proj`` / ``k_proj`` / ``v_proj`` (``query`` / ``key`` / ``value`` in checkpoints written by transformers 4)
  become one fused ``qkv`` (rows ``[q; k; v]``), ``o_proj`` ``proj``, ``layernorm_before/after`` ``norm1/2``;
* the stride-``p`` convolution of the patch embedding becomes a linear map of channel-last patch tokens,
  ``W.movedim(1, -1).reshape(E, -1)``;
* MAE's fixed sin-cos ``position_embeddings`` / ``decoder_pos_embed`` are dropped (geomask computes the same ones);
  a ViT's learned positions are kept (``pos_embed="learned"``);
* SimMIM's ``Conv2d(E, p² C, 1)`` + ``PixelShuffle(p)`` head becomes ``Linear(E, p² C)`` with its output rows
  reordered from ``(c, i, j)`` to ``(i, j, c)``;
* LayerNorm epsilon comes from the config (Hugging Face's default 1e-12, MAE's own 1e-6).

Unknown keys raise :class:`~geomask.errors.UsageError` (nothing is dropped silently).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from geomask.errors import UsageError

__all__ = ["convert_vit_mae", "convert_vit_mim", "mae_keywords", "read_hf_checkpoint", "simmim_keywords"]

# transformers 4 (and the hub's files) -> transformers 5 names
_V4 = [
    (r"\.encoder\.layer\.(\d+)\.", r".layers.\1."),
    (r"\.attention\.attention\.query\.", ".attention.q_proj."),
    (r"\.attention\.attention\.key\.", ".attention.k_proj."),
    (r"\.attention\.attention\.value\.", ".attention.v_proj."),
    (r"\.attention\.output\.dense\.", ".attention.o_proj."),
    (r"\.intermediate\.dense\.", ".mlp.fc1."),
    (r"\.output\.dense\.", ".mlp.fc2."),
]
_BLOCK = {
    "layernorm_before": "norm1",
    "layernorm_after": "norm2",
    "attention.o_proj": "attn.proj",
    "mlp.fc1": "mlp.fc1",
    "mlp.fc2": "mlp.fc2",
}


def _v5_names(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    out = {}
    for key, value in state.items():
        for pattern, repl in _V4:
            key = re.sub(pattern, repl, key)
        out[key] = value
    return out


def _blocks(state: dict[str, Tensor], src: str, dst: str, out: dict[str, Tensor]) -> None:
    """Move every ``{src}{i}.*`` transformer layer to ``{dst}{i}.*`` (fusing q, k, v)."""
    layers = sorted({int(m.group(1)) for k in state if (m := re.match(re.escape(src) + r"(\d+)\.", k))})
    for i in layers:
        s, d = f"{src}{i}.", f"{dst}{i}."
        for kind in ("weight", "bias"):
            qkv = [state.pop(f"{s}attention.{p}_proj.{kind}", None) for p in "qkv"]
            if all(t is not None for t in qkv):
                out[f"{d}attn.qkv.{kind}"] = torch.cat(qkv, 0)
            elif any(t is not None for t in qkv):
                raise UsageError(f"layer {s}: q, k and v {kind}s must all be there or none")
            for a, b in _BLOCK.items():
                if f"{s}{a}.{kind}" in state:
                    out[f"{d}{b}.{kind}"] = state.pop(f"{s}{a}.{kind}")


def _embeddings(state: dict[str, Tensor], out: dict[str, Tensor], keep_positions: bool) -> None:
    e = "vit.embeddings."
    w = state.pop(f"{e}patch_embeddings.projection.weight")
    out["encoder.patch_embed.weight"] = w.movedim(1, -1).reshape(w.size(0), -1)
    out["encoder.patch_embed.bias"] = state.pop(f"{e}patch_embeddings.projection.bias")
    for name in ("cls_token", "mask_token"):
        if f"{e}{name}" in state:
            out[f"encoder.{name}"] = state.pop(f"{e}{name}")
    pos = state.pop(f"{e}position_embeddings", None)
    if keep_positions and pos is not None:
        out["encoder.pos_embed"] = pos
    _blocks(state, "vit.layers.", "encoder.blocks.", out)
    for kind in ("weight", "bias"):
        out[f"encoder.norm.{kind}"] = state.pop(f"vit.layernorm.{kind}")


def _done(state: dict[str, Tensor], what: str) -> None:
    if state:
        raise UsageError(f"{what}: unknown keys {sorted(state)[:6]}{' ...' if len(state) > 6 else ''}")


def convert_vit_mae(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """A ``ViTMAEForPreTraining`` state dict as the state dict of geomask's ``mae`` (module docstring)."""
    src, out = _v5_names(state), {}
    _embeddings(src, out, keep_positions=False)
    d = "decoder."
    src.pop(f"{d}decoder_pos_embed", None)
    out[f"{d}mask_token"] = src.pop(f"{d}mask_token")
    for a, b in (("decoder_embed", "embed"), ("decoder_norm", "norm"), ("decoder_pred", "pred")):
        for kind in ("weight", "bias"):
            out[f"{d}{b}.{kind}"] = src.pop(f"{d}{a}.{kind}")
    _blocks(src, f"{d}decoder_layers.", f"{d}blocks.", out)
    _done(src, "convert_vit_mae")
    return out


def convert_vit_mim(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """A ``ViTForMaskedImageModeling`` state dict as the state dict of geomask's ``simmim`` built with
    ``pos_embed="learned"`` (:func:`simmim_keywords`)."""
    src, out = _v5_names(state), {}
    channels = src["vit.embeddings.patch_embeddings.projection.weight"].size(1)
    _embeddings(src, out, keep_positions=True)
    w, b = src.pop("decoder.0.weight"), src.pop("decoder.0.bias")
    r = math.isqrt(w.size(0) // channels)
    if r * r * channels != w.size(0):
        raise UsageError(f"convert_vit_mim: a head of {w.size(0)} outputs is no p * p * {channels}")
    out["head.weight"] = w.reshape(channels, r, r, -1).permute(1, 2, 0, 3).reshape(w.size(0), -1)
    out["head.bias"] = b.reshape(channels, r, r).permute(1, 2, 0).reshape(-1)
    _done(src, "convert_vit_mim")
    return out


def _config(config: Any) -> dict[str, Any]:
    return dict(config.to_dict() if hasattr(config, "to_dict") else config)


def _encoder_keywords(c: dict[str, Any]) -> dict[str, Any]:
    if c.get("hidden_act", "gelu") != "gelu" or not c.get("qkv_bias", True):
        raise UsageError(
            f"only gelu ViTs with qkv bias convert, got {c.get('hidden_act')}, qkv_bias={c.get('qkv_bias')}"
        )
    return {
        "image_size": c.get("image_size", 224),
        "patch_size": c.get("patch_size", 16),
        "in_channels": c.get("num_channels", 3),
        "dim": c["hidden_size"],
        "depth": c["num_hidden_layers"],
        "heads": c["num_attention_heads"],
        "mlp_ratio": c["intermediate_size"] / c["hidden_size"],
        "eps": c.get("layer_norm_eps", 1e-12),
    }


def mae_keywords(config: Any) -> dict[str, Any]:
    """``build_method("mae", ...)`` keywords of a ``ViTMAEConfig`` (object or dict)."""
    c = _config(config)
    kw = _encoder_keywords(c)
    if c["decoder_intermediate_size"] / c["decoder_hidden_size"] != kw["mlp_ratio"]:
        raise UsageError("geomask's MAE decoder uses the encoder's MLP ratio; this config has another")
    return {
        **kw,
        "decoder_dim": c["decoder_hidden_size"],
        "decoder_depth": c["decoder_num_hidden_layers"],
        "decoder_heads": c["decoder_num_attention_heads"],
        "mask_ratio": c.get("mask_ratio", 0.75),
        "norm_pix": bool(c.get("norm_pix_loss", False)),
    }


def simmim_keywords(config: Any) -> dict[str, Any]:
    """``build_method("simmim", ...)`` keywords of a ``ViTConfig`` (object or dict) with learned positions."""
    c = _config(config)
    kw = _encoder_keywords(c)
    if c.get("encoder_stride", kw["patch_size"]) != kw["patch_size"]:
        raise UsageError("a ViT's SimMIM head predicts one patch per token: encoder_stride must be the patch size")
    return {**kw, "pos_embed": "learned", "cls_token": True}


def read_hf_checkpoint(path: str | Path) -> tuple[dict[str, Any], dict[str, Tensor]]:
    """``(config, state dict)`` of a local Hugging Face model folder (``config.json`` with ``model.safetensors``
    or ``pytorch_model.bin``, read with ``weights_only=True``)."""
    root = Path(path)
    if not (root / "config.json").is_file():
        raise UsageError(f"{root}: no config.json (a Hugging Face model folder is needed)")
    config = json.loads((root / "config.json").read_text())
    if (root / "model.safetensors").is_file():
        from safetensors.torch import load_file

        return config, load_file(str(root / "model.safetensors"))
    if (root / "pytorch_model.bin").is_file():
        return config, torch.load(root / "pytorch_model.bin", map_location="cpu", weights_only=True)
    raise UsageError(f"{root}: neither model.safetensors nor pytorch_model.bin")
