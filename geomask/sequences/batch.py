"""The batch of token sequences: padded ids with their attention mask, lengths, word ids and labels, and its
1-D grid and path-graph views.

Every sequence is ``[cls] tokens [sep]`` (as the vocab says), right-padded with ``pad_id`` to the longest.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import torch
from torch import Tensor

from geomask.masking.sequence_layout import SequenceLayout
from geomask.sequences.vocab import Vocab

__all__ = ["SequenceBatch", "SequenceItem", "collate_sequences"]


@dataclass(frozen=True)
class SequenceItem:
    """One sequence: ``ids [n]`` int64 without specials, ``word_ids [n]`` int64 (or ``None``), its vocab."""

    ids: Tensor
    word_ids: Tensor | None
    vocab: Vocab


@dataclass(frozen=True)
class SequenceBatch:
    """Padded sequences (the ``text`` and ``sequences`` data kinds' batch).

    Attributes:
        ids: ``[B, L]`` int64 token ids, ``vocab.pad_id`` past each sequence's end.
        attention_mask: ``[B, L]`` bool, True at real tokens (Hugging Face's 1s).
        lengths: ``[B]`` int64 real tokens per sequence (specials included).
        vocab: the ids' :class:`~geomask.sequences.vocab.Vocab`.
        word_ids: ``[B, L]`` int64 word of every token (``-1`` at specials and padding), or ``None``.
        labels: ``[B, L]`` int64 targets (``-100`` = none), or ``None``.
    """

    ids: Tensor
    attention_mask: Tensor
    lengths: Tensor
    vocab: Vocab
    word_ids: Tensor | None = None
    labels: Tensor | None = None

    def __len__(self) -> int:
        return self.ids.size(0)

    def to(self, device: torch.device | str) -> SequenceBatch:
        """A copy on ``device`` (tensors moved, never in place)."""
        mv = {k: getattr(self, k) for k in ("ids", "attention_mask", "lengths", "word_ids", "labels")}
        return replace(self, **{k: v.to(device) if v is not None else None for k, v in mv.items()})

    @property
    def maskable(self) -> Tensor:
        """``[B, L]`` bool: real tokens that are not special."""
        return self.attention_mask & ~self.vocab.special_table(self.ids.device)[self.ids]

    def layout(self) -> SequenceLayout:
        """The maskers' :class:`~geomask.masking.sequence_layout.SequenceLayout` of this batch."""
        return SequenceLayout(self.maskable, self.word_ids)

    def grid_coords(self) -> Tensor:
        """The 1-D sparse-grid view: ``[N, 2]`` int64 coordinates ``(b, position)`` of the ``N`` real tokens, in
        row-major order (features: ``ids[attention_mask]``)."""
        return torch.nonzero(self.attention_mask)

    def path_edges(self) -> Tensor:
        """The path-graph view: ``[2, E]`` int64 edges ``i → i + 1`` and back between consecutive real tokens of
        a sequence, over the rows of :meth:`grid_coords`."""
        c = self.grid_coords()
        same = c[1:, 0] == c[:-1, 0]
        src = torch.nonzero(same).squeeze(1)
        fwd = torch.stack([src, src + 1])
        return torch.cat([fwd, fwd.flip(0)], 1)


def collate_sequences(items: Sequence[SequenceItem], max_len: int | None = None) -> SequenceBatch:
    """Pad ``[cls] ids [sep]`` of every item to the longest (each cut to ``max_len`` tokens with its specials).

    Raises:
        ValueError: items of different vocabularies.
    """
    if not items:
        raise ValueError("cannot collate no sequences")
    vocab = items[0].vocab
    if any(it.vocab != vocab for it in items):
        raise ValueError("cannot batch sequences of different vocabularies")
    front = int(vocab.cls_id is not None)
    n_special = front + int(vocab.sep_id is not None)
    body = [it.ids for it in items]
    if max_len is not None:
        body = [t[: max_len - n_special] for t in body]
    sizes = [t.numel() for t in body]
    n_body = torch.tensor(sizes, dtype=torch.long)
    lengths = n_body + n_special
    b, length = len(items), max(sizes) + n_special
    ids = torch.full((b, length), vocab.pad_id, dtype=torch.long)
    # one scatter of all tokens: row b, column front + position within the sequence
    inside = torch.arange(length - n_special)[None, :] < n_body[:, None]
    ids[:, front : front + length - n_special][inside] = torch.cat(body)
    words = None
    if all(it.word_ids is not None for it in items):
        words = torch.full((b, length), -1, dtype=torch.long)
        wb = [it.word_ids for it in items]
        if max_len is not None:
            wb = [w[: max_len - n_special] for w in wb]
        words[:, front : front + length - n_special][inside] = torch.cat(wb).long()
    if vocab.cls_id is not None:
        ids[:, 0] = vocab.cls_id
    if vocab.sep_id is not None:
        ids[torch.arange(b), lengths - 1] = vocab.sep_id
    attn = torch.arange(length)[None, :] < lengths[:, None]
    return SequenceBatch(ids, attn, lengths, vocab, words)
