"""Vocabularies of token sequences: the ids a masker and a replacement step need, and ESM's amino-acid alphabet.

:class:`Vocab` is the contract between a tokenizer and everything downstream (maskers, :func:`mlm_replace`,
methods): its size, the padding and mask ids, and which ids are *special* (never masked, never drawn as a random
replacement).  It is a small frozen dataclass of ints, so batches carry it and loader processes pickle it.

The amino-acid vocabulary is ESM-1b / ESM-2's alphabet in ESM's order (33 tokens)::

    0 <cls>  1 <pad>  2 <eos>  3 <unk>
    4.. 23   L A G V S E R T I D P K Q N F Y M H W C   (the 20 standard residues, ESM's order)
    24..28   X B U Z O                                  (unknown, Asx, selenocysteine, Glx, pyrrolysine)
    29 .  30 -  31 <null_1>  32 <mask>

so token ids written here index an ESM embedding table directly.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = [
    "AMINO_ACIDS",
    "ESM_TOKENS",
    "RESIDUES",
    "Vocab",
    "amino_vocab",
    "encode_protein",
    "invalid_residues",
]

AMINO_ACIDS = "LAGVSERTIDPKQNFYMHWC"
"""The 20 standard amino acids in ESM's order."""
RESIDUES = AMINO_ACIDS + "XBUZO"
"""The residue letters a protein sequence may hold: the 20, then X, B, U, Z, O (ESM's order)."""
ESM_TOKENS: tuple[str, ...] = ("<cls>", "<pad>", "<eos>", "<unk>", *RESIDUES, ".", "-", "<null_1>", "<mask>")
"""ESM's alphabet, index = token id."""


@dataclass(frozen=True)
class Vocab:
    """Token ids a masked-LM pipeline needs.

    Args:
        size: number of token ids ``V`` (ids are ``0 .. V-1``).
        pad_id: the padding id.
        mask_id: the mask token's id.
        special_ids: every id never masked and never drawn as a random replacement (padding, mask, class,
            separator, unknown, ...).
        cls_id: put in front of every sequence (``None``: nothing).
        sep_id: put after every sequence (``None``: nothing).
        name: what it is (``"amino"``, or the tokenizer's kind and hash), for messages and manifests.
    """

    size: int
    pad_id: int
    mask_id: int
    special_ids: tuple[int, ...]
    cls_id: int | None = None
    sep_id: int | None = None
    name: str = ""

    def __post_init__(self) -> None:
        ids = {self.pad_id, self.mask_id} | set(self.special_ids)
        ids |= {i for i in (self.cls_id, self.sep_id) if i is not None}
        if min(ids) < 0 or max(ids) >= self.size:
            raise ValueError(f"vocab {self.name!r}: special ids {sorted(ids)} must lie in [0, {self.size})")
        object.__setattr__(self, "special_ids", tuple(sorted(ids)))

    def special_table(self, device: torch.device | str = "cpu") -> Tensor:
        """``[V]`` bool, True at the special ids (cached per vocab and device: do not modify it)."""
        return _tables(self, str(torch.device(device)))[0]

    def regular_ids(self, device: torch.device | str = "cpu") -> Tensor:
        """``[V - S]`` int64, the ids a random replacement draws from (every non-special id; cached)."""
        return _tables(self, str(torch.device(device)))[1]

    def to_dict(self) -> dict:
        """Plain JSON (manifests)."""
        return {
            "size": self.size,
            "pad_id": self.pad_id,
            "mask_id": self.mask_id,
            "special_ids": list(self.special_ids),
            "cls_id": self.cls_id,
            "sep_id": self.sep_id,
            "name": self.name,
        }

    @classmethod
    def from_dict(cls, d: dict) -> Vocab:
        return cls(
            int(d["size"]),
            int(d["pad_id"]),
            int(d["mask_id"]),
            tuple(int(i) for i in d["special_ids"]),
            None if d.get("cls_id") is None else int(d["cls_id"]),
            None if d.get("sep_id") is None else int(d["sep_id"]),
            str(d.get("name", "")),
        )


@functools.lru_cache(maxsize=64)
def _tables(vocab: Vocab, device: str) -> tuple[Tensor, Tensor]:
    t = torch.zeros(vocab.size, dtype=torch.bool, device=device)
    t[list(vocab.special_ids)] = True
    return t, torch.nonzero(~t).squeeze(1)


def amino_vocab() -> Vocab:
    """ESM's alphabet as a :class:`Vocab` (module docstring): ``<cls>`` in front, ``<eos>`` after every sequence;
    ``.``, ``-`` and ``<null_1>`` count as special (never masked, never a random replacement)."""
    tok = {t: i for i, t in enumerate(ESM_TOKENS)}
    special = tuple(tok[t] for t in ("<cls>", "<pad>", "<eos>", "<unk>", ".", "-", "<null_1>", "<mask>"))
    return Vocab(len(ESM_TOKENS), tok["<pad>"], tok["<mask>"], special, tok["<cls>"], tok["<eos>"], "amino")


_INVALID = re.compile(f"[^{RESIDUES}]")
_LUT = torch.full((128,), -1, dtype=torch.long)
for _i, _t in enumerate(ESM_TOKENS):
    if len(_t) == 1:
        _LUT[ord(_t)] = _i


def invalid_residues(seq: str) -> list[str]:
    """The distinct letters of ``seq`` (upper-cased) that are no residue of :data:`RESIDUES`, sorted."""
    return sorted(set(_INVALID.findall(seq.upper())))


def encode_protein(seqs: Sequence[str]) -> list[Tensor]:
    """Residue ids (ESM's alphabet, no ``<cls>``/``<eos>``) of every sequence, ``[len]`` int64 each; lower case
    is read as upper case.

    Raises:
        ValueError: a sequence holds a letter outside :data:`RESIDUES` (see :func:`invalid_residues`).
    """
    out = []
    for s in seqs:  # one vectorised lookup per sequence
        raw = torch.frombuffer(bytearray(s.upper().encode("ascii", "replace")), dtype=torch.uint8).long()
        ids = _LUT[raw.clamp(max=127)] if raw.numel() else raw
        bad = invalid_residues(s)
        if bad or bool((ids[: len(s)] < 4).any()):
            raise ValueError(f"invalid residue letter(s) {''.join(bad) or '?'} (valid: {RESIDUES})")
        out.append(ids)
    return out
