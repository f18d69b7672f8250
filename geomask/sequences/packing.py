"""Packed sequence batches: several short sequences share one row, attention kept inside each sequence.

**Packing.**  :func:`collate_packed` places every item's ``[cls] ids [sep]`` (``n`` tokens, specials included)
into rows of at most ``max_len`` tokens by *first-fit decreasing*: items in decreasing length (ties: batch order,
a stable sort, so packing is deterministic), each into the first row with room for it, else a new row.  FFD uses
at most ``11/9 OPT + 6/9`` rows (Dósa 2007); on WikiText-2 lines it leaves a few % padding where padding to the
longest leaves most of the batch padding (``benchmarks/bench_sequences.py``).  Rows are then cut to the fullest
row's length (never longer than ``max_len``).  The loop over *items* (not tokens) chooses rows; the tokens are
placed with one scatter.

**Per token**: ``doc_ids`` (which item, its index in the collated list; ``-1`` at padding), ``segment_ids`` (the
item's rank within its row, ``-1`` at padding) and ``positions`` (``0`` at each item's ``[cls]``, reset at every
sequence start; ``0`` at padding).

**Attention** (:meth:`PackedSequenceBatch.attention`): the block-diagonal ``[R, 1, L, L]`` boolean SDPA mask
``doc_q == doc_k`` with real keys only: a token attends to its own sequence, never to a neighbour or padding.

**Masking.**  :meth:`PackedSequenceBatch.layout` is the maskers' :class:`SequenceLayout` whose *samples are the
sequences* (``[D, S]``, exactly the layout of ``collate_sequences`` of the same items), so every masker keeps its
per-sequence budget (``mlm``: ``round(0.15 · maskable)`` of *each sequence*, not of the row); its mask goes back
into the rows with :meth:`PackedSequenceBatch.pack`.  With the same generator a packed step draws the very masks
and replacements of the unpacked one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch
from torch import Tensor

from geomask.errors import UsageError
from geomask.masking.sequence_layout import SequenceLayout
from geomask.sequences.batch import SequenceBatch, SequenceItem
from geomask.sequences.vocab import Vocab

__all__ = ["PackedSequenceBatch", "collate_packed", "pack_rows"]


@dataclass(frozen=True)
class PackedSequenceBatch:
    """Sequences packed into rows (module docstring).  Not a :class:`SequenceBatch`: a method must accept packing
    on purpose (a method reading it as padded rows would attend across sequences).

    Attributes:
        ids: ``[R, L]`` int64 token ids, ``vocab.pad_id`` at padding.
        attention_mask: ``[R, L]`` bool, True at real tokens.
        doc_ids: ``[R, L]`` int64 item of every token (``0 .. D-1``), ``-1`` at padding.
        segment_ids: ``[R, L]`` int64 rank of the token's item within its row, ``-1`` at padding.
        positions: ``[R, L]`` int64 position within its own sequence (``0`` at its ``[cls]``; ``0`` at padding).
        slots: ``[D, S]`` int64 flat index (into ``R * L``) of token ``t`` of item ``d``; ``-1`` past its end.
        doc_lengths: ``[D]`` int64 tokens of every item (specials included).
        vocab: the ids' vocabulary.
        word_ids: ``[R, L]`` int64 word of every token within its sequence (``-1`` at specials, padding), or None.
    """

    ids: Tensor
    attention_mask: Tensor
    doc_ids: Tensor
    segment_ids: Tensor
    positions: Tensor
    slots: Tensor
    doc_lengths: Tensor
    vocab: Vocab
    word_ids: Tensor | None = None

    def __len__(self) -> int:
        """The number of sequences ``D`` (the samples), not rows."""
        return self.slots.size(0)

    @property
    def num_rows(self) -> int:
        return self.ids.size(0)

    @property
    def lengths(self) -> Tensor:
        """``[R]`` real tokens per row."""
        return self.attention_mask.sum(1)

    @property
    def padding_fraction(self) -> float:
        """Share of the ``R * L`` positions that are padding."""
        return 1.0 - float(self.attention_mask.float().mean()) if self.ids.numel() else 0.0

    def to(self, device: torch.device | str) -> PackedSequenceBatch:
        """A copy on ``device`` (tensors moved, never in place)."""
        keys = ("ids", "attention_mask", "doc_ids", "segment_ids", "positions", "slots", "doc_lengths", "word_ids")
        mv = {k: getattr(self, k) for k in keys}
        return replace(self, **{k: v.to(device) if v is not None else None for k, v in mv.items()})

    @property
    def maskable(self) -> Tensor:
        """``[R, L]`` bool: real tokens that are not special."""
        return self.attention_mask & ~self.vocab.special_table(self.ids.device)[self.ids]

    def _valid(self) -> Tensor:
        return self.slots >= 0

    def unpack(self, x: Tensor, fill: int | float | bool = 0) -> Tensor:
        """``[R, L, *]`` → ``[D, S, *]``: every sequence's tokens in its own row, ``fill`` past its end."""
        flat = x.reshape(self.ids.numel(), *x.shape[2:])
        out = flat[self.slots.clamp(min=0)]
        v = self._valid().view(*self.slots.shape, *([1] * (x.dim() - 2)))
        return torch.where(v, out, torch.full_like(out, fill))

    def pack(self, x: Tensor, fill: int | float | bool = 0) -> Tensor:
        """``[D, S, *]`` (or ``[D * S, *]``) → ``[R, L, *]``: the inverse of :meth:`unpack`, ``fill`` at padding."""
        d, s = self.slots.shape
        if tuple(x.shape[:2]) != (d, s):
            x = x.reshape(d, s, *x.shape[1:])
        rest = x.shape[2:]
        out = torch.full((self.ids.numel(), *rest), fill, dtype=x.dtype, device=x.device)
        v = self._valid()
        out[self.slots[v]] = x[v]
        return out.view(*self.ids.shape, *rest)

    def unpacked(self) -> SequenceBatch:
        """The same sequences as a padded :class:`SequenceBatch` ``[D, S]`` (= ``collate_sequences`` of the items)."""
        v = self._valid()
        words = None if self.word_ids is None else self.unpack(self.word_ids, -1)
        return SequenceBatch(self.unpack(self.ids, self.vocab.pad_id), v, self.doc_lengths, self.vocab, words)

    def layout(self) -> SequenceLayout:
        """The maskers' layout whose samples are the sequences ``[D, S]`` (module docstring); a mask of it goes
        into the rows with :meth:`pack`."""
        return self.unpacked().layout()

    def attention(self) -> Tensor:
        """``[R, 1, L, L]`` bool SDPA mask (True = may attend): same sequence, real keys (block-diagonal)."""
        return attention_within(self.doc_ids, self.attention_mask)

    def pool(self, h: Tensor) -> Tensor:
        """``[R, L, E]`` → ``[D, E]``: the mean of every sequence's tokens (specials included, as the unpacked
        mean over real tokens)."""
        d = self.doc_ids.reshape(-1)
        keep = d >= 0
        e = h.size(-1)
        s = h.new_zeros(len(self), e).index_add_(0, d[keep], h.reshape(-1, e)[keep])
        return s / self.doc_lengths.clamp_min(1).to(h.dtype)[:, None]

    def grid_coords(self) -> Tensor:
        """``[N, 2]`` int64 ``(row, column)`` of the real tokens, row-major (features: ``ids[attention_mask]``)."""
        return torch.nonzero(self.attention_mask)

    def path_edges(self) -> Tensor:
        """``[2, E]`` int64 edges ``i → i + 1`` and back between consecutive tokens of one sequence (none across
        the sequences of a row), over the rows of :meth:`grid_coords`."""
        d = self.doc_ids[self.attention_mask]
        src = torch.nonzero(d[1:] == d[:-1]).squeeze(1)
        fwd = torch.stack([src, src + 1])
        return torch.cat([fwd, fwd.flip(0)], 1)


def attention_within(segments: Tensor, attention_mask: Tensor | None = None) -> Tensor:
    """The block-diagonal boolean SDPA mask of packed rows, batched.

    A real query attends the real keys of its own segment; a padding query (``attention_mask`` False) attends the
    real keys of its row, as unpacked padding does (never an all-False row, so SDPA gives no NaN).

    Shapes:
        ``segments [R, L]`` int64 (any ids, equal = same sequence), ``attention_mask [R, L]`` bool →
        ``[R, 1, L, L]`` bool.
    """
    same = segments[:, :, None] == segments[:, None, :]
    if attention_mask is None:
        return same[:, None]
    real = attention_mask
    return (real[:, None, :] & (same | ~real[:, :, None]))[:, None]


def pack_rows(sizes: Sequence[int] | Tensor, max_len: int) -> tuple[Tensor, Tensor]:
    """First-fit decreasing: the row and column offset of every item of ``sizes`` tokens in rows of ``max_len``.

    Raises:
        UsageError: an item longer than ``max_len`` (one line naming it).
    """
    n = np.asarray(torch.as_tensor(sizes, dtype=torch.long).cpu(), dtype=np.int64)
    if max_len < 1:
        raise UsageError(f"pack length must be >= 1, got {max_len}")
    if n.size and int(n.max()) > max_len:
        i = int(np.argmax(n > max_len))
        raise UsageError(
            f"sequence {i} has {int(n[i])} tokens with its specials, longer than the pack length {max_len}: "
            f"cut the records to at most {max_len} tokens or raise the pack length"
        )
    order = np.argsort(-n, kind="stable")
    room = np.empty(len(n), dtype=np.int64)  # room left in each open row
    rows = np.empty(len(n), dtype=np.int64)
    offs = np.empty(len(n), dtype=np.int64)
    used = 0
    for i in order:  # a loop over items (sequences), not tokens
        fits = np.flatnonzero(room[:used] >= n[i])
        if fits.size:
            r = int(fits[0])
        else:
            r, used = used, used + 1
            room[r] = max_len
        rows[i], offs[i] = r, max_len - room[r]
        room[r] -= n[i]
    return torch.from_numpy(rows), torch.from_numpy(offs)


def collate_packed(items: Sequence[SequenceItem], max_len: int) -> PackedSequenceBatch:
    """Pack ``[cls] ids [sep]`` of every item into rows of at most ``max_len`` tokens (module docstring).

    Raises:
        UsageError: no items, items of different vocabularies, or an item longer than ``max_len`` with its
            specials (one line naming it).
    """
    if not items:
        raise UsageError("cannot pack no sequences")
    vocab = items[0].vocab
    if any(it.vocab != vocab for it in items):
        raise UsageError("cannot pack sequences of different vocabularies")
    front = int(vocab.cls_id is not None)
    n_special = front + int(vocab.sep_id is not None)
    body_n = torch.tensor([it.ids.numel() for it in items], dtype=torch.long)
    n = body_n + n_special
    rows, offs = pack_rows(n, max_len)
    d = len(items)
    r = int(rows.max()) + 1
    fill = torch.zeros(r, dtype=torch.long).index_add_(0, rows, n)
    length = int(fill.max())
    start = rows * length + offs  # flat index of every item's first token
    # every token of every item (specials included): its item and its position within the item
    doc = torch.arange(d).repeat_interleave(n)
    pos = torch.arange(int(n.sum())) - (torch.cumsum(n, 0) - n).repeat_interleave(n)
    flat = start[doc] + pos
    total = r * length
    ids = torch.full((total,), vocab.pad_id, dtype=torch.long)
    doc_ids = torch.full((total,), -1, dtype=torch.long)
    positions = torch.zeros(total, dtype=torch.long)
    doc_ids[flat], positions[flat] = doc, pos
    body = (pos >= front) & (pos < front + body_n[doc])
    ids[flat[body]] = torch.cat([it.ids for it in items]).long()
    if vocab.cls_id is not None:
        ids[start] = vocab.cls_id
    if vocab.sep_id is not None:
        ids[start + n - 1] = vocab.sep_id
    words = None
    if all(it.word_ids is not None for it in items):
        words = torch.full((total,), -1, dtype=torch.long)
        words[flat[body]] = torch.cat([it.word_ids for it in items]).long()
        words = words.view(r, length)
    # rank of every item within its row: items sorted by (row, offset), minus the row's first rank
    key = rows * (max_len + 1) + offs
    srt = torch.argsort(key, stable=True)
    rank = torch.empty(d, dtype=torch.long)
    rank[srt] = torch.arange(d)
    per_row = torch.zeros(r, dtype=torch.long).index_add_(0, rows, torch.ones_like(rows))
    seg = rank - (torch.cumsum(per_row, 0) - per_row)[rows]
    segment_ids = torch.full((total,), -1, dtype=torch.long)
    segment_ids[flat] = seg[doc]
    s = int(n.max())
    cols = torch.arange(s)
    slots = torch.where(cols[None, :] < n[:, None], start[:, None] + cols[None, :], torch.full((d, s), -1))
    return PackedSequenceBatch(
        ids.view(r, length),
        (doc_ids >= 0).view(r, length),
        doc_ids.view(r, length),
        segment_ids.view(r, length),
        positions.view(r, length),
        slots,
        n,
        vocab,
        words,
    )
