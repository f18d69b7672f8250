"""GraphMAE baseline: scaled cosine error, re-masking, and that it learns masked gate types."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch_geometric.data import Batch

from geomask.circuits import aig_to_graph
from geomask.io.aig import AIG
from geomask.losses import scaled_cosine_error
from geomask.masking import RowLayout
from geomask.methods import build_method


def random_aig(rng: np.random.Generator, ni: int = 5, na: int = 30, no: int = 4) -> AIG:
    var = np.arange(na) + ni + 1
    a, b = rng.integers(1, var), rng.integers(1, var)
    ands = np.stack([2 * a + rng.integers(0, 2, na), 2 * b + rng.integers(0, 2, na)], 1).astype(np.int64)
    return AIG(num_inputs=ni, ands=ands, outputs=rng.integers(2, 2 * (ni + na) + 2, size=no).astype(np.int64))


def make_batch(num_graphs: int, seed: int = 0) -> Batch:
    rng = np.random.default_rng(seed)
    return Batch.from_data_list([aig_to_graph(random_aig(rng), "per_edge") for _ in range(num_graphs)])


def test_scaled_cosine_error_values():
    target = torch.eye(3)
    pred = torch.tensor([[2.0, 0.0, 0.0], [0.0, 0.0, 1.0], [1.0, 0.0, 1.0]])
    mask = torch.tensor([True, True, True])
    # per row: cos = 1, 0, 1/sqrt(2); error (1 - cos)^2
    want = (0.0 + 1.0 + (1 - 2**-0.5) ** 2) / 3
    assert scaled_cosine_error(pred, target, mask, 2.0).item() == pytest.approx(want)
    assert scaled_cosine_error(pred, target, torch.tensor([True, False, False])).item() == 0.0
    assert scaled_cosine_error(pred, target, torch.zeros(3, dtype=torch.bool)).item() == 0.0


def test_remasked_rows_do_not_leak_encoder_state():
    """With a zero-layer-like decoder input, masked rows reach the decoder as zeros: perturbing the
    encoder output of masked nodes must not change the loss."""
    torch.manual_seed(0)
    m = build_method("graphmae", hidden=16, layers=1).eval()
    b = make_batch(2)
    base = m(b, torch.Generator().manual_seed(3))["loss"]
    mask = m.masker(RowLayout(b.batch, b.num_graphs), torch.Generator().manual_seed(3))
    m.encoder.register_forward_hook(lambda mod, inp, out: out + 100.0 * mask.unsqueeze(1))
    torch.testing.assert_close(m(b, torch.Generator().manual_seed(3))["loss"], base)


@pytest.fixture
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_graphmae_learns_gate_types(one_thread):
    torch.manual_seed(0)
    train = make_batch(6, seed=11)
    model = build_method("graphmae", hidden=32, layers=3)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    first = None
    for step in range(60):
        opt.zero_grad()
        loss = model(train, torch.Generator().manual_seed(step))["loss"]
        loss.backward()
        opt.step()
        first = loss.item() if first is None else first
    model.eval()
    with torch.no_grad():
        last = np.mean([model(train, torch.Generator().manual_seed(500 + s))["loss"].item() for s in range(10)])
    assert last < 0.6 * first
