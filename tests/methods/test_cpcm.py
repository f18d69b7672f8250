"""CPCM: JS divergence by hand (its loss component), the ramp-up, the masked branch, the masker and loss
sections, and a loss that falls on a tiny scene."""

from __future__ import annotations

import math

import pytest
import torch

from geomask.losses import js_divergence
from geomask.methods.cpcm import build_cpcm, sigmoid_rampup
from geomask.points.augment import ScenePoints

# tiny sparse ops run fastest (and predictably on a busy machine) on one thread
pytestmark = pytest.mark.usefixtures("one_thread")


def test_js_divergence_matches_hand_calculation():
    p = torch.tensor([0.8, 0.2])
    q = torch.tensor([0.4, 0.6])
    m = (p + q) / 2
    kl = lambda a, b: sum(float(a[i]) * math.log(float(a[i]) / float(b[i])) for i in range(2))  # noqa: E731
    want = 0.5 * kl(p, m) + 0.5 * kl(q, m)
    got = js_divergence(p.log().unsqueeze(0), q.unsqueeze(0))
    assert abs(float(got) - want) < 1e-6
    # symmetric, zero on equal inputs, bounded by ln 2 on disjoint ones
    assert abs(float(js_divergence(q.log()[None], p[None])) - want) < 1e-6
    assert float(js_divergence(p.log()[None], p[None])) < 1e-7
    disjoint = js_divergence(torch.tensor([[30.0, -30.0]]), torch.tensor([[0.0, 1.0]]))
    assert abs(float(disjoint) - math.log(2)) < 1e-4


def test_sigmoid_rampup():
    assert abs(sigmoid_rampup(0, 100) - math.exp(-5)) < 1e-12
    assert abs(sigmoid_rampup(50, 100) - math.exp(-1.25)) < 1e-12
    assert sigmoid_rampup(100, 100) == 1.0 and sigmoid_rampup(500, 100) == 1.0 and sigmoid_rampup(3, 0) == 1.0


def labelled_scene(n=1500, seed=0):
    """Two classes split by height: floor (z < 0.3) and the rest, 2 % labelled."""
    g = torch.Generator().manual_seed(seed)
    pts = torch.rand(n, 3, generator=g) * torch.tensor([2.4, 2.4, 1.2])
    full = (pts[:, 2] > 0.3).long()
    cols = torch.stack([full.float(), 1 - full.float(), torch.rand(n, generator=g)], 1)
    labels = torch.full((n,), -1)
    idx = torch.randperm(n, generator=g)[: n // 50]
    labels[idx] = full[idx]
    return ScenePoints(pts, cols, torch.zeros(n, dtype=torch.long), labels), full


def tiny(mask=True, **kw):
    torch.manual_seed(0)
    return build_cpcm(num_classes=2, backbone="Res16UNetTiny", voxel_size=0.1, grid=2, mask=mask, rampup_steps=5, **kw)


def test_masked_branch_terms_and_baseline():
    batch, _ = labelled_scene()
    m = tiny()
    m.train()
    out = m(batch, torch.Generator().manual_seed(0))
    assert float(out["js_within"]) > 0 and float(out["js_across"]) > 0
    w = math.exp(-5)  # first step of the ramp-up
    want = out["ce"] + w * (out["js_within"] + out["js_across"])
    assert abs(float(out["loss"].detach()) - float(want)) < 1e-5
    base = tiny(mask=False)
    base.train()
    out_b = base(batch, torch.Generator().manual_seed(0))
    assert float(out_b["js_within"]) == 0 and abs(float(out_b["loss"]) - float(out_b["ce"])) < 1e-7


def test_region_mask_zeroes_only_masked_copies():
    batch, _ = labelled_scene(800)
    m = tiny()
    seen = {}
    m.backbone.register_forward_pre_hook(lambda mod, args: seen.__setitem__("x", args[0]))
    m.train()
    m(batch, torch.Generator().manual_seed(0))
    x = seen["x"]
    scene = x.coords[:, 0]
    zero_rows = x.feats.abs().sum(1) == 0
    assert not bool(zero_rows[scene == 0].any())  # the full view keeps its features
    for s in (1, 2):  # A' and B' hide some but not all voxels, whole sites kept
        frac = float(zero_rows[scene == s].float().mean())
        assert 0.2 < frac < 0.99
    assert int((scene == 1).sum()) == int((scene == 0).sum())


def test_tiny_seeded_run_loss_decreases():
    batch, _ = labelled_scene()
    m = tiny()
    opt = torch.optim.AdamW(m.parameters(), lr=1e-2)
    g = torch.Generator().manual_seed(0)
    m.train()
    ces = []
    for step in range(20):
        out = m(batch, g)
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        m.on_train_step_end(step)
        ces.append(float(out["ce"]))
    assert sum(ces[-4:]) / 4 < sum(ces[:4]) / 4 - 0.05
    assert int(m.num_updates) == 20 and float(out["weight"]) == pytest.approx(1.0)  # ramped up after 5 steps
    m.eval()
    assert m.predict(batch).shape == (len(batch.points), 2)


def test_encoder_is_the_backbone_and_checkpoint_keys_keep_their_names():
    m = tiny()
    assert m.encoder is m.backbone  # the U-Net, exported as encoder.pt
    keys = list(m.state_dict())
    assert any(k.startswith("backbone.") for k in keys) and not any(k.startswith("encoder.") for k in keys)
