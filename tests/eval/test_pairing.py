"""DiffPALM's pairing procedure: Sinkhorn is doubly stochastic, the rounding is the Hungarian optimum of the scores,
an oracle scorer that knows the coupling recovers the true pairing, and a tiny LM trained here on other species
pairs held-out species better than random pairings and than the similarity baseline, measured in the same test."""

from __future__ import annotations

import itertools

import pytest
import torch
from torch import nn

from geomask.datasets.paired_families import FIRST_AA, PairedFamiliesSpec, generate_paired_families
from geomask.errors import UsageError
from geomask.eval.pairing import (
    gumbel_sinkhorn,
    log_sinkhorn,
    pair_species,
    pairing_accuracy,
    pairing_benchmark,
    round_permutation,
    shuffle_within_species,
    train_pairing_lm,
)

pytestmark = pytest.mark.usefixtures("one_thread")

SMALL = PairedFamiliesSpec(families=1, species=40, pairs=6, length_a=12, length_b=12, couplings=4, heldout=8)


def test_sinkhorn_is_doubly_stochastic():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(5, 7, 7, generator=g, dtype=torch.float64) * 3
    p = log_sinkhorn(x, iters=200).exp()
    ones = torch.ones(5, 7, dtype=torch.float64)
    assert torch.allclose(p.sum(-1), ones, atol=1e-6) and torch.allclose(p.sum(-2), ones, atol=1e-6)
    q = gumbel_sinkhorn(x.float(), tau=1.0, noise=1.0, iters=300, generator=g)
    assert (q >= 0).all() and torch.allclose(q.sum(-1), ones.float(), atol=1e-2)
    assert torch.allclose(q.sum(-2), ones.float(), atol=1e-5)  # the last normalisation is the columns'
    assert not torch.allclose(q, gumbel_sinkhorn(x.float(), 1.0, 1.0, 300, g))  # fresh noise each draw
    # a low temperature concentrates on the assignment of largest score
    sharp = log_sinkhorn(x / 0.01, iters=300).exp()
    assert torch.equal(sharp.argmax(-1), round_permutation(x))


def test_rounding_is_the_hungarian_optimum():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(4, 5, 5, generator=g)
    perm = round_permutation(x)
    for s in range(4):  # brute force over all 120 permutations
        best = max(itertools.permutations(range(5)), key=lambda p: float(x[s, range(5), list(p)].sum()))
        assert perm[s].tolist() == list(best)
    with pytest.raises(UsageError, match=r"\[S, n, n\]"):
        round_permutation(torch.zeros(3, 4))


def test_shuffle_records_the_true_partners():
    b = torch.arange(2 * 5 * 3).view(2, 5, 3)
    shuffled, truth = shuffle_within_species(b, torch.Generator().manual_seed(0))
    assert not torch.equal(shuffled, b)
    assert torch.equal(shuffled.gather(1, truth[..., None].expand_as(b)), b)
    assert pairing_accuracy(truth, truth) == 1.0


class CouplingOracle(nn.Module):
    """A hand-made scorer that knows family 0's coupling: ``p(B[q_k] = σ_k(y)) = p(A[p_k] = y)`` (blurred by 5 %),
    nothing known elsewhere."""

    def __init__(self, fam, length_a: int):
        super().__init__()
        self.p, self.q, self.la = fam.a_sites[0], fam.b_sites[0], length_a
        self.register_buffer("table", nn.functional.one_hot(fam.tables[0], 20).float())  # [K, x, σ(x)]

    def soft_logits(self, probs, attention_mask):
        n, length, v = probs.shape
        pa = probs[:, 1 + self.p, FIRST_AA : FIRST_AA + 20]  # [N, K, 20]
        pb = torch.einsum("nkx,kxy->nky", pa, self.table) * 0.95 + 0.05 / 20
        coupled = torch.full((n, self.q.numel(), v), 1e-6)
        coupled[..., FIRST_AA : FIRST_AA + 20] = pb
        out = torch.zeros(n, length, v)
        out[:, self.la + 2 + self.q] = coupled.log()
        return out


def test_oracle_scorer_recovers_the_true_pairing():
    fam = generate_paired_families(SMALL)
    a, b = fam.split(heldout=True)
    b_shuf, truth = shuffle_within_species(b[0], torch.Generator().manual_seed(3))
    res = pair_species(CouplingOracle(fam, SMALL.length_a), a[0], b_shuf, 40, generator=torch.Generator())
    assert pairing_accuracy(res.perm, truth) == 1.0
    assert res.losses[-5:].mean() < res.losses[:5].mean()  # the MLM loss falls as the pairing improves
    # zero steps: the rounding of the all-zero scores, the identity, which the shuffle made wrong
    zero = pair_species(CouplingOracle(fam, SMALL.length_a), a[0], b_shuf, 0)
    assert torch.equal(zero.perm, torch.arange(SMALL.pairs).expand(a.size(1), -1))
    assert pairing_accuracy(zero.perm, truth) < 0.5


def test_pair_species_refuses_mismatched_alignments():
    with pytest.raises(UsageError, match="share S and n"):
        pair_species(CouplingOracle(generate_paired_families(SMALL), 12), torch.zeros(2, 3, 4), torch.zeros(2, 4, 4))


def test_trained_tiny_lm_pairs_better_than_random_and_similarity():
    fam = generate_paired_families(SMALL)
    model = train_pairing_lm(fam, 200, batch_size=32, lr=5e-3, lm={"dim": 32, "depth": 1, "heads": 2, "max_len": 32})
    before = {k: v.clone() for k, v in model.state_dict().items()}
    row = pairing_benchmark(model, *fam.split(False), *fam.split(True), steps=40, seed=0)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # pairing leaves the LM alone
    assert row["species"] == 8 and row["random_expected"] == pytest.approx(1 / 6)
    # 48 held-out sequences: random pairings get about 1/6 of them (measured here: row["random"])
    assert row["diffpalm"] >= 0.6 and row["diffpalm"] > row["random"] + 0.3
    assert row["diffpalm"] > row["similarity"]
