"""norm_pix, layer_norm and the graph-attribute targets against formulas written here."""

from __future__ import annotations

import math

import pytest
import torch
from torch_geometric.data import Batch, Data

from geomask.errors import UsageError
from geomask.targets import LayerNormTarget, NodeAttribute, NodeDegree, NormalizedPatches, normalize_patches


def test_norm_pix_uses_mean_and_unbiased_variance_of_each_patch():
    x = torch.tensor([[1.0, 2.0, 3.0, 6.0], [5.0, 5.0, 5.0, 5.0]], dtype=torch.float64, requires_grad=True)
    out = NormalizedPatches()(x)
    # patch 0: mean 3, unbiased var (4 + 1 + 0 + 9) / 3
    s0 = math.sqrt(14 / 3 + 1e-6)
    expected0 = [(v - 3.0) / s0 for v in (1.0, 2.0, 3.0, 6.0)]
    assert out[0].tolist() == pytest.approx(expected0, rel=1e-12)
    # a constant patch: var 0, so 0 / sqrt(eps) = 0, finite
    assert out[1].tolist() == [0.0, 0.0, 0.0, 0.0]
    out.sum().backward()
    assert torch.isfinite(x.grad).all()


def test_norm_pix_on_leading_dims_and_eps():
    x = torch.randn(2, 3, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    out = normalize_patches(x, eps=0.5)
    for i in range(2):
        for j in range(3):
            p = x[i, j].tolist()
            mu = sum(p) / 5
            var = sum((v - mu) ** 2 for v in p) / 4
            assert out[i, j].tolist() == pytest.approx([(v - mu) / math.sqrt(var + 0.5) for v in p], rel=1e-12)


def test_norm_pix_needs_two_values_and_positive_eps():
    with pytest.raises(UsageError, match="2 or more"):
        normalize_patches(torch.ones(3, 1))
    with pytest.raises(UsageError, match="eps"):
        NormalizedPatches(eps=0)


def test_layer_norm_target_uses_biased_variance_without_parameters():
    x = torch.tensor([[1.0, 2.0, 3.0, 6.0]], dtype=torch.float64)
    out = LayerNormTarget()(x)
    s = math.sqrt(14 / 4 + 1e-5)
    assert out[0].tolist() == pytest.approx([(v - 3.0) / s for v in (1.0, 2.0, 3.0, 6.0)], rel=1e-12)
    assert list(LayerNormTarget().parameters()) == []


def aig_batch() -> Batch:
    g1 = Data(node_type=torch.tensor([0, 0, 1, 2]), edge_index=torch.tensor([[0, 1, 2], [2, 2, 3]]))
    g2 = Data(node_type=torch.tensor([0, 1, 3]), edge_index=torch.tensor([[0, 0, 1], [1, 1, 2]]))
    return Batch.from_data_list([g1, g2])


def test_node_attribute_class_ids_and_floats():
    b = aig_batch()
    ids = NodeAttribute("node_type")(b)
    assert ids.dtype == torch.int64 and ids.tolist() == [0, 0, 1, 2, 0, 1, 3]
    f = NodeAttribute("node_type", kind="float")(b)
    assert f.dtype == torch.float32 and f.tolist() == [0.0, 0.0, 1.0, 2.0, 0.0, 1.0, 3.0]


def test_node_attribute_errors_name_what_the_batch_has():
    with pytest.raises(UsageError, match="node_type"):
        NodeAttribute("gate")(aig_batch())
    with pytest.raises(UsageError, match="kind"):
        NodeAttribute("node_type", kind="int")


def test_node_degree_counts_edges_over_the_whole_batch():
    b = aig_batch()  # graph 2's edges shift by 4 nodes: (4→5, 4→5, 5→6)
    fanin = NodeDegree("in")(b)
    fanout = NodeDegree("out")(b)
    assert fanin.dtype == torch.float32
    assert fanin.tolist() == [0.0, 0.0, 2.0, 1.0, 0.0, 2.0, 1.0]
    assert fanout.tolist() == [1.0, 1.0, 1.0, 0.0, 2.0, 1.0, 0.0]
    # a trailing isolated node needs num_nodes to be counted
    assert NodeDegree("in")(b, num_nodes=9).tolist() == [0.0, 0.0, 2.0, 1.0, 0.0, 2.0, 1.0, 0.0, 0.0]


def test_node_degree_prefers_the_stored_attribute():
    b = aig_batch()
    b.in_degree = torch.tensor([7, 7, 7, 7, 7, 7, 7])
    assert NodeDegree("in")(b).tolist() == [7.0] * 7
    assert NodeDegree("out")(b).tolist() == [1.0, 1.0, 1.0, 0.0, 2.0, 1.0, 0.0]
    b.fanout = torch.tensor([1, 2, 3, 4, 5, 6, 7])
    assert NodeDegree("out", attribute="fanout")(b).tolist() == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]
    with pytest.raises(UsageError, match="direction"):
        NodeDegree("both")
