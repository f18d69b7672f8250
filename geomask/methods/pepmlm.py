"""PepMLM (Chen et al. 2024): a protein LM that writes a peptide binder for a receptor by filling in the masked
C-terminal peptide of ``<cls> receptor <eos> peptide <eos>``.

The step: the ``masker`` (default ``{name: terminus}``) masks the *whole* peptide (exactly its residues, never the
receptor, specials or padding; :mod:`geomask.masking.sequence_terminus`); every masked residue becomes ``<mask>``
(no 80/10/10: ``mask_prob = 1``); the :class:`~geomask.nn.sequence_encoder.SequenceEncoder` (rotary positions, as
ESM-2) encodes the pair; the BERT / ESM LM head (:class:`~geomask.methods.mlm.LMHead`, imported) gives logits; the
``loss`` (default ``{name: cross_entropy}``) averages over the peptide residues:

.. math::
    \\mathcal{L} = -\\frac{1}{|P|} \\sum_{t \\in P} \\log p(x_t \\mid r, \\texttt{<mask>}^{|P|})

PepMLM fine-tunes ESM-2 650M; no ESM-2 weights are available offline here, so the model is a small protein LM
trained from scratch on the pairs (``configs/pepmlm.yaml``).  :func:`generate` writes peptides by iterative
unmasking, :func:`binder_pseudo_perplexity` scores true binders against shuffled ones and a unigram baseline.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from geomask.datasets.peptides import DEFAULT_MAX_RECEPTOR, PeptidePair, PeptidePairBatch, collate_peptide_pairs
from geomask.errors import UsageError
from geomask.masking.base import Masker, resolve_generator
from geomask.masking.sequence_terminus import TerminusLayout
from geomask.methods.compose import loss_section, masker_section
from geomask.methods.mlm import MLM
from geomask.nn.sequence_encoder import SequenceEncoder
from geomask.sequences.vocab import AMINO_ACIDS, ESM_TOKENS, RESIDUES, amino_vocab, encode_protein

__all__ = ["PEPTIDE_DATA", "PepMLM", "binder_pseudo_perplexity", "build_pepmlm", "generate", "residue_frequencies"]

PEPTIDE_DATA = ("peptide_pairs", "generated_peptides")
"""PepMLM's data kinds: prepared receptor–peptide pairs, or the GENERATED default pairs."""

_FIRST_AA = ESM_TOKENS.index(AMINO_ACIDS[0])  # the 20 standard residues are ids 4 .. 23 (ESM's order)


class PepMLM(MLM):
    """PepMLM (module docstring): MLM over receptor–peptide pairs with the whole peptide masked.

    Args:
        encoder: a :class:`~geomask.nn.sequence_encoder.SequenceEncoder`.
        masker: chooses the masked tokens on a :class:`~geomask.masking.sequence_terminus.TerminusLayout`.
        loss: ``loss(logits [M, V], labels [M]) -> scalar``.
        tie_embeddings: the output embedding is the input embedding.
    """

    data_kinds = PEPTIDE_DATA

    def __init__(self, encoder: SequenceEncoder, masker: Masker, loss: nn.Module, tie_embeddings: bool = True):
        super().__init__(encoder, masker, loss, tie_embeddings, mask_prob=1.0, random_prob=0.0)

    def _check(self, batch: Any) -> PeptidePairBatch:
        if not isinstance(batch, PeptidePairBatch):
            raise UsageError(
                f"pepmlm trains on receptor-peptide pairs (data.kind peptide_pairs, generated_peptides), "
                f"got {type(batch).__name__}"
            )
        return super()._check(batch)  # type: ignore[return-value]

    def loss_terms(self, batch: Any, generator: torch.Generator) -> dict[str, Tensor]:
        """``loss`` (= ``pepmlm``, the peptide residues' cross-entropy) and ``accuracy``."""
        out = super().loss_terms(batch, generator)
        out["pepmlm"] = out.pop("mlm")
        return out


def build_pepmlm(
    *,
    vocab_size: int = 33,
    dim: int = 1280,
    depth: int = 33,
    heads: int = 20,
    mlp_ratio: float = 4.0,
    max_len: int = 1026,
    eps: float = 1e-5,
    drop_path: float = 0.0,
    positions: str = "rotary",
    tie_embeddings: bool = True,
    masker: Mapping | str | None = None,
    loss: Mapping | str | None = None,
) -> PepMLM:
    """PepMLM by keywords (ESM-2 650M's sizes by default: 1280 wide, 33 blocks, 20 heads, rotary, 33 ids).

    ``masker`` defaults to ``{name: terminus}``, ``loss`` to ``{name: cross_entropy}``.
    """
    encoder = SequenceEncoder(vocab_size, dim, depth, heads, mlp_ratio, max_len, eps, drop_path, positions)
    msk = masker_section(masker, {"name": "terminus"}, layout=TerminusLayout)
    return PepMLM(encoder, msk, loss_section(loss, {"name": "cross_entropy"}), tie_embeddings)


def _pairs(
    receptors: Sequence[str | Tensor], peptides: Sequence[Tensor], max_receptor: int = DEFAULT_MAX_RECEPTOR
) -> list[PeptidePair]:
    vocab = amino_vocab()
    rec = [r if isinstance(r, Tensor) else encode_protein([r])[0] for r in receptors]
    # receptors cut as the reader cuts them
    return [PeptidePair(r.long()[:max_receptor], p.long(), vocab) for r, p in zip(rec, peptides)]


def _masked_inputs(batch: PeptidePairBatch) -> tuple[Tensor, Tensor]:
    """``(inputs, peptide)``: the ids with every peptide residue ``<mask>``, and where they are ``[B, L]``."""
    pep = batch.maskable & (batch.segment_ids >= 1)
    return batch.ids.masked_fill(pep, batch.vocab.mask_id), pep


@torch.no_grad()
def generate(
    model: MLM,
    receptor: str,
    length: int,
    steps: int | None = None,
    *,
    candidates: int = 1,
    temperature: float = 1.0,
    generator: torch.Generator | None = None,
    max_receptor: int = DEFAULT_MAX_RECEPTOR,
) -> list[str]:
    """Peptides of ``length`` residues for ``receptor`` by iterative unmasking, most confident first.

    All ``candidates`` are one batch ``<cls> receptor <eos> <mask>^length <eos>``.  At each of ``steps`` rounds
    (default ``length``: one residue per round) the model scores the 20 standard residues at every still-masked
    position; each position draws a residue (``softmax(logits / temperature)`` from ``generator``; ``temperature
    = 0``: the most likely) and the ``ceil(remaining / rounds left)`` positions whose drawn residue is most probable
    are fixed; the rest stay masked for the next round.  The receptor keeps its first ``max_receptor`` residues
    (as the ``peptide_pairs`` reader cuts it).

    Returns:
        ``candidates`` strings of ``length`` letters from the 20 standard amino acids.
    """
    if length < 1 or candidates < 1:
        raise UsageError(f"generate: length and candidates must be >= 1, got {length}, {candidates}")
    steps = length if steps is None else max(1, min(int(steps), length))
    gen = resolve_generator(generator)
    was_training = model.training
    model.eval()
    mask_id = amino_vocab().mask_id
    pep = torch.full((length,), mask_id, dtype=torch.long)
    batch = collate_peptide_pairs(_pairs([receptor] * candidates, [pep] * candidates, max_receptor))
    dev = next(model.parameters()).device
    batch = batch.to(dev)
    ids, attn = batch.ids.clone(), batch.attention_mask
    region = (batch.segment_ids >= 1) & (ids == mask_id)  # [C, L] the peptide's positions
    open_ = region.clone()
    for r in range(steps):
        left = int(open_[0].sum())
        if left == 0:
            break
        logits = model.logits(ids, attn)[..., _FIRST_AA : _FIRST_AA + len(AMINO_ACIDS)].float()  # [C, L, 20]
        if temperature > 0:
            probs = torch.softmax(logits / temperature, -1)
            flat = probs.reshape(-1, probs.size(-1))
            pick = torch.multinomial(flat.cpu(), 1, generator=gen if gen.device.type == "cpu" else None)
            pick = pick.to(dev).view(probs.shape[:2])
        else:
            probs = torch.softmax(logits, -1)
            pick = probs.argmax(-1)
        conf = probs.gather(-1, pick[..., None]).squeeze(-1).masked_fill(~open_, -1.0)
        k = math.ceil(left / (steps - r))
        top = conf.topk(k, dim=1).indices  # [C, k] the most confident open positions of every candidate
        fix = torch.zeros_like(open_).scatter_(1, top, True) & open_
        ids = torch.where(fix, pick + _FIRST_AA, ids)
        open_ &= ~fix
    model.train(was_training)
    letters = ids[region].view(candidates, length).cpu() - _FIRST_AA
    return ["".join(AMINO_ACIDS[i] for i in row.tolist()) for row in letters]


def residue_frequencies(peptides: Sequence[str], smoothing: float = 1.0) -> Tensor:
    """``[V]`` unigram probabilities of the residues of ``peptides`` (``smoothing`` added to each of the 25 residue
    ids, 0 at the other ids)."""
    v = len(ESM_TOKENS)
    ids = torch.cat(encode_protein(list(peptides))) if peptides else torch.zeros(0, dtype=torch.long)
    counts = torch.bincount(ids, minlength=v).double()
    res = torch.tensor([ESM_TOKENS.index(c) for c in RESIDUES])
    counts[res] += smoothing
    return counts / counts.sum()


@torch.no_grad()
def binder_pseudo_perplexity(
    model: MLM,
    receptors: Sequence[str],
    peptides: Sequence[str],
    *,
    unigram: Tensor | None = None,
    batch_size: int = 64,
    generator: torch.Generator | None = None,
    max_receptor: int = DEFAULT_MAX_RECEPTOR,
) -> dict[str, float]:
    """Pseudo-perplexity of the true binders against the same receptors with shuffled peptides, and a unigram one.

    With the whole peptide masked, ``p(x_t | r, <mask>^n)`` of every peptide position comes from one forward of
    ``<cls> r <eos> <mask>^n <eos>``, so a batch of pairs costs one forward, and the shuffled peptide (a random
    permutation of the same residues, from ``generator``) is scored on the same logits:

    .. math::
        \\mathrm{PPPL} = \\exp\\Big(-\\frac{1}{\\sum_i n_i} \\sum_i \\sum_{t=1}^{n_i}
        \\log p(x_{i,t} \\mid r_i, \\texttt{<mask>}^{n_i})\\Big)

    (residues pooled over all pairs).  ``unigram``: ``exp`` of the cross-entropy of the true residues under the
    ``[V]`` probabilities ``unigram`` (default: :func:`residue_frequencies` of ``peptides`` themselves, an
    in-sample baseline; pass the training peptides' frequencies for a held-out one).  Receptors keep their first
    ``max_receptor`` residues (as the ``peptide_pairs`` reader cuts them).

    Returns:
        ``{"true", "shuffled", "unigram"}`` PPPLs and ``"residues"``, the number of residues scored.
    """
    if len(receptors) != len(peptides) or not peptides:
        raise UsageError(
            f"binder_pseudo_perplexity: need as many receptors as peptides (> 0), got "
            f"{len(receptors)} and {len(peptides)}"
        )
    gen = resolve_generator(generator)
    was_training = model.training
    model.eval()
    dev = next(model.parameters()).device
    pep = encode_protein(list(peptides))
    lens = torch.tensor([len(p) for p in pep])
    flat = torch.cat(pep)
    # shuffle every peptide at once: random keys, sorted within each peptide (segment id * 2 + key in [0, 1))
    owner = torch.arange(len(pep)).repeat_interleave(lens)
    key = owner.double() * 2 + torch.rand(flat.numel(), generator=gen, dtype=torch.float64, device=gen.device).cpu()
    shuffled = flat[key.argsort()]
    uni = residue_frequencies(peptides) if unigram is None else unigram.double()
    nll = {"true": 0.0, "shuffled": 0.0}
    starts = torch.cumsum(lens, 0) - lens
    for s in range(0, len(pep), batch_size):
        e = min(s + batch_size, len(pep))
        batch = collate_peptide_pairs(_pairs(receptors[s:e], pep[s:e], max_receptor)).to(dev)
        inputs, where = _masked_inputs(batch)
        logp = torch.log_softmax(model.logits(inputs, batch.attention_mask)[where].double(), -1)  # [M, V], row-major
        lo, hi = int(starts[s]), int(starts[e - 1] + lens[e - 1])
        for name, ids in (("true", flat), ("shuffled", shuffled)):
            nll[name] -= float(logp.gather(1, ids[lo:hi].to(dev)[:, None]).sum())
    model.train(was_training)
    n = int(lens.sum())
    out = {k: math.exp(v / n) for k, v in nll.items()}
    out["unigram"] = math.exp(-float(torch.log(uni[flat]).mean()))
    out["residues"] = n
    return out
