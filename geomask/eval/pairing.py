"""DiffPALM's pairing procedure: pair the members of two interacting families within every species by minimising a
masked LM's loss over the permuted concatenation, through a differentiable (Sinkhorn) relaxation of the permutation.

For species ``s`` with ``n`` members of A and of B, a learnable score matrix ``X_s [n, n]`` defines the soft
permutation (Gumbel-Sinkhorn, Mena et al. 2018; Sinkhorn normalisation in log space)

.. math::
    P_s = \\exp\\big(\\mathrm{Sinkhorn}((X_s + \\gamma G_s) / \\tau)\\big), \\quad G_s \\sim \\mathrm{Gumbel}(0, 1)

and, as DiffPALM does, the forward pass uses the hard permutation ``H_s = Hungarian(P_s)`` while the gradient flows
through ``P_s`` (straight-through: ``H_s + P_s - sg(P_s)``).  Row ``i`` of the paired alignment is
``<cls> A_i <eos> (H_s B)_i <eos>``; a random fraction ``mask_ratio`` of B's residues are ``<mask>``; the loss is
the cross-entropy of the masked residues of the permuted B (the targets move with the permutation):

.. math::
    \\mathcal{L}(X) = -\\frac{1}{|M|} \\sum_{(s, i, t) \\in M} \\sum_v (P_s\\, \\mathrm{onehot}(B_s))_{i, t, v}
    \\log p_v(\\cdot \\mid \\tilde{x}_{s, i})

All species are one batch ``[S * n, L]``.  After ``steps`` Adam steps on ``X`` the pairing is the Hungarian
rounding of ``X`` (:func:`round_permutation`).  The model is anything with ``soft_logits(probs [N, L, V],
attention_mask [N, L]) -> logits [N, L, V]`` (:meth:`geomask.methods.diffpalm.DiffPALM.soft_logits`).

LM-free baselines: :func:`pair_by_similarity` (nearest training pair by identity) and :func:`pair_by_pmi` (summed
pointwise mutual information of every A column with every B column, estimated on the training pairs).
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
from torch import Tensor

from geomask.datasets.paired_families import PairedFamilies, PairedFamiliesSpec, generate_paired_families
from geomask.datasets.peptides import PeptidePair, collate_peptide_pairs
from geomask.errors import UsageError
from geomask.masking.base import resolve_generator
from geomask.sequences.vocab import Vocab, amino_vocab

__all__ = [
    "PairingResult",
    "gumbel_sinkhorn",
    "log_sinkhorn",
    "pair_by_pmi",
    "pair_by_similarity",
    "pair_species",
    "pairing_accuracy",
    "pairing_benchmark",
    "round_permutation",
    "run_pairing",
    "shuffle_within_species",
    "train_pairing_lm",
]


def log_sinkhorn(log_alpha: Tensor, iters: int = 20) -> Tensor:
    """``log P``: ``iters`` alternating row and column normalisations of ``exp(log_alpha)`` in log space.

    Shapes:
        ``[..., n, n]`` → ``[..., n, n]`` (every leading index its own matrix; rows and columns of ``exp`` sum to 1
        as ``iters`` grows).
    """
    for _ in range(iters):
        log_alpha = log_alpha - torch.logsumexp(log_alpha, -1, keepdim=True)
        log_alpha = log_alpha - torch.logsumexp(log_alpha, -2, keepdim=True)
    return log_alpha


def gumbel_sinkhorn(
    scores: Tensor, tau: float = 1.0, noise: float = 1.0, iters: int = 20, generator: torch.Generator | None = None
) -> Tensor:
    """The soft permutation ``exp(Sinkhorn((scores + noise * G) / tau))``, ``G`` Gumbel drawn from ``generator``.

    Shapes:
        ``[S, n, n]`` → ``[S, n, n]`` doubly stochastic (approximately, after ``iters``).
    """
    if noise > 0:
        gen = resolve_generator(generator)
        u = torch.rand(scores.shape, generator=gen, device=gen.device, dtype=scores.dtype).to(scores.device)
        scores = scores - noise * torch.log(-torch.log(u.clamp(1e-10, 1 - 1e-7)))
    return log_sinkhorn(scores / tau, iters).exp()


def round_permutation(scores: Tensor) -> Tensor:
    """The permutation of largest total score in every matrix (Hungarian, ``scipy.optimize.linear_sum_assignment``).

    Shapes:
        ``[S, n, n]`` → ``[S, n]`` int64, ``perm[s, i]`` = the column matched to row ``i``.
    """
    from scipy.optimize import linear_sum_assignment

    if scores.dim() != 3 or scores.size(-1) != scores.size(-2):
        raise UsageError(f"round_permutation: scores must be [S, n, n], got {tuple(scores.shape)}")
    x = scores.detach().double().cpu().numpy()
    out = np.stack([linear_sum_assignment(m, maximize=True)[1] for m in x])  # scipy has no batched solver
    return torch.from_numpy(out).long().to(scores.device)


def pairing_accuracy(perm: Tensor, truth: Tensor) -> float:
    """Fraction of rows matched to their true partner (``perm``, ``truth`` ``[S, n]``)."""
    return float((perm == truth).double().mean())


@dataclass(frozen=True)
class PairingResult:
    """What :func:`pair_species` found: ``perm [S, n]`` (A_i pairs with B_perm[i]), ``scores [S, n, n]`` (the
    learnt ``X``), ``losses [steps]`` (the MLM loss of every step)."""

    perm: Tensor
    scores: Tensor
    losses: Tensor


def _check_msas(msa_a: Tensor, msa_b: Tensor) -> None:
    if msa_a.dim() != 3 or msa_b.dim() != 3 or msa_a.shape[:2] != msa_b.shape[:2]:
        raise UsageError(
            f"pair_species: msa_a [S, n, La] and msa_b [S, n, Lb] must share S and n, got {tuple(msa_a.shape)} "
            f"and {tuple(msa_b.shape)}"
        )


def pair_species(
    model: Any,
    msa_a: Tensor,
    msa_b: Tensor,
    steps: int = 100,
    *,
    lr: float = 0.1,
    tau: float = 1.0,
    noise: float = 1.0,
    mask_ratio: float = 0.5,
    sinkhorn_iters: int = 20,
    vocab: Vocab | None = None,
    generator: torch.Generator | None = None,
) -> PairingResult:
    """Pair ``msa_a [S, n, La]`` with ``msa_b [S, n, Lb]`` (residue ids, no specials) species by species (module
    docstring); ``model`` is used in eval mode and left unchanged (only the scores get gradients).

    Returns:
        :class:`PairingResult`; ``perm[s, i]`` = the member of B paired with ``msa_a[s, i]``.
    """
    _check_msas(msa_a, msa_b)
    if steps < 0 or not 0.0 < mask_ratio <= 1.0:
        raise UsageError(f"pair_species: steps >= 0 and mask_ratio in (0, 1], got {steps} and {mask_ratio}")
    vocab = vocab or amino_vocab()
    gen = resolve_generator(generator)
    params = [p for p in model.parameters()] if hasattr(model, "parameters") else []
    dev = params[0].device if params else msa_a.device
    s, n, la = msa_a.shape
    lb, v = msa_b.size(-1), vocab.size
    # the fixed part of every row: <cls> A <eos> [B] <eos>, one-hot [S, n, L, V]
    ids = torch.full((s, n, la + lb + 3), vocab.pad_id, dtype=torch.long, device=dev)
    ids[..., 0], ids[..., la + 1], ids[..., -1] = vocab.cls_id, vocab.sep_id, vocab.sep_id
    ids[..., 1 : la + 1] = msa_a.to(dev)
    fixed = torch.nn.functional.one_hot(ids, v).float()
    b_hot = torch.nn.functional.one_hot(msa_b.to(dev), v).float()  # [S, n, Lb, V]
    mask_hot = torch.nn.functional.one_hot(torch.tensor(vocab.mask_id, device=dev), v).float()
    attn = torch.ones(s * n, la + lb + 3, dtype=torch.bool, device=dev)
    scores = torch.zeros(s, n, n, device=dev, requires_grad=True)
    opt = torch.optim.Adam([scores], lr=lr)
    was_training = getattr(model, "training", False)
    if hasattr(model, "eval"):
        model.eval()
    losses = []
    for _ in range(steps):
        soft = gumbel_sinkhorn(scores, tau, noise, sinkhorn_iters, gen)
        hard = torch.nn.functional.one_hot(round_permutation(soft), n).to(soft.dtype)
        perm = hard + soft - soft.detach()  # the hard permutation forward, the soft one's gradient
        b_perm = torch.einsum("sij,sjtv->sitv", perm, b_hot)  # [S, n, Lb, V]
        m = torch.rand(s, n, lb, generator=gen, device=gen.device).to(dev) < mask_ratio
        b_in = torch.where(m[..., None], mask_hot, b_perm)
        x = torch.cat([fixed[:, :, : la + 2], b_in, fixed[:, :, -1:]], 2).view(s * n, -1, v)
        logits = model.soft_logits(x, attn).view(s, n, -1, v)[:, :, la + 2 : la + 2 + lb]
        nll = -(b_perm * torch.log_softmax(logits.float(), -1)).sum(-1)  # [S, n, Lb]
        loss = nll[m].sum() / m.sum().clamp_min(1)
        (grad,) = torch.autograd.grad(loss, scores)
        scores.grad = grad
        opt.step()
        losses.append(float(loss.detach()))
    if hasattr(model, "train"):
        model.train(was_training)
    x = scores.detach()
    return PairingResult(round_permutation(x), x, torch.tensor(losses))


def _onehot20(msa: Tensor, first: int) -> Tensor:
    return torch.nn.functional.one_hot((msa - first).clamp(0, 19), 20).double()


def pair_by_similarity(train_a: Tensor, train_b: Tensor, msa_a: Tensor, msa_b: Tensor, first: int = 4) -> Tensor:
    """LM-free baseline: score ``(i, j)`` by the best training pair ``t`` of identities ``|A_i = A_t| + |B_j = B_t|``
    (residues equal position by position), then the Hungarian rounding.

    Shapes:
        ``train_a [T, La]``, ``train_b [T, Lb]``, ``msa_a [S, n, La]``, ``msa_b [S, n, Lb]`` → ``[S, n]``.
    """
    _check_msas(msa_a, msa_b)
    ta, tb = _onehot20(train_a, first).flatten(1), _onehot20(train_b, first).flatten(1)  # [T, La * 20]
    ia = _onehot20(msa_a, first).flatten(2) @ ta.T  # [S, n, T]
    ib = _onehot20(msa_b, first).flatten(2) @ tb.T
    score = (ia[:, :, None, :] + ib[:, None, :, :]).amax(-1)  # [S, n, n]
    return round_permutation(score)


def pair_by_pmi(
    train_a: Tensor, train_b: Tensor, msa_a: Tensor, msa_b: Tensor, first: int = 4, pseudo: float = 0.5
) -> Tensor:
    """LM-free baseline: score ``(i, j)`` by ``Σ_{p, q} PMI_{pq}(A_i[p], B_j[q])``, the pointwise mutual
    information of column ``p`` of A and ``q`` of B estimated on the training pairs (``pseudo`` counts added), then
    the Hungarian rounding.  Columns that do not co-vary add about 0 to every pairing; coupled ones separate them.

    Shapes:
        as :func:`pair_by_similarity`.
    """
    _check_msas(msa_a, msa_b)
    oa, ob = _onehot20(train_a, first), _onehot20(train_b, first)  # [T, La, 20], [T, Lb, 20]
    t = oa.size(0)
    joint = (torch.einsum("tpa,tqb->pqab", oa, ob) + pseudo / 400) / (t + pseudo)
    pa = (oa.sum(0) + pseudo / 20) / (t + pseudo)  # [La, 20]
    pb = (ob.sum(0) + pseudo / 20) / (t + pseudo)
    pmi = joint.log() - pa.log()[:, None, :, None] - pb.log()[None, :, None, :]  # [La, Lb, 20, 20]
    score = torch.einsum("sipa,pqab,sjqb->sij", _onehot20(msa_a, first), pmi, _onehot20(msa_b, first))
    return round_permutation(score)


def shuffle_within_species(msa_b: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """``(shuffled [S, n, Lb], truth [S, n])``: B's members permuted at random in every species, and where each
    A's true partner went (``shuffled[s, truth[s, i]] = msa_b[s, i]``), so that no procedure gains from the
    generated order."""
    gen = resolve_generator(generator)
    s, n = msa_b.shape[:2]
    order = torch.rand(s, n, generator=gen, device=gen.device).cpu().argsort(-1)  # shuffled[s, k] = msa_b[s, order]
    shuffled = msa_b.gather(1, order[..., None].expand_as(msa_b))
    return shuffled, order.argsort(-1)


def pairing_benchmark(
    model: Any,
    train_a: Tensor,
    train_b: Tensor,
    test_a: Tensor,
    test_b: Tensor,
    *,
    steps: int = 100,
    seed: int = 0,
    **pair_kwargs: Any,
) -> dict[str, float]:
    """Pairing accuracy on held-out species of DiffPALM (:func:`pair_species` with ``model``), the LM-free baselines
    (fitted on each family's training pairs) and random pairings, B shuffled within species from ``seed``.

    Shapes:
        ``train_a [F, S_t, n, La]``, ``train_b [F, S_t, n, Lb]`` (true pairs), ``test_a [F, S_h, n, La]``,
        ``test_b [F, S_h, n, Lb]`` (held out; true pairing the identity before the shuffle).

    Returns:
        ``{"diffpalm", "similarity", "pmi", "random", "random_expected", "species", "pairs", "seed"}``.
    """
    f, h, n = test_a.shape[:3]
    gen = torch.Generator().manual_seed(seed)
    b_shuf, truth = shuffle_within_species(test_b.reshape(f * h, n, -1), gen)
    a = test_a.reshape(f * h, n, -1)
    res = pair_species(model, a, b_shuf, steps, generator=gen, **pair_kwargs)
    sim, pmi = [], []
    for k in range(f):  # the baselines see one family's training pairs at a time
        ta, tb = train_a[k].reshape(-1, train_a.size(-1)), train_b[k].reshape(-1, train_b.size(-1))
        rows = slice(k * h, (k + 1) * h)
        sim.append(pair_by_similarity(ta, tb, a[rows], b_shuf[rows]))
        pmi.append(pair_by_pmi(ta, tb, a[rows], b_shuf[rows]))
    rand = torch.rand(f * h, n, generator=gen).argsort(-1)
    return {
        "diffpalm": pairing_accuracy(res.perm.cpu(), truth),
        "similarity": pairing_accuracy(torch.cat(sim), truth),
        "pmi": pairing_accuracy(torch.cat(pmi), truth),
        "random": pairing_accuracy(rand, truth),
        "random_expected": 1.0 / n,
        "species": f * h,
        "pairs": n,
        "seed": seed,
        "first_loss": float(res.losses[0]) if len(res.losses) else float("nan"),
        "last_loss": float(res.losses[-1]) if len(res.losses) else float("nan"),
    }


SMALL_LM = {"dim": 32, "depth": 1, "heads": 2, "max_len": 256}
"""The benchmark's LM: one block of width 32 (smaller than ``configs/diffpalm_cpu.yaml``'s, to fit a CPU minute)."""


def train_pairing_lm(
    families: PairedFamilies,
    steps: int = 400,
    *,
    batch_size: int = 32,
    lr: float = 5e-3,
    seed: int = 0,
    lm: dict[str, Any] | None = None,
) -> Any:
    """A DiffPALM LM (:class:`~geomask.methods.diffpalm.DiffPALM`, :data:`SMALL_LM` updated by ``lm``) trained from
    scratch on the true pairs of the training species of ``families`` (AdamW, a seeded stream of random batches);
    returned in eval mode."""
    from geomask.methods.diffpalm import build_diffpalm

    torch.manual_seed(seed)
    model = build_diffpalm(**{**SMALL_LM, **(lm or {})})
    a, b = families.split(heldout=False)
    a, b = a.reshape(-1, a.size(-1)), b.reshape(-1, b.size(-1))
    vocab = amino_vocab()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    gen = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(steps):
        idx = torch.randint(0, a.size(0), (batch_size,), generator=gen)
        batch = collate_peptide_pairs([PeptidePair(a[i], b[i], vocab) for i in idx.tolist()])
        loss = model(batch, gen)["loss"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return model.eval()


def run_pairing(
    seeds: list[int], *, spec: PairedFamiliesSpec, train_steps: int, pair_steps: int, progress: bool = True
) -> list[dict[str, Any]]:
    """One benchmark row per seed (module docstring)."""
    rows = []
    for seed in seeds:
        t0 = time.perf_counter()
        fam = generate_paired_families(replace(spec, seed=seed))
        model = train_pairing_lm(fam, train_steps, seed=seed)
        t1 = time.perf_counter()
        row = pairing_benchmark(model, *fam.split(False), *fam.split(True), steps=pair_steps, seed=seed)
        row.update(train_seconds=round(t1 - t0, 2), pair_seconds=round(time.perf_counter() - t1, 2))
        rows.append(row)
        if progress:
            print(
                f"seed {seed}: diffpalm {row['diffpalm']:.3f}  pmi {row['pmi']:.3f}  similarity "
                f"{row['similarity']:.3f}  random {row['random']:.3f} (expected {row['random_expected']:.3f})",
                file=sys.stderr,
            )
    return rows
