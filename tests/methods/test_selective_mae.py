"""SelectiveMAE: the loss against its formula written out, the decoder seeing only visible + selected tokens, the
score-ranked selection and PSTS's representative -> complementary schedule (moved by the step hook only), the
shipped configs, and a short seeded training run beating the patch-mean baseline on held-out selected patches."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import yaml

from geomask.errors import UsageError
from geomask.grids import GridBatch
from geomask.methods import build_method
from geomask.methods.selective_mae import SelectiveMAE, near_share
from geomask.nn.vit import visible_ids

pytestmark = pytest.mark.usefixtures("one_thread")

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
TINY = {"image_size": 16, "patch_size": 2, "dim": 24, "depth": 1, "heads": 2}  # 64 patches
TINY_DEC = {"decoder_dim": 16, "decoder_depth": 1, "decoder_heads": 2}


def tiny(**kw) -> SelectiveMAE:
    torch.manual_seed(0)
    return build_method("selective_mae", **{**TINY, **TINY_DEC, **kw})


def gratings(n: int, seed: int, size: int = 16) -> torch.Tensor:
    """Coloured sine gratings of random orientation, frequency and phase (every patch follows from the others)."""
    g = torch.Generator().manual_seed(seed)
    theta = torch.rand(n, 1, 1, 1, generator=g) * 2 * math.pi
    freq = 0.15 + 0.25 * torch.rand(n, 1, 1, 1, generator=g)
    phase = torch.rand(n, 1, 1, 1, generator=g) * 2 * math.pi
    colour = torch.rand(n, 3, 1, 1, generator=g)
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    return (0.5 + 0.5 * torch.sin(freq * (xx * torch.cos(theta) + yy * torch.sin(theta)) + phase)) * colour


def test_counts_85_percent_masked_and_a_quarter_reconstructed_among_the_masked():
    m = tiny()
    x = torch.rand(3, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    mask, selected = m.draw(x, torch.Generator().manual_seed(0))
    assert mask.sum(1).tolist() == [54] * 3  # round(0.85 * 64)
    assert selected.sum(1).tolist() == [16] * 3  # round(0.25 * 64)
    assert not (selected & ~mask).any()


def test_loss_is_the_formula_over_the_selected_patches_written_out():
    m = tiny(patch_size=4, image_size=16).eval()  # 16 patches: 14 masked, 4 reconstructed
    x = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(2))
    out = m(x, torch.Generator().manual_seed(7))
    mask, selected = m.draw(x, torch.Generator().manual_seed(7))  # the same draws in the same order
    p = m.encode(x, mask)
    ids_sel, _ = visible_ids(~selected)
    pred = m.decoder(p.latent, p.ids_keep, ids_sel, p.grid)
    t = x.reshape(2, 3, 4, 4, 4, 4).permute(0, 2, 4, 3, 5, 1).reshape(2, 16, 48)
    t = (t - t.mean(-1, keepdim=True)) / (t.var(-1, keepdim=True) + 1e-6) ** 0.5  # MAE's norm_pix
    total = 0.0
    for b in range(2):
        for k, i in enumerate(ids_sel[b].tolist()):
            assert mask[b, i]
            total += ((pred[b, k] - t[b, i]) ** 2).mean()
    torch.testing.assert_close(out["loss"], total / ids_sel.numel())


def test_the_decoder_sees_visible_and_selected_tokens_only():
    seen = {}

    def record(name):
        return lambda module, args: seen.__setitem__(name, args[0].shape[1])

    x = GridBatch(torch.rand(2, 3, 16, 16), 2)
    sel = tiny()
    mae = build_method("mae", **TINY, **TINY_DEC)
    sel.decoder.blocks[0].register_forward_pre_hook(record("selective"))
    mae.decoder.blocks[0].register_forward_pre_hook(record("mae"))
    sel(x, torch.Generator().manual_seed(0))
    mae(x, torch.Generator().manual_seed(0))
    assert seen == {"selective": 1 + 10 + 16, "mae": 1 + 64}


def test_reconstructed_patches_are_the_most_textured_masked_ones_at_temperature_0():
    m = tiny(masker={"name": "scored", "ratio": 0.85, "temperature": 0.0})
    x = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(3)) ** 4  # uneven texture
    mask, selected = m.draw(x, torch.Generator().manual_seed(0))
    s = m.scores(x)
    for b in range(2):
        masked = mask[b].nonzero()[:, 0]
        top = masked[s[b, masked].argsort(descending=True)[:16]]
        assert set(top.tolist()) == set(selected[b].nonzero()[:, 0].tolist())
    # and at temperature 1 the draw still favours texture: selected patches score above the masked mean
    m1 = tiny()
    mask, selected = m1.draw(x, torch.Generator().manual_seed(0))
    assert s[selected].mean() > s[mask & ~selected].mean()


def test_psts_adds_representative_then_complementary_tokens_and_the_hook_moves_it():
    m = tiny(masker={"name": "scored", "ratio": 0.85, "temperature": 0.0}, total_steps=100)
    x = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(4))
    s = m.scores(x)
    first = torch.argsort(s, dim=1, descending=True, stable=True)[:, :5]  # K = 10, K0 = 5 by score (top-k at tau 0)
    emb = torch.nn.functional.normalize(m.encoder.embed(x)[:, 1:], dim=-1).detach()
    chosen = torch.zeros(2, 64, dtype=torch.bool).scatter(1, first, True)
    sim = torch.stack([(emb[b] @ emb[b, chosen[b]].T).max(1).values for b in range(2)]).masked_fill(
        chosen, float("nan")
    )

    def expected(near: bool) -> list[set[int]]:
        out = []
        for b in range(2):
            rest = [i for i in range(64) if not chosen[b, i]]
            rest.sort(key=lambda i: float(sim[b, i]), reverse=near)
            out.append(set(first[b].tolist()) | set(rest[:5]))
        return out

    vis = ~m.draw(x, torch.Generator().manual_seed(0))[0]
    assert [set(v.nonzero()[:, 0].tolist()) for v in vis] == expected(near=True)
    m(GridBatch(x, 2), torch.Generator().manual_seed(0))
    assert int(m.step) == 0  # forward changes nothing
    m.on_train_step_end(99)
    assert int(m.step) == 100 and near_share(100, 100) == 0.0
    vis = ~m.draw(x, torch.Generator().manual_seed(0))[0]
    assert [set(v.nonzero()[:, 0].tolist()) for v in vis] == expected(near=False)
    assert near_share(20, 100) == 1.0 and near_share(26, 100) == pytest.approx(0.6)


def test_other_maskers_and_bad_options():
    m = tiny(masker={"name": "random_tokens", "ratio": 0.75})
    mask, selected = m.draw(torch.rand(2, 3, 16, 16), torch.Generator().manual_seed(0))
    assert mask.sum(1).tolist() == [48, 48] and selected.sum(1).tolist() == [16, 16]
    with pytest.raises(UsageError, match=r"^method\.masker: selective_mae's scored masker takes fraction 1"):
        tiny(masker={"name": "scored", "ratio": 0.85, "fraction": 0.5})
    with pytest.raises(UsageError, match=r"^method\.masker: selective_mae masks patches"):
        tiny(masker={"name": "block"})
    with pytest.raises(UsageError, match="reconstruct_ratio"):
        tiny(reconstruct_ratio=0.0)


@pytest.mark.parametrize("config", ["selective_mae_cpu", "selective_mae"])
def test_shipped_configs_build_and_take_a_step(config):
    spec = yaml.safe_load((CONFIGS / f"{config}.yaml").read_text())
    assert spec["data"]["kind"] == ("shapes" if config.endswith("_cpu") else "images")
    kw = {k: v for k, v in spec["method"].items() if k != "name"}
    assert kw["masker"]["ratio"] == 0.85 and kw["reconstruct_ratio"] == 0.25
    if config == "selective_mae":
        assert (kw["image_size"], kw["patch_size"], kw["dim"], kw["depth"], kw["heads"]) == (224, 16, 768, 12, 12)
        kw.update(dim=48, depth=1, heads=3, decoder_dim=32, decoder_depth=1, decoder_heads=2)
    torch.manual_seed(0)
    m = build_method(spec["method"]["name"], **kw)
    size = m.encoder.image_grid[0] * m.encoder.patch[0]
    out = m(GridBatch(torch.rand(2, 3, size, size), m.encoder.patch), torch.Generator().manual_seed(0))
    assert torch.isfinite(out["loss"])


def test_training_beats_predicting_each_selected_patch_by_its_mean():
    m = tiny(patch_size=4, dim=64, depth=2, heads=4, decoder_depth=1, masker={"name": "scored", "ratio": 0.75})
    opt = torch.optim.AdamW(m.parameters(), lr=2e-3, weight_decay=0.05, betas=(0.9, 0.95))
    for step in range(120):
        loss = m(gratings(64, step), torch.Generator().manual_seed(10_000 + step))["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        m.on_train_step_end(step)
    m.eval()
    with torch.no_grad():
        test = gratings(256, 999)
        trained = float(m(test, torch.Generator().manual_seed(5))["loss"])
        # the patch-mean baseline on the same draws: 0 in norm_pix units, so the mean squared normalised target
        mask, selected = m.draw(test, torch.Generator().manual_seed(5))
        t = m.patch_targets(test)
        baseline = float(t.pow(2).mean(-1)[selected].mean())
    assert baseline > 0.9
    assert trained < 0.7 * baseline, (trained, baseline)
