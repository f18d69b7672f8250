"""Point-BERT: every stage's contract, schedules, the dVAE, and the MPM targets."""

from __future__ import annotations

import pytest
import torch

from geomask.masking import PatchLayout
from geomask.methods.pointbert import build_pointbert
from geomask.nn.dvae import gumbel_softmax, gumbel_temperature, kl_weight
from geomask.points.synthetic import synthetic_objects

TINY = dict(
    num_groups=16, group_size=16, dim=32, depth=2, heads=2, num_tokens=32, token_dim=16, dvae_dim=32,
    dgcnn_hidden=[16, 32], embed_hidden=16, tau_steps=10, kl_steps=10,
)  # fmt: skip


@pytest.mark.parametrize("stage", ["joint", "dvae", "mpm"])
def test_forward_backward_contract(stage):
    torch.manual_seed(0)
    pos, _ = synthetic_objects(4, 256, seed=0)
    m = build_pointbert(stage=stage, **TINY)
    out = m(pos, torch.Generator().manual_seed(0))
    assert "loss" in out and all(torch.isfinite(v) for v in out.values())
    assert ("mpm" in out) == (stage != "dvae") and ("dvae" in out) == (stage != "mpm")
    out["loss"].backward()
    trainable = [(n, p) for n, p in m.named_parameters() if p.requires_grad]
    assert trainable
    missing = [n for n, p in trainable if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing
    frozen = {n.split(".")[0] for n, p in m.named_parameters() if not p.requires_grad}
    assert frozen == {"mpm": {"dvae"}, "dvae": {"patch_embed", "pos_embed", "encoder", "head", "cls_token",
                                                  "cls_pos", "mask_token"}, "joint": set()}[stage]  # fmt: skip
    assert m.embed(pos).shape == (4, 64)


def test_schedules_and_step_counter():
    assert gumbel_temperature(0) == 1.0 and gumbel_temperature(10**6) == 0.0625
    assert gumbel_temperature(50_000) == pytest.approx(0.25)  # geometric midpoint of 1 and 1/16
    assert kl_weight(0) == 0.0 and kl_weight(50_000) == pytest.approx(0.05) and kl_weight(10**6) == 0.1
    m = build_pointbert(stage="dvae", **TINY)
    pos, _ = synthetic_objects(2, 128, seed=0)
    assert m.schedules() == (1.0, 0.0)
    for step in range(3):
        m(pos, torch.Generator().manual_seed(0))
        assert int(m.num_updates) == step  # forward never advances the schedules; the step hook does
        m.on_train_step_end(step)
    assert int(m.num_updates) == 3 and m.schedules()[0] < 1.0 and m.schedules()[1] > 0.0
    m.eval()
    m(pos, torch.Generator().manual_seed(0))
    assert int(m.num_updates) == 3
    assert "num_updates" in m.state_dict()


def test_frozen_tokenizer_stays_in_eval_mode_and_forward_keeps_modes():
    torch.manual_seed(0)
    pos, _ = synthetic_objects(2, 128, seed=0)
    mpm = build_pointbert(stage="mpm", **TINY)
    for mode in (True, False, True):
        mpm.train(mode)
        assert mpm.training == mode and mpm.encoder.training == mode
        assert not any(sub.training for sub in mpm.dvae.modules())
    joint = build_pointbert(stage="joint", **TINY).train()
    joint(pos, torch.Generator().manual_seed(0))  # tokenizes in inference mode inside
    assert all(sub.training for sub in joint.modules())


def test_gumbel_softmax_seeded_and_sharpens():
    logits = torch.randn(5, 8, generator=torch.Generator().manual_seed(0))
    a = gumbel_softmax(logits, 1.0, torch.Generator().manual_seed(1))
    b = gumbel_softmax(logits, 1.0, torch.Generator().manual_seed(1))
    torch.testing.assert_close(a, b)
    torch.testing.assert_close(a.sum(-1), torch.ones(5))
    cold = gumbel_softmax(logits, 0.01, torch.Generator().manual_seed(1))
    assert (cold.amax(-1) > 0.99).all() and (cold.amax(-1) >= a.amax(-1)).all()


def test_masked_patches_are_hidden_from_the_encoder():
    torch.manual_seed(0)
    pos, _ = synthetic_objects(4, 256, seed=3)
    m = build_pointbert(stage="mpm", **TINY).eval()
    patches = m.group(pos, torch.Generator().manual_seed(2))
    mask = m.masker(PatchLayout(patches.centers), torch.Generator().manual_seed(3)).view(4, -1)
    assert 0 < int(mask.sum()) < mask.numel()
    noisy = patches._replace(neighborhood=torch.where(mask[..., None, None], torch.randn_like(patches.neighborhood),
                                                      patches.neighborhood))  # fmt: skip
    with torch.no_grad():
        torch.testing.assert_close(m.encode(patches, mask), m.encode(noisy, mask))
        assert not torch.allclose(m.encode(patches), m.encode(noisy))


def test_mpm_loss_is_cross_entropy_on_masked_token_ids():
    torch.manual_seed(0)
    pos, _ = synthetic_objects(4, 256, seed=4)
    m = build_pointbert(stage="mpm", **TINY).eval()
    out = m(pos, torch.Generator().manual_seed(5))
    gen = torch.Generator().manual_seed(5)  # the same draws in the same order: FPS start, then the mask
    patches = m.group(pos, gen)
    mask = m.masker(PatchLayout(patches.centers), gen).view(4, -1)
    with torch.no_grad():
        ids = m.dvae.tokenize(patches.neighborhood, patches.centers)
        logits = m.head(m.encode(patches, mask)[:, 1:][mask])
    ce = torch.nn.functional.cross_entropy(logits, ids[mask])
    assert out["mpm"].item() == pytest.approx(ce.item(), rel=1e-5)
