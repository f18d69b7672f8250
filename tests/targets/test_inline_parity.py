"""The target components reproduce the methods' inline targets exactly: MSM's EMA update and LayerNorm,
MGVGA's degrees, Point-BERT's dVAE tokens.  Delete a test here once its inline code is gone."""

from __future__ import annotations

from types import SimpleNamespace

import torch
import torch.nn.functional as F
from torch import nn
from torch_geometric.data import Batch, Data

from geomask.methods.mgvga import MGVGA
from geomask.methods.msm import MSM
from geomask.nn.dvae import DiscreteVAE
from geomask.targets import EMATeacher, LayerNormTarget, NodeDegree, TokenIds


def net(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3))


def test_ema_update_equals_msm_update_teacher():
    student = net(0)
    ema = EMATeacher(student, momentum=0.97)
    inline = SimpleNamespace(teacher=net(0), backbone=student, momentum=0.97)  # MSM's attributes
    g = torch.Generator().manual_seed(1)
    for step in range(3):
        with torch.no_grad():
            for p in student.parameters():
                p.add_(torch.randn(p.shape, generator=g))
            student[1].running_var.add_(0.5)
        MSM.update_teacher(inline)
        ema.update(student, step)
        for a, b in zip(ema.module.state_dict().values(), inline.teacher.state_dict().values()):
            assert torch.equal(a, b)


def test_layer_norm_target_equals_msm_target_normalisation():
    feats = torch.randn(50, 16, generator=torch.Generator().manual_seed(2)) * 4 + 1
    dst = torch.tensor([3, 3, 7, 49, 0])
    assert torch.equal(LayerNormTarget()(feats[dst]), F.layer_norm(feats[dst], feats.shape[1:]))


def test_node_degree_equals_mgvga_degrees():
    g1 = Data(node_type=torch.tensor([0, 0, 1, 2, 4]), edge_index=torch.tensor([[0, 1, 2, 2], [2, 2, 3, 3]]))
    g2 = Data(node_type=torch.tensor([0, 1, 3]), edge_index=torch.tensor([[0, 0, 1], [1, 1, 2]]))
    b = Batch.from_data_list([g1, g2])
    n = b.node_type.shape[0]
    fanin, fanout = MGVGA._degrees(None, b, n)
    assert torch.equal(NodeDegree("in")(b, n), fanin) and torch.equal(NodeDegree("out")(b, n), fanout)
    b.in_degree = torch.tensor([1, 2, 3, 4, 5, 6, 7, 8])
    b.out_degree = torch.tensor([8, 7, 6, 5, 4, 3, 2, 1])
    fanin, fanout = MGVGA._degrees(None, b, n)
    assert torch.equal(NodeDegree("in")(b), fanin) and torch.equal(NodeDegree("out")(b), fanout)


def test_token_ids_equal_pointbert_dvae_tokens():
    torch.manual_seed(0)
    dvae = DiscreteVAE(group_size=8, num_tokens=16, token_dim=8, enc_dim=16, dgcnn_hidden=(8, 8), embed_hidden=8)
    g = torch.Generator().manual_seed(3)
    neighborhood = torch.randn(2, 6, 8, 3, generator=g)
    centers = torch.randn(2, 6, 3, generator=g)
    dvae.train()
    ids = TokenIds(dvae)(neighborhood, centers)
    assert dvae.training
    with torch.no_grad():  # Point-BERT's inline sequence
        was = dvae.training
        dvae.eval()
        ref = dvae.tokenize(neighborhood, centers)
        dvae.train(was)
    assert torch.equal(ids, ref) and ids.shape == (2, 6)
