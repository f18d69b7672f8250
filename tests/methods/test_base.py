"""The RNG helpers of the method base: a seed peeked without advancing the generator, a forked global RNG."""

from __future__ import annotations

import pytest
import torch

from geomask.methods.base import peek_seed, seeded_rng


def test_peek_seed_leaves_the_generator_where_it_was():
    g = torch.Generator().manual_seed(5)
    state = g.get_state()
    s = peek_seed(g)
    assert torch.equal(g.get_state(), state) and peek_seed(g) == s and 0 <= s < 2**63
    torch.rand(3, generator=g)  # the generator moves on: so does the peeked seed
    assert peek_seed(g) != s
    assert peek_seed(torch.Generator().manual_seed(6)) != s


def test_seeded_rng_restores_the_global_state_and_repeats_its_draws():
    torch.manual_seed(0)
    before = torch.random.get_rng_state()
    with seeded_rng(11):
        a = torch.rand(4)
    assert torch.equal(torch.random.get_rng_state(), before)
    with seeded_rng(11, "cpu"):
        b = torch.rand(4)
    with seeded_rng(12):
        c = torch.rand(4)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert torch.equal(torch.random.get_rng_state(), before)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_seeded_rng_on_cuda_forks_that_device_only():
    dev = torch.device("cuda", torch.cuda.current_device())
    before_cpu, before_dev = torch.random.get_rng_state(), torch.cuda.get_rng_state(dev)
    with seeded_rng(3, dev):
        a = torch.rand(8, device=dev)
    with seeded_rng(3, dev):
        b = torch.rand(8, device=dev)
    assert torch.equal(a, b)
    assert torch.equal(torch.random.get_rng_state(), before_cpu)
    assert torch.equal(torch.cuda.get_rng_state(dev), before_dev)
