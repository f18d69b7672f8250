"""Uniform per-graph masking: exact counts, uniformity, reproducibility, no loop over graphs needed."""

from __future__ import annotations

import pytest
import torch

from geomask.masking import UniformMasker, per_graph_counts


def batch_vector(sizes):
    return torch.repeat_interleave(torch.arange(len(sizes)), torch.tensor(sizes))


@pytest.mark.parametrize("ratio", [0.0, 0.3, 0.5, 1.0])
def test_exact_count_per_graph(ratio):
    sizes = [1, 2, 3, 7, 10, 33, 101]
    b = batch_vector(sizes)
    m = UniformMasker(ratio).sample(b, torch.Generator().manual_seed(0))
    got = torch.zeros(len(sizes), dtype=torch.long).index_add_(0, b, m.long())
    want = [int(n * ratio + 0.5) for n in sizes]  # half rounds up
    assert got.tolist() == want


def test_unsorted_batch_vector_and_explicit_num_graphs():
    b = torch.tensor([2, 0, 2, 1, 0, 2, 2, 0])
    m = UniformMasker(0.5).sample(b, torch.Generator().manual_seed(1), num_graphs=4)
    assert [int(m[b == g].sum()) for g in range(4)] == [2, 1, 2, 0]


def test_reproducible_and_seed_dependent():
    b = batch_vector([50, 80])
    mk = UniformMasker(0.3)
    a = mk.sample(b, torch.Generator().manual_seed(5))
    assert torch.equal(a, mk.sample(b, torch.Generator().manual_seed(5)))
    assert not torch.equal(a, mk.sample(b, torch.Generator().manual_seed(6)))


def test_every_node_equally_likely():
    b = batch_vector([10, 4])
    gen = torch.Generator().manual_seed(0)
    freq = torch.stack([UniformMasker(0.5).sample(b, gen) for _ in range(2000)]).float().mean(0)
    torch.testing.assert_close(freq, torch.full_like(freq, 0.5), atol=0.05, rtol=0)


def test_counts_helper_and_bad_ratio():
    assert per_graph_counts(batch_vector([4, 5]), 0.5, 2).tolist() == [2, 3]
    with pytest.raises(ValueError, match="ratio"):
        UniformMasker(1.5)
    assert UniformMasker(0.5).sample(torch.zeros(0, dtype=torch.long)).numel() == 0
