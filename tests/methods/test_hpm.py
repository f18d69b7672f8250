"""HPM: the ranking loss against HPM's pairwise formula written out, the easy -> hard schedule (moved by the step
hook only, carried by checkpoints, masking the predicted-hardest patches), the loss terms, the shipped configs, and a
short seeded training run whose predictor ranks held-out patches better than before training and than no ranking."""

from __future__ import annotations

import io
import math
from pathlib import Path

import pytest
import torch
import yaml

from geomask.errors import UsageError
from geomask.grids import GridBatch
from geomask.masking import TokenGridLayout, build_masker
from geomask.methods import build_method
from geomask.methods.hpm import HPM, pairwise_ranking_loss

pytestmark = pytest.mark.usefixtures("one_thread")

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
TINY = {"image_size": 16, "patch_size": 4, "dim": 48, "depth": 2, "heads": 3}
TINY_DEC = {"decoder_dim": 32, "decoder_depth": 1, "decoder_heads": 4}


def tiny(**kw) -> HPM:
    torch.manual_seed(0)
    return build_method("hpm", **{**TINY, **TINY_DEC, **kw})


def test_ranking_loss_is_hpms_pairwise_bce_written_out():
    g = torch.Generator().manual_seed(0)
    scores = torch.randn(3, 7, generator=g, dtype=torch.float64)
    losses = torch.randint(0, 4, (3, 7), generator=g).double()  # ties: those pairs do not count
    mask = torch.rand(3, 7, generator=g) < 0.7
    total, count = 0.0, 0
    for b in range(3):
        for i in range(7):
            for j in range(7):
                if not (mask[b, i] and mask[b, j]) or losses[b, i] == losses[b, j]:
                    continue
                p = 1 / (1 + math.exp(-(scores[b, j] - scores[b, i])))  # sigmoid(s_j - s_i)
                total += -math.log(p) if losses[b, j] > losses[b, i] else -math.log(1 - p)
                count += 1
    assert pairwise_ranking_loss(scores, losses, mask).item() == pytest.approx(total / count, rel=1e-12)


def test_ranking_loss_sees_only_the_order_of_the_losses():
    g = torch.Generator().manual_seed(1)
    scores, losses = torch.randn(2, 9, generator=g), torch.rand(2, 9, generator=g)
    base = pairwise_ranking_loss(scores, losses)
    torch.testing.assert_close(pairwise_ranking_loss(scores, losses.exp() * 10 - 3), base)  # monotone map
    torch.testing.assert_close(pairwise_ranking_loss(scores + 4.0, losses), base)  # a shift of every score
    flat = pairwise_ranking_loss(scores.requires_grad_(True), torch.ones(2, 9))  # no ordered pair
    flat.backward()
    assert flat.item() == 0.0 and not scores.grad.any()


def test_the_schedule_moves_in_the_step_hook_only_and_checkpoints_carry_it():
    m = tiny(total_steps=10)
    x = GridBatch(torch.rand(2, 3, 16, 16), 4)
    assert int(m.step) == 0 and m.hard_fraction() == pytest.approx(0.05)  # (0 + 1) / 10 * 0.5
    m(x, torch.Generator().manual_seed(0))
    assert int(m.step) == 0  # forward changes nothing
    m.on_train_step_end(3)
    assert int(m.step) == 4 and m.hard_fraction() == pytest.approx(0.25)
    m.on_train_step_end(40)
    assert m.hard_fraction() == pytest.approx(0.5)  # clamped at the masker's fraction
    buf = io.BytesIO()
    torch.save(m.state_dict(), buf)
    buf.seek(0)
    other = tiny(total_steps=10)
    other.load_state_dict(torch.load(buf, weights_only=True))
    assert int(other.step) == 41


def test_masks_take_the_predicted_hardest_patches_as_the_schedule_says():
    x = torch.rand(4, 3, 16, 16, generator=torch.Generator().manual_seed(2))
    m = tiny(total_steps=1).eval()  # step 0 of 1: the final share, half of the 12 masked patches by score
    scores = m.predicted_losses(x)
    mask = m.draw_mask(x, torch.Generator().manual_seed(0))
    assert mask.sum(1).tolist() == [12] * 4
    top = scores.argsort(1, descending=True)[:, :6]
    assert bool(mask.gather(1, top).all())
    early = tiny(total_steps=1000).eval()  # step 0 of 1000: round(0.0005 * 12) = 0 chosen by score
    masks = [early.draw_mask(x, torch.Generator().manual_seed(s)) for s in range(20)]
    hit = torch.stack([mk.gather(1, top) for mk in masks]).float().mean()
    assert 0.5 < hit < 0.95  # random: about 12 / 16 of the top patches masked, not all of them


def test_loss_is_reconstruction_plus_weighted_ranking():
    x = GridBatch(torch.rand(3, 3, 16, 16, generator=torch.Generator().manual_seed(3)), 4)
    out = tiny(rank_weight=0.3)(x, torch.Generator().manual_seed(1))
    torch.testing.assert_close(out["loss"], out["reconstruction"] + 0.3 * out["ranking"])
    assert 0.3 < out["ranking"] < 1.5  # about log 2 before training


def test_a_plain_token_masker_runs_without_the_schedule_and_other_layouts_are_refused():
    m = tiny(masker={"name": "random_tokens", "ratio": 0.75})
    assert m.hard_fraction() == 0.0
    assert torch.isfinite(m(GridBatch(torch.rand(2, 3, 16, 16), 4), torch.Generator().manual_seed(0))["loss"])
    with pytest.raises(UsageError, match=r"^method\.masker: hpm masks patches"):
        tiny(masker={"name": "block"})


@pytest.mark.parametrize("config", ["hpm_cpu", "hpm"])
def test_shipped_configs_build_and_take_a_step(config):
    spec = yaml.safe_load((CONFIGS / f"{config}.yaml").read_text())
    assert spec["data"]["kind"] == ("shapes" if config.endswith("_cpu") else "images")
    kw = {k: v for k, v in spec["method"].items() if k != "name"}
    assert kw["masker"] == {"name": "scored", "ratio": 0.75, "fraction": 0.5} and kw["loss"] == {"name": "l2"}
    if config == "hpm":
        assert (kw["image_size"], kw["patch_size"], kw["dim"], kw["depth"], kw["heads"]) == (224, 16, 768, 12, 12)
        kw.update(dim=48, depth=1, heads=3, decoder_dim=32, decoder_depth=1, decoder_heads=2, predictor_depth=1)
    torch.manual_seed(0)
    m = build_method(spec["method"]["name"], **kw)
    size = m.encoder.image_grid[0] * m.encoder.patch[0]
    x = torch.rand(2, 3, size, size)
    out = m(GridBatch(x, m.encoder.patch), torch.Generator().manual_seed(0))
    assert torch.isfinite(out["loss"]) and set(out) == {"loss", "reconstruction", "ranking"}
    assert m.features(x).shape == (2, m.encoder.dim)


def half_noise(n: int, seed: int, size: int = 16) -> torch.Tensor:
    """Grey images whose left half is uniform noise (hard to reconstruct) and right half one flat grey (easy)."""
    g = torch.Generator().manual_seed(seed)
    grey = torch.rand(n, 1, 1, 1, generator=g).expand(n, 3, size, size)
    noise = torch.rand(n, 3, size, size, generator=g)
    left = (torch.arange(size) < size // 2).view(1, 1, 1, size)
    return torch.where(left, noise, grey)


def held_out_ranking(m: HPM, x: torch.Tensor) -> tuple[float, float]:
    """The ranking loss of the predictor on held-out masked patches, and that of no ranking (equal scores)."""
    mask = build_masker({"name": "random_tokens", "ratio": 0.75})(
        TokenGridLayout(x.size(0), (4, 4)), torch.Generator().manual_seed(5)
    )
    mask = mask.view(x.size(0), -1)
    with torch.no_grad():
        p = m.encode(x, mask)
        per_patch = (m.decoder(p.latent, p.ids_keep, p.grid, p.padding) - m.patch_targets(x)).pow(2).mean(-1)
        scores = m.predictor(p.latent, p.ids_keep, p.grid, p.padding)[..., 0]
    return float(pairwise_ranking_loss(scores, per_patch, mask)), float(
        pairwise_ranking_loss(0 * scores, per_patch, mask)
    )


def test_training_teaches_the_predictor_to_rank_held_out_patches():
    m = tiny(total_steps=120)
    test = half_noise(128, 999)
    m.eval()
    untrained, _ = held_out_ranking(m, test)
    m.train()
    opt = torch.optim.AdamW(m.parameters(), lr=2e-3, weight_decay=0.05, betas=(0.9, 0.95))
    for step in range(120):
        loss = m(half_noise(32, step), torch.Generator().manual_seed(10_000 + step))["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        m.on_train_step_end(step)
    assert m.hard_fraction() == pytest.approx(0.5)
    m.eval()
    trained, equal = held_out_ranking(m, test)
    assert equal == pytest.approx(math.log(2))
    assert trained < 0.8 * min(untrained, equal), (trained, untrained, equal)
