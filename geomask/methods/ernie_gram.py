"""ERNIE-Gram (Xiao et al., NAACL 2021): n-grams of a mined lexicon masked as units and predicted both by their
explicit n-gram identity (coarse) and token by token (fine), with a small generator that samples plausible n-grams
to replace some masked ones.

The step on a :class:`~geomask.sequences.batch.SequenceBatch`:

1. :func:`~geomask.sequences.ngrams.match_lexicon` finds the lexicon n-grams of maskable tokens; the ``masker``
   (default ``{name: ngram, ratio: 0.15}``) masks whole units (:class:`~geomask.masking.sequence_ngram.NgramMasker`;
   any other sequence masker makes every masked token a unit of one) and
   :func:`~geomask.masking.sequence_replace.mlm_replace` replaces the masked tokens 80/10/10.
2. Identities live in ERNIE-Gram's joint space ``<V_F, V_N>``: a unit of one token is its token id, an n-gram
   ``V + k`` for lexicon row ``k``.  The **generator** (a tiny MLM: its own small encoder and a coarse head over
   the joint space) reads the masked inputs and predicts every unit's identity from the unit's first position;
   its cross-entropy is ``L_gen``.  For a ``generator_ratio`` share of the units (drawn per unit) an identity of
   the same length is sampled from the generator's softmax (detached, Gumbel-max from the step's generator) and
   written over the unit's tokens: a plausible n-gram in place of the masks.
3. The encoder (MLM's) reads those inputs; the fine head (BERT's LM head) predicts every masked token
   (``L_fine``) and the coarse head every unit's identity from its first position (``L_coarse``).
4. **Replaced-token detection** (ELECTRA's discriminative task, which ERNIE-Gram adds for its sampled n-grams):
   the RTD head (dense, GELU, dense to one logit, as ELECTRA's discriminator head) reads the same encoder states
   and tells, token by token, whether the generator wrote it: ``r_t = 1`` where a generator's sample replaced
   the token with a different one (a sample equal to the original counts as original, as in ELECTRA; ``[MASK]``
   and the 10 % random tokens of the 80/10/10 rule are 0).  ``L_rtd`` is the binary cross-entropy averaged over
   the ``T`` real (non-padding) tokens:

.. math::
    \\mathcal{L} = \\mathcal{L}_{fine} + w_c \\, \\mathcal{L}_{coarse} + w_g \\, \\mathcal{L}_{gen}
        + w_r \\, \\mathcal{L}_{rtd},\\qquad
    \\mathcal{L}_{coarse} = -\\frac{1}{|U|} \\sum_{u \\in U} \\log p(y_u \\mid \\tilde{x}),\\qquad
    \\mathcal{L}_{rtd} = \\frac{1}{T} \\sum_{t} \\mathrm{BCE}(\\sigma(d_t), r_t)

the first three through the ``loss`` section (default ``{name: cross_entropy}``).  ``rtd_weight`` ``w_r`` 0 builds
no RTD head and gives exactly the loss without it (no term ``rtd``).  Its default 1.0 is an unweighted sum of the
terms, which is how this project reads the paper's objective; the paper's text was not at hand to confirm a
weight and the official ERNIE-Gram repository ships fine-tuning code only (ELECTRA itself weights its
discriminator by 50 against a generator-only MLM loss, a different balance: here the main model also carries the
fine and coarse MLM terms).  ``generator_ratio`` bounds the positives RTD sees (at most 0.15 x 0.3 of the
maskable tokens by default; fewer as the generator learns to sample the original).

**Differences from the paper.**  ERNIE-Gram collapses an n-gram to one ``[MASK]`` and predicts the fine tokens
through extra query positions with a designed attention mask; here the n masked tokens keep their positions (the
sequence length never changes, as in BERT) and the coarse prediction reads the unit's first position.  The paper's
lexicon comes from a T-test; this one from PMI (:mod:`geomask.sequences.ngrams`).

**One mask per step.**  The n-gram masker's units (where a masked unit starts and its length) are drawn once, through
the masker protocol, by :class:`UnitMasker` over a :class:`UnitLayout` (rows: candidate units); the token mask is
their coverage.

**The lexicon** (``lexicon``): ``"generated_text"`` mines the GENERATED default text (``data.kind:
generated_text`` with its default section) on first use into ``$GEOMASK_CACHE`` (atomic write, under a lock); a
dataset folder (``geomask prep text|sequences``) is mined the same way; a ``.pt`` file is a saved
:class:`~geomask.sequences.ngrams.Lexicon`; a list of id lists is the lexicon itself.  The coarse head always has
``vocab_size + lexicon_size`` outputs (rows a smaller lexicon leaves empty are never predicted), and the lexicon
is a buffer of the state dict, so a checkpoint carries it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from geomask.errors import UsageError
from geomask.masking.base import Masker
from geomask.masking.layout import Layout
from geomask.masking.sequence_layout import SequenceLayout
from geomask.masking.sequence_ngram import NgramLayout, NgramMasker
from geomask.masking.sequence_replace import mlm_replace
from geomask.methods.compose import loss_section, masker_section
from geomask.methods.mlm import MLM, LMHead
from geomask.nn.sequence_encoder import SequenceEncoder
from geomask.sequences.batch import SequenceBatch
from geomask.sequences.ngrams import Lexicon, load_lexicon, match_lexicon, mine_lexicon

__all__ = ["Corruption", "ErnieGram", "RTDHead", "UnitLayout", "UnitMasker", "build_ernie_gram", "resolve_lexicon"]

_NEG = -1.0e9


@dataclass(frozen=True, eq=False)
class UnitLayout(Layout):
    """The candidate units of an :class:`~geomask.masking.sequence_ngram.NgramLayout`: row ``(b, t, n - 1)``
    (``[B, L, max_n]`` flattened row-major) is a unit of ``n`` tokens starting at token ``t`` of sequence ``b``.

    Args:
        tokens: the token layout with its lexicon n-grams.
        max_n: the longest unit.
    """

    tokens: NgramLayout
    max_n: int

    @property
    def num_samples(self) -> int:  # type: ignore[override]
        return self.tokens.num_samples

    @property
    def batch(self) -> Tensor:  # type: ignore[override]
        per = self.tokens.length * self.max_n
        return torch.arange(self.num_samples, device=self.device).repeat_interleave(per)

    @property
    def device(self) -> torch.device:
        return self.tokens.device

    @property
    def dense_shape(self) -> tuple[int, int]:
        return (self.num_samples, self.tokens.length * self.max_n)


class UnitMasker(Masker):
    """An :class:`~geomask.masking.sequence_ngram.NgramMasker`'s units through the masker protocol: True at row
    ``(b, t, n - 1)`` of a :class:`UnitLayout` where a masked unit of ``n`` tokens starts (one draw of
    :meth:`NgramMasker.units`).

    Args:
        masker: the n-gram masker whose draw it reports.
    """

    layouts = (UnitLayout,)

    def __init__(self, masker: NgramMasker):
        self.masker = masker

    def mask(self, layout: UnitLayout, generator: torch.Generator) -> Tensor:  # type: ignore[override]
        _, starts = self.masker.units(layout.tokens, generator)
        n = torch.arange(1, layout.max_n + 1, device=starts.device)
        return (starts.unsqueeze(-1) == n).reshape(-1)


def unit_coverage(starts: Tensor, max_n: int) -> Tensor:
    """``[B, L]`` bool: the tokens covered by units of lengths ``starts`` ``[B, L]`` (0: no unit starts there)."""
    L = starts.size(1)
    mask = torch.zeros(starts.shape, dtype=torch.bool, device=starts.device)
    for j in range(min(max_n, L)):  # n <= 3
        mask[:, j:] |= starts[:, : L - j] > j
    return mask


class RTDHead(nn.Module):
    """ELECTRA's discriminator head: ``w^T GELU(W h + b) + c``, one replaced-token logit per position.

    Shapes:
        ``[*, E]`` → ``[*]``.
    """

    def __init__(self, dim: int):
        super().__init__()
        self.dense, self.act, self.out = nn.Linear(dim, dim), nn.GELU(), nn.Linear(dim, 1)

    def forward(self, h: Tensor) -> Tensor:
        return self.out(self.act(self.dense(h))).squeeze(-1)


class Corruption(NamedTuple):
    """One step's corrupted inputs (:meth:`ErnieGram.corrupt`); ``U`` units, ``V + K`` identities.

    Args:
        mask: ``[B, L]`` bool, the masked tokens.
        labels: ``[B, L]`` int64, the original ids on the mask, ``-100`` elsewhere.
        unit: ``[B, L]`` bool, the units' first tokens.
        target: ``[U]`` int64, the units' identities.
        valid: ``[V + K]`` int64, every identity's length (0: never predicted).
        g_logits: ``[U, V + K]``, the generator's logits.
        inputs: ``[B, L]`` int64, what the encoder reads.
        replaced: ``[B, L]`` bool, the tokens a generator's sample changed (the RTD labels).
    """

    mask: Tensor
    labels: Tensor
    unit: Tensor
    target: Tensor
    valid: Tensor
    g_logits: Tensor
    inputs: Tensor
    replaced: Tensor


class ErnieGram(MLM):
    """ERNIE-Gram (module docstring).

    Args:
        encoder: the main :class:`~geomask.nn.sequence_encoder.SequenceEncoder`.
        generator: the generator's (small) encoder over the same vocabulary.
        lexicon: the n-gram lexicon (at most ``lexicon_size`` rows).
        lexicon_size: ``K``, the coarse heads' n-gram outputs.
        masker, loss, tie_embeddings, mask_prob, random_prob: as :class:`~geomask.methods.mlm.MLM`.
        generator_ratio: share of the masked units the generator's samples replace.
        coarse_weight, generator_weight, rtd_weight: ``w_c``, ``w_g`` and ``w_r`` (0: no RTD head, no ``rtd``).
    """

    def __init__(
        self,
        encoder: SequenceEncoder,
        generator: SequenceEncoder,
        lexicon: Lexicon,
        lexicon_size: int,
        masker: Masker,
        loss: torch.nn.Module,
        tie_embeddings: bool = True,
        mask_prob: float = 0.8,
        random_prob: float = 0.1,
        generator_ratio: float = 0.3,
        coarse_weight: float = 1.0,
        generator_weight: float = 1.0,
        rtd_weight: float = 1.0,
    ):
        super().__init__(encoder, masker, loss, tie_embeddings, mask_prob, random_prob)
        v, k = encoder.vocab_size, int(lexicon_size)
        if len(lexicon) > k:
            raise UsageError(f"ernie_gram: the lexicon has {len(lexicon)} n-grams but lexicon_size is {k}")
        if len(lexicon) and int(lexicon.grams.max()) >= v:
            raise UsageError(f"ernie_gram: lexicon ids reach {int(lexicon.grams.max())} but vocab_size is {v}")
        if not 0.0 <= generator_ratio <= 1.0:
            raise UsageError(f"ernie_gram: generator_ratio must be in [0, 1], got {generator_ratio!r}")
        if isinstance(rtd_weight, bool) or not isinstance(rtd_weight, (int, float)) or not rtd_weight >= 0.0:
            raise UsageError(f"ernie_gram: rtd_weight must be a number >= 0, got {rtd_weight!r}")
        grams = torch.full((k, lexicon.max_n), -1, dtype=torch.long)
        grams[: len(lexicon)] = lexicon.grams
        lengths = torch.zeros(k, dtype=torch.long)
        lengths[: len(lexicon)] = lexicon.lengths
        self.register_buffer("grams", grams)
        self.register_buffer("gram_lengths", lengths)
        self.generator = generator
        self.coarse_head = LMHead(encoder.dim, v + k, encoder.norm.eps)
        self.generator_head = LMHead(generator.dim, v + k, generator.norm.eps)
        self.generator_ratio = float(generator_ratio)
        self.coarse_weight, self.generator_weight = float(coarse_weight), float(generator_weight)
        self.rtd_weight = float(rtd_weight)
        # built last, so the other weights are initialised as without it (rtd_weight 0 gives today's model)
        self.rtd_head: RTDHead | None
        if self.rtd_weight > 0:
            self.rtd_head = RTDHead(encoder.dim)
        else:
            self.register_module("rtd_head", None)

    def identity_lengths(self, vocab: Any) -> Tensor:
        """``[V + K]`` int64 length of every identity: 1 for regular token ids, n for lexicon rows, 0 invalid."""
        tok = (~vocab.special_table(self.grams.device)).long()
        v = self.encoder.vocab_size
        tok = torch.cat([tok, tok.new_zeros(max(v - tok.numel(), 0))])[:v]
        return torch.cat([tok, self.gram_lengths])

    def units(self, batch: SequenceBatch, generator: torch.Generator) -> tuple[Tensor, Tensor, Tensor]:
        """The step's mask ``[B, L]``, unit lengths at unit starts ``[B, L]`` and identities there ``[B, L]``."""
        layout = batch.layout()
        match = match_lexicon(batch.ids, layout.maskable, (self.grams, self.gram_lengths))
        if isinstance(self.masker, NgramMasker):  # one draw, through the protocol (module docstring)
            nl = NgramLayout(layout.maskable, layout.word_ids, match >= 0)
            max_n = len(self.masker.probs)
            chosen = UnitMasker(self.masker)(UnitLayout(nl, max_n), generator).view(*batch.ids.shape, max_n)
            starts = (chosen.long() * torch.arange(1, max_n + 1, device=chosen.device)).sum(-1)
            mask = unit_coverage(starts, max_n)
        else:
            mask = self.masker(layout, generator).view(batch.ids.shape) & layout.maskable
            starts = mask.long()
        v = self.encoder.vocab_size
        row = match.gather(2, (starts - 2).clamp(0, match.size(2) - 1).unsqueeze(-1)).squeeze(-1)
        ident = torch.where(starts >= 2, v + row, batch.ids)
        return mask, starts, ident

    def _write_units(self, inputs: Tensor, starts: Tensor, chosen: Tensor, pick: Tensor) -> tuple[Tensor, Tensor]:
        """``inputs`` with the tokens of the identities ``pick`` written over the units at ``chosen`` starts, and
        the ``[B, L]`` bool of the positions written."""
        v = self.encoder.vocab_size
        b_idx, t_idx = torch.nonzero(chosen, as_tuple=True)
        ident = pick[chosen]
        is_gram = ident >= v
        rows = self.grams[(ident - v).clamp(min=0)]  # [C, max_n]
        tokens = torch.where(is_gram[:, None], rows, torch.cat([ident[:, None], rows[:, 1:].fill_(-1)], 1))
        out = inputs.clone()
        written = torch.zeros(inputs.shape, dtype=torch.bool, device=inputs.device)
        for j in range(tokens.size(1)):  # n <= 3
            ok = tokens[:, j] >= 0
            out[b_idx[ok], t_idx[ok] + j] = tokens[ok, j]
            written[b_idx[ok], t_idx[ok] + j] = True
        return out, written

    def corrupt(self, batch: SequenceBatch, generator: torch.Generator) -> Corruption:
        """Steps 1 and 2 of the module docstring: the units, the 80/10/10 inputs and the generator's samples
        written over a ``generator_ratio`` share of the units (draws in this order from ``generator``)."""
        mask, starts, ident = self.units(batch, generator)
        inputs, labels = mlm_replace(batch.ids, mask, batch.vocab, generator, self.mask_prob, self.random_prob)
        unit = starts > 0
        valid = self.identity_lengths(batch.vocab)
        g_logits = self.generator_head(self.generator(inputs, batch.attention_mask)[unit])
        g_logits = g_logits.masked_fill(valid == 0, _NEG)
        # the generator's samples: identities of the unit's own length, Gumbel-max (detached)
        u = torch.rand(g_logits.shape, generator=generator, device=generator.device).to(g_logits.device)
        gumbel = -torch.log(-torch.log(u.clamp(1e-20, 1.0 - 1e-7)))
        same = valid[None, :] == starts[unit][:, None]
        sample = (g_logits.detach() + gumbel).masked_fill(~same, float("-inf")).argmax(-1)
        r = torch.rand(starts.shape, generator=generator, device=generator.device).to(starts.device)
        chosen = unit & (r < self.generator_ratio)
        pick = torch.zeros_like(ident)
        pick[unit] = sample
        inputs, written = self._write_units(inputs, starts, chosen, pick)
        replaced = written & (inputs != batch.ids)  # a sample equal to the original is no replacement (ELECTRA)
        return Corruption(mask, labels, unit, ident[unit], valid, g_logits, inputs, replaced)

    def loss_terms(self, batch: Any, generator: torch.Generator) -> dict[str, Tensor]:
        """``loss``, ``mlm`` (fine), ``ngram`` (coarse), ``generator``, ``rtd`` (when ``rtd_weight > 0``) and the
        masked tokens' ``accuracy``."""
        batch = self._check(batch)
        c = self.corrupt(batch, generator)
        h = self.encoder(c.inputs, batch.attention_mask)
        fine_logits = self.head(h[c.mask])
        c_logits = self.coarse_head(h[c.unit]).masked_fill(c.valid == 0, _NEG)
        fine_target = c.labels[c.mask]
        if fine_target.numel() == 0:
            zero = sum(p.sum() * 0.0 for p in self.parameters() if p.requires_grad)
            out = {"loss": zero, "mlm": zero, "ngram": zero, "generator": zero}
            return {**out, "rtd": zero} if self.rtd_head is not None else out
        fine = self.criterion(fine_logits, fine_target)
        coarse = self.criterion(c_logits, c.target)
        gen = self.criterion(c.g_logits, c.target)
        loss = fine + self.coarse_weight * coarse + self.generator_weight * gen
        acc = (fine_logits.argmax(-1) == fine_target).float().mean().detach()
        terms = {"mlm": fine, "ngram": coarse, "generator": gen}
        if self.rtd_head is not None:
            real = batch.attention_mask
            rtd = nn.functional.binary_cross_entropy_with_logits(self.rtd_head(h[real]), c.replaced[real].float())
            loss = loss + self.rtd_weight * rtd
            terms["rtd"] = rtd
        return {"loss": loss, **terms, "accuracy": acc}

    @torch.no_grad()
    def rtd_scores(self, batch: SequenceBatch, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """The RTD head's ``[B, L]`` probabilities of "replaced" on one step's inputs (:meth:`corrupt`, the draws
        of :meth:`forward` with the same generator state) and the ``[B, L]`` bool labels; for evaluation."""
        if self.rtd_head is None:
            raise UsageError("ernie_gram: rtd_weight is 0, so the model has no RTD head")
        batch = self._check(batch)
        c = self.corrupt(batch, generator)
        return torch.sigmoid(self.rtd_head(self.encoder(c.inputs, batch.attention_mask))), c.replaced


def _cache_path(what: Mapping[str, Any]) -> Path:
    from geomask.datasets.cache import cache_root

    digest = hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()[:12]
    return cache_root("") / f"ernie_gram_lexicon-{digest}.pt"


def _mine_folder(root: Path, opts: Mapping[str, Any], vocab_size: int) -> Lexicon:
    """Mine a dataset folder's token ids (cached in ``$GEOMASK_CACHE``, keyed by its manifest and ``opts``)."""
    from geomask.datasets.store import DatasetReader
    from geomask.datasets.text import SequenceDataset
    from geomask.io.atomic import build_lock

    manifest = DatasetReader(root).manifest
    path = _cache_path({"manifest": manifest, "root": str(root.resolve()), **opts})
    if not path.is_file():
        with build_lock(path):
            if not path.is_file():
                ds = SequenceDataset(root, manifest["kind"])
                offsets = torch.cat([ds.starts[:1], ds.ends]) if len(ds) else torch.zeros(1, dtype=torch.long)
                ids = ds.ids[int(offsets[0]) :] if len(ds) else ds.ids[:0]
                lex = mine_lexicon(ids, offsets - offsets[0], vocab_size=max(ds.vocab.size, 1), **opts)
                lex.save(path)
    return load_lexicon(path)


def resolve_lexicon(spec: Any, *, vocab_size: int, top_k: int, min_count: int, measure: str) -> Lexicon:
    """The lexicon of the ``lexicon`` keyword (module docstring)."""
    opts = {"top_k": top_k, "min_count": min_count, "measure": measure, "max_n": 3}
    if isinstance(spec, Sequence) and not isinstance(spec, str):
        return Lexicon.from_grams([list(g) for g in spec], vocab_size)
    if not isinstance(spec, str) or not spec:
        raise UsageError(
            f"ernie_gram: lexicon must be 'generated_text', a folder, a .pt file or id lists, got {spec!r}"
        )
    if spec == "generated_text":
        from geomask.datasets.text import GeneratedTextSpec, build_generated_text

        return _mine_folder(build_generated_text(GeneratedTextSpec()), opts, vocab_size)
    path = Path(spec)
    if path.is_dir():
        return _mine_folder(path, opts, vocab_size)
    if path.is_file():
        return load_lexicon(path)
    raise UsageError(f"ernie_gram: lexicon {spec!r}: no such folder or file")


def build_ernie_gram(
    *,
    vocab_size: int = 30522,
    dim: int = 768,
    depth: int = 12,
    heads: int = 12,
    mlp_ratio: float = 4.0,
    max_len: int = 512,
    eps: float = 1e-12,
    drop_path: float = 0.0,
    positions: str = "learned",
    tie_embeddings: bool = True,
    mask_prob: float = 0.8,
    random_prob: float = 0.1,
    generator_dim: int = 256,
    generator_depth: int = 4,
    generator_heads: int = 4,
    generator_ratio: float = 0.3,
    generator_weight: float = 1.0,
    coarse_weight: float = 1.0,
    rtd_weight: float = 1.0,
    lexicon: Any = "generated_text",
    lexicon_size: int = 1000,
    min_count: int = 5,
    measure: str = "pmi",
    masker: Mapping | str | None = None,
    loss: Mapping | str | None = None,
) -> ErnieGram:
    """ERNIE-Gram by keywords (BERT-base sizes by default; the generator a 4-block, 256-wide MLM).

    ``rtd_weight`` weighs the replaced-token detection term (0: none).
    ``masker`` defaults to ``{name: ngram, ratio: 0.15}``, ``loss`` to ``{name: cross_entropy}``; ``lexicon``,
    ``lexicon_size`` (top-K), ``min_count`` and ``measure`` (``pmi`` or ``frequency``) choose the n-gram lexicon.
    """
    encoder = SequenceEncoder(vocab_size, dim, depth, heads, mlp_ratio, max_len, eps, drop_path, positions)
    gen = SequenceEncoder(
        vocab_size, generator_dim, generator_depth, generator_heads, mlp_ratio, max_len, eps, 0.0, positions
    )
    lex = resolve_lexicon(lexicon, vocab_size=vocab_size, top_k=lexicon_size, min_count=min_count, measure=measure)
    msk = masker_section(masker, {"name": "ngram", "ratio": 0.15}, layout=SequenceLayout)
    return ErnieGram(
        encoder,
        gen,
        lex,
        lexicon_size,
        msk,
        loss_section(loss, {"name": "cross_entropy"}),
        tie_embeddings,
        mask_prob,
        random_prob,
        generator_ratio,
        coarse_weight,
        generator_weight,
        rtd_weight,
    )
