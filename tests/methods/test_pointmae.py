"""Point-MAE: contract (finite losses, every parameter gets a gradient, seeded) and a short pretraining."""

from __future__ import annotations

import torch

from geomask.masking import PatchLayout
from geomask.methods.pointmae import build_pointmae
from geomask.ops.chamfer import chamfer_distance
from geomask.points.synthetic import synthetic_objects

TINY = dict(num_groups=16, group_size=16, dim=32, depth=2, decoder_depth=1, heads=2, embed_hidden=16)


def test_forward_backward_contract():
    torch.manual_seed(0)
    pos, _ = synthetic_objects(4, 256, seed=0)
    m = build_pointmae(**TINY)
    out = m(pos, torch.Generator().manual_seed(0))
    assert set(out) >= {"loss", "chamfer"} and torch.isfinite(out["loss"])
    out["loss"].backward()
    missing = [n for n, p in m.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing
    m.eval()
    a = m(pos, torch.Generator().manual_seed(1))["loss"]
    b = m(pos, torch.Generator().manual_seed(1))["loss"]
    assert a.item() == b.item()
    assert m.embed(pos).shape == (4, 64)


def _mean_visible_baseline(m, pos, gen_seed):
    """Chamfer of predicting every masked patch as the mean shape of the cloud's visible patches."""
    gen = torch.Generator().manual_seed(gen_seed)
    patches = m.group(pos, gen)
    b, g, k, _ = patches.neighborhood.shape
    mask = m.masker(PatchLayout(patches.centers), gen).view(b, g)
    g_m = int(mask[0].sum())
    vis = patches.neighborhood[~mask].reshape(b, g - g_m, k, 3).mean(1)  # [B, K, 3]
    pred = vis.unsqueeze(1).expand(b, g_m, k, 3).reshape(-1, k, 3)
    return chamfer_distance(pred, patches.neighborhood[mask].reshape(-1, k, 3)).item()


def test_short_pretraining_beats_start_and_mean_baseline():
    torch.manual_seed(0)
    train, _ = synthetic_objects(48, 128, seed=1)
    held, _ = synthetic_objects(12, 128, seed=2)
    m = build_pointmae(**{**TINY, "num_groups": 8})
    opt = torch.optim.AdamW(m.parameters(), lr=3e-3)

    def held_chamfer():
        m.eval()
        with torch.no_grad():
            v = m(held, torch.Generator().manual_seed(123))["chamfer"].item()
        m.train()
        return v

    start = held_chamfer()
    baseline = _mean_visible_baseline(m, held, 123)
    gen = torch.Generator().manual_seed(0)
    for _ in range(50):
        idx = torch.randperm(48, generator=gen)[:8]
        loss = m(train[idx], gen)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    end = held_chamfer()
    assert end < start
    assert end < baseline, (start, baseline, end)
