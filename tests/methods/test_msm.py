"""Masked Scene Modeling: EMA teacher, mask tokens at every decoder level, gradients, a loss that falls."""

from __future__ import annotations

import pytest
import torch

from geomask.methods.msm import MSM, build_msm
from geomask.points.augment import ScenePoints

# tiny sparse ops run fastest (and predictably on a busy machine) on one thread
pytestmark = pytest.mark.usefixtures("one_thread")


def tiny_scenes(n=1500, seed=0):
    g = torch.Generator().manual_seed(seed)
    pts = torch.rand(2 * n, 3, generator=g) * torch.tensor([2.4, 2.4, 1.2])
    cols = torch.rand(2 * n, 3, generator=g)
    return ScenePoints(pts, cols, torch.arange(2).repeat_interleave(n))


def tiny_msm(**kw):
    torch.manual_seed(0)
    return build_msm(backbone="Res16UNetTiny", voxel_size=0.1, mask_cell=2, **kw)


def test_ema_update_matches_formula():
    m = tiny_msm(momentum=0.9)
    with torch.no_grad():
        for p in m.backbone.parameters():
            p.add_(1.0)
    t_before = [p.clone() for p in m.teacher.parameters()]
    m.on_train_step_end(0)
    for t0, t, s in zip(t_before, m.teacher.parameters(), m.backbone.parameters()):
        assert torch.allclose(t, 0.9 * t0 + 0.1 * s, atol=1e-6)
    assert all(not p.requires_grad for p in m.teacher.parameters())


def test_teacher_updated_by_the_step_hook_never_by_forward():
    m = tiny_msm(momentum=0.5)
    batch = tiny_scenes(400)
    opt = torch.optim.SGD(m.parameters(), lr=0.1)
    m.train()
    out = m(batch, torch.Generator().manual_seed(0))
    out["loss"].backward()
    opt.step()
    student = [p.detach().clone() for p in m.backbone.parameters()]
    teacher = [p.detach().clone() for p in m.teacher.parameters()]
    m(batch, torch.Generator().manual_seed(1))  # training forwards leave the teacher and the counter alone
    assert all(torch.equal(t0, t) for t0, t in zip(teacher, m.teacher.parameters()))
    assert int(m.num_updates) == 0
    m.on_train_step_end(0)
    assert int(m.num_updates) == 1
    moved = 0
    for t0, t, s in zip(teacher, m.teacher.parameters(), student):
        assert torch.allclose(t, 0.5 * t0 + 0.5 * s, atol=1e-6)
        moved += int(not torch.equal(t0, s))
    assert moved > 0  # the optimiser step moved the student, so the update is not trivially the identity


def test_mask_tokens_fill_masked_sites_at_every_level():
    m = tiny_msm()
    m.train()
    out = m(tiny_scenes(), torch.Generator().manual_seed(0))
    out["loss"].backward()
    assert 0.3 < float(out["masked_ratio"]) < 0.5
    for j in range(4):
        assert float(out[f"level{j}"]) > 0
        g = m.skip_tokens[j].grad
        assert g is not None and float(g.abs().sum()) > 0, f"no gradient reaches the level-{j} mask token"
    assert m.up_token.grad is not None and float(m.up_token.grad.abs().sum()) > 0
    missing = [n for n, p in m.named_parameters() if p.requires_grad and p.grad is None]
    assert missing == []


def test_student_levels_live_on_full_sites():
    m = tiny_msm()
    m.train()
    captured = {}
    orig = m._student

    def spy(x, visible, enc):
        levels, masked = orig(x, visible, enc)
        captured["levels"], captured["masked"], captured["enc"] = levels, masked, enc
        captured["visible"] = visible
        return levels, masked

    m._student = spy
    m(tiny_scenes(600), torch.Generator().manual_seed(2))
    for j, (lv, msk) in enumerate(zip(captured["levels"], captured["masked"])):
        full = captured["enc"][3 - j]
        assert torch.equal(lv.coords, full.coords) and len(msk) == len(full)
        assert bool(msk.any()) and bool((~msk).any())
    # at stride 1 the masked sites are exactly the hidden voxels
    assert torch.equal(captured["masked"][3], ~captured["visible"])


def test_tiny_seeded_run_loss_decreases():
    m = tiny_msm(momentum=0.99)
    batch = tiny_scenes(800)
    opt = torch.optim.AdamW(m.parameters(), lr=5e-3)
    g = torch.Generator().manual_seed(0)
    m.train()
    losses = []
    for _ in range(25):
        out = m(batch, g)
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        m.on_train_step_end(len(losses))
        losses.append(float(out["loss"].detach()))
    assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5 - 0.02


def test_embed_gives_every_level_per_point():
    m = tiny_msm(geometry="height")
    m.eval()
    feats = m.embed(tiny_scenes(300))
    assert [f.shape[1] for f in feats] == list(m.backbone.planes[4:]) and all(len(f) == 600 for f in feats)


def test_bad_arguments():
    with pytest.raises(ValueError):
        tiny_msm(loss="l3")
    net = build_msm(backbone="Res16UNetTiny").backbone
    with pytest.raises(ValueError):
        MSM(net, 0.1, None, None, embed_with="both")


def test_encoder_is_the_backbone_and_checkpoint_keys_keep_their_names():
    m = tiny_msm()
    assert m.encoder is m.backbone  # the student U-Net, exported as encoder.pt
    keys = list(m.state_dict())
    assert any(k.startswith("backbone.") for k in keys) and not any(k.startswith("encoder.") for k in keys)


def test_resume_check_accepts_checkpoints_from_before_the_teacher_rename(tmp_path):
    """A checkpoint whose EMA teacher is stored as ``teacher.X`` (before it was an EMATeacher) loads through
    MSM's load hook, so the engine's shape check before resuming must not refuse it; a real mismatch still is."""
    from geomask.train.engine import RunConflictError, _check_weights

    m = tiny_msm()
    old = {}
    for k, v in m.state_dict().items():
        old["method." + k.replace("teacher.module.", "teacher.", 1)] = tuple(v.shape)
    assert any(k.startswith("method.teacher.") and ".module." not in k for k in old)
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    _check_weights(last, old, m)  # no error
    state = {k.replace("teacher.module.", "teacher.", 1): v for k, v in m.state_dict().items()}
    m.load_state_dict(state)  # and the weights themselves load
    bad = dict(old)
    key = next(k for k in bad if k.startswith("method.teacher.") and len(bad[k]) >= 2)
    bad[key] = (bad[key][0] + 1, *bad[key][1:])
    with pytest.raises(RunConflictError, match="in the checkpoint"):
        _check_weights(last, bad, m)
