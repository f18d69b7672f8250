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
   (``L_fine``) and the coarse head every unit's identity from its first position (``L_coarse``):

.. math::
    \\mathcal{L} = \\mathcal{L}_{fine} + w_c \\, \\mathcal{L}_{coarse} + w_g \\, \\mathcal{L}_{gen},\\qquad
    \\mathcal{L}_{coarse} = -\\frac{1}{|U|} \\sum_{u \\in U} \\log p(y_u \\mid \\tilde{x})

all three through the ``loss`` section (default ``{name: cross_entropy}``).

**Differences from the paper.**  ERNIE-Gram collapses an n-gram to one ``[MASK]`` and predicts the fine tokens
through extra query positions with a designed attention mask; here the n masked tokens keep their positions (the
sequence length never changes, as in BERT) and the coarse prediction reads the unit's first position.  The paper's
lexicon comes from a T-test; this one from PMI (:mod:`geomask.sequences.ngrams`).  The paper's replaced-token
detection term is not implemented.

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
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from geomask.errors import UsageError
from geomask.masking.base import Masker
from geomask.masking.sequence_layout import SequenceLayout
from geomask.masking.sequence_ngram import NgramLayout, NgramMasker
from geomask.masking.sequence_replace import mlm_replace
from geomask.methods.compose import loss_section, masker_section
from geomask.methods.mlm import MLM, LMHead
from geomask.nn.sequence_encoder import SequenceEncoder
from geomask.sequences.batch import SequenceBatch
from geomask.sequences.ngrams import Lexicon, load_lexicon, match_lexicon, mine_lexicon

__all__ = ["ErnieGram", "build_ernie_gram", "resolve_lexicon"]

_NEG = -1.0e9


class ErnieGram(MLM):
    """ERNIE-Gram (module docstring).

    Args:
        encoder: the main :class:`~geomask.nn.sequence_encoder.SequenceEncoder`.
        generator: the generator's (small) encoder over the same vocabulary.
        lexicon: the n-gram lexicon (at most ``lexicon_size`` rows).
        lexicon_size: ``K``, the coarse heads' n-gram outputs.
        masker, loss, tie_embeddings, mask_prob, random_prob: as :class:`~geomask.methods.mlm.MLM`.
        generator_ratio: share of the masked units the generator's samples replace.
        coarse_weight, generator_weight: ``w_c`` and ``w_g``.
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
    ):
        super().__init__(encoder, masker, loss, tie_embeddings, mask_prob, random_prob)
        v, k = encoder.vocab_size, int(lexicon_size)
        if len(lexicon) > k:
            raise UsageError(f"ernie_gram: the lexicon has {len(lexicon)} n-grams but lexicon_size is {k}")
        if len(lexicon) and int(lexicon.grams.max()) >= v:
            raise UsageError(f"ernie_gram: lexicon ids reach {int(lexicon.grams.max())} but vocab_size is {v}")
        if not 0.0 <= generator_ratio <= 1.0:
            raise UsageError(f"ernie_gram: generator_ratio must be in [0, 1], got {generator_ratio!r}")
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
        if isinstance(self.masker, NgramMasker):
            nl = NgramLayout(layout.maskable, layout.word_ids, match >= 0)
            self.masker(nl, generator.clone_state())  # the protocol's call (seen by mask hooks); units() redraws it
            mask, starts = self.masker.units(nl, generator)
        else:
            mask = self.masker(layout, generator).view(batch.ids.shape) & layout.maskable
            starts = mask.long()
        v = self.encoder.vocab_size
        row = match.gather(2, (starts - 2).clamp(0, match.size(2) - 1).unsqueeze(-1)).squeeze(-1)
        ident = torch.where(starts >= 2, v + row, batch.ids)
        return mask, starts, ident

    def _write_units(self, inputs: Tensor, starts: Tensor, chosen: Tensor, pick: Tensor) -> Tensor:
        """``inputs`` with the tokens of the identities ``pick`` written over the units at ``chosen`` starts."""
        v = self.encoder.vocab_size
        b_idx, t_idx = torch.nonzero(chosen, as_tuple=True)
        ident = pick[chosen]
        is_gram = ident >= v
        rows = self.grams[(ident - v).clamp(min=0)]  # [C, max_n]
        tokens = torch.where(is_gram[:, None], rows, torch.cat([ident[:, None], rows[:, 1:].fill_(-1)], 1))
        out = inputs.clone()
        for j in range(tokens.size(1)):  # n <= 3
            ok = tokens[:, j] >= 0
            out[b_idx[ok], t_idx[ok] + j] = tokens[ok, j]
        return out

    def loss_terms(self, batch: Any, generator: torch.Generator) -> dict[str, Tensor]:
        """``loss``, ``mlm`` (fine), ``ngram`` (coarse), ``generator`` and the masked tokens' ``accuracy``."""
        batch = self._check(batch)
        mask, starts, ident = self.units(batch, generator)
        inputs, labels = mlm_replace(batch.ids, mask, batch.vocab, generator, self.mask_prob, self.random_prob)
        unit = starts > 0
        valid = self.identity_lengths(batch.vocab)
        target = ident[unit]
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
        inputs = self._write_units(inputs, starts, chosen, pick)
        h = self.encoder(inputs, batch.attention_mask)
        fine_logits = self.head(h[mask])
        c_logits = self.coarse_head(h[unit]).masked_fill(valid == 0, _NEG)
        fine_target = labels[mask]
        if fine_target.numel() == 0:
            zero = sum(p.sum() * 0.0 for p in self.parameters() if p.requires_grad)
            return {"loss": zero, "mlm": zero, "ngram": zero, "generator": zero}
        fine = self.criterion(fine_logits, fine_target)
        coarse = self.criterion(c_logits, target)
        gen = self.criterion(g_logits, target)
        loss = fine + self.coarse_weight * coarse + self.generator_weight * gen
        acc = (fine_logits.argmax(-1) == fine_target).float().mean().detach()
        return {"loss": loss, "mlm": fine, "ngram": coarse, "generator": gen, "accuracy": acc}


def _cache_path(what: Mapping[str, Any]) -> Path:
    from geomask.datasets.readers import cache_root

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
    lexicon: Any = "generated_text",
    lexicon_size: int = 1000,
    min_count: int = 5,
    measure: str = "pmi",
    masker: Mapping | str | None = None,
    loss: Mapping | str | None = None,
) -> ErnieGram:
    """ERNIE-Gram by keywords (BERT-base sizes by default; the generator a 4-block, 256-wide MLM).

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
    )
