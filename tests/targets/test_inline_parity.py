"""The target components reproduce the code the methods ran inline before they moved onto ``geomask.targets``:
MSM's LayerNorm of the teacher's features (``F.layer_norm``) and Point-BERT's dVAE tokens (``dvae.tokenize`` in
inference mode).  The cases against MSM's ``update_teacher`` and MGVGA's ``_degrees`` went with that code (MSM's
teacher is an ``EMATeacher``, MGVGA's degrees are ``NodeDegree`` targets); ``tests/methods/test_regression.py``
holds the methods to their pre-refactor losses."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from geomask.nn.dvae import DiscreteVAE
from geomask.targets import LayerNormTarget, TokenIds


def test_layer_norm_target_equals_msm_target_normalisation():
    feats = torch.randn(50, 16, generator=torch.Generator().manual_seed(2)) * 4 + 1
    dst = torch.tensor([3, 3, 7, 49, 0])
    assert torch.equal(LayerNormTarget()(feats[dst]), F.layer_norm(feats[dst], feats.shape[1:]))


def test_token_ids_equal_pointbert_dvae_tokens():
    torch.manual_seed(0)
    dvae = DiscreteVAE(group_size=8, num_tokens=16, token_dim=8, enc_dim=16, dgcnn_hidden=(8, 8), embed_hidden=8)
    g = torch.Generator().manual_seed(3)
    neighborhood = torch.randn(2, 6, 8, 3, generator=g)
    centers = torch.randn(2, 6, 3, generator=g)
    dvae.train()
    ids = TokenIds(dvae)(neighborhood, centers)
    assert dvae.training
    with torch.no_grad():  # Point-BERT's former inline sequence
        was = dvae.training
        dvae.eval()
        ref = dvae.tokenize(neighborhood, centers)
        dvae.train(was)
    assert torch.equal(ids, ref) and ids.shape == (2, 6)
