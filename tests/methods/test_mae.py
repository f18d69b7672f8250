"""MAE: Hugging Face parity (loss, logits, mask, gradients), MAE's loss formula written out, ragged masks, the
shipped configs, and a short seeded training run that beats predicting every masked patch by its own mean."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from geomask.grids import GridBatch, patchify, sincos_pos_embed
from geomask.masking import TokenGridLayout
from geomask.methods import build_method
from geomask.methods.mae import MAE
from geomask.nn.convert_hf import convert_vit_mae, mae_keywords

pytestmark = pytest.mark.usefixtures("one_thread")

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
TINY = {"image_size": 32, "patch_size": 4, "dim": 48, "depth": 2, "heads": 3}
TINY_DEC = {"decoder_dim": 32, "decoder_depth": 2, "decoder_heads": 4}


def hf_pair(norm_pix: bool = True):
    """A random Hugging Face ``ViTMAEForPreTraining`` (its default LayerNorm eps 1e-12) and geomask's MAE with its
    weights converted in.  This transformers version leaves the fixed positions and the decoder's mask token at
    zero on random init; they get MAE's sin-cos positions (what its checkpoints hold) and a random mask token."""
    transformers = pytest.importorskip("transformers")
    cfg = transformers.ViTMAEConfig(
        hidden_size=48,
        num_hidden_layers=2,
        num_attention_heads=3,
        intermediate_size=192,
        decoder_hidden_size=32,
        decoder_num_hidden_layers=2,
        decoder_num_attention_heads=4,
        decoder_intermediate_size=128,
        image_size=32,
        patch_size=4,
        norm_pix_loss=norm_pix,
    )
    torch.manual_seed(0)
    hf = transformers.ViTMAEForPreTraining(cfg).eval()
    with torch.no_grad():
        hf.vit.embeddings.position_embeddings.copy_(sincos_pos_embed(48, (8, 8), True)[None])
        hf.decoder.decoder_pos_embed.copy_(sincos_pos_embed(32, (8, 8), True)[None])
        hf.decoder.mask_token.normal_(std=0.02)
    ours = build_method("mae", **mae_keywords(cfg)).eval()
    ours.load_state_dict(convert_vit_mae(hf.state_dict()))
    return hf, ours


def test_sincos_positions_are_hugging_face_maes_layout():
    vit_mae = pytest.importorskip("transformers.models.vit_mae.modeling_vit_mae")
    for h, w, dim in ((8, 8, 48), (3, 5, 32)):
        e = vit_mae.build_2d_sinusoidal_position_embedding(h, w, dim, cls_token=True)
        e = torch.cat([e[:, dim // 2 :], e[:, : dim // 2]], 1)  # the rotation ViTMAEEmbeddings applies
        torch.testing.assert_close(sincos_pos_embed(dim, (h, w), True), e, rtol=0, atol=1e-7)


@pytest.mark.parametrize("norm_pix", [True, False])
def test_same_loss_logits_mask_and_gradients_as_hugging_face(norm_pix):
    hf, ours = hf_pair(norm_pix)
    g = torch.Generator().manual_seed(1)
    x, noise = torch.randn(4, 3, 32, 32, generator=g), torch.rand(4, 64, generator=g)
    want = hf(x, noise=noise)
    got = ours.reconstruct(x, noise=noise)
    assert torch.equal(got.mask, want.mask.bool())
    torch.testing.assert_close(got.pred, want.logits, rtol=0, atol=1e-5)
    torch.testing.assert_close(got.loss, want.loss, rtol=1e-6, atol=1e-6)
    want.loss.backward()
    got.loss.backward()
    grads = convert_vit_mae({k: p.grad for k, p in hf.named_parameters() if p.grad is not None})
    mine = dict(ours.named_parameters())
    assert set(grads) == set(mine)
    for k, grad in grads.items():
        torch.testing.assert_close(mine[k].grad, grad, rtol=1e-4, atol=1e-6, msg=k)
    # a mask (visible tokens in grid order, not noise order): the same numbers up to the order of float sums
    again = ours.reconstruct(x, want.mask.bool())
    torch.testing.assert_close(again.pred, want.logits, rtol=0, atol=1e-5)
    torch.testing.assert_close(again.loss, want.loss.detach(), rtol=1e-5, atol=1e-6)


def test_transformers_4_checkpoint_names_convert_the_same():
    hf, _ = hf_pair()
    v5 = hf.state_dict()
    names = {"q_proj": "attention.query", "k_proj": "attention.key", "v_proj": "attention.value"}
    v4 = {}
    for k, v in v5.items():  # the names transformers 4 wrote (and the hub's vit-mae checkpoints hold)
        k = k.replace("vit.layers.", "vit.encoder.layer.").replace("attention.o_proj", "attention.output.dense")
        k = k.replace("mlp.fc1", "intermediate.dense").replace("mlp.fc2", "output.dense")
        for a, b in names.items():
            k = k.replace(f"attention.{a}", f"attention.{b}")
        v4[k] = v
    assert "vit.encoder.layer.0.attention.attention.query.weight" in v4
    a, b = convert_vit_mae(v5), convert_vit_mae(v4)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(ValueError, match="unknown keys"):
        convert_vit_mae({**v5, "vit.extra.weight": torch.zeros(1)})


def test_loss_is_maes_formula_written_out():
    torch.manual_seed(0)
    m = build_method("mae", **TINY, **TINY_DEC).eval()
    x = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    mask = m.masker(TokenGridLayout(3, (8, 8)), torch.Generator().manual_seed(3)).view(3, 64)
    assert mask.sum(1).tolist() == [48, 48, 48]
    out = m.reconstruct(x, mask)
    # MAE's forward_loss: per-patch normalised target (unbiased var, eps 1e-6), mean over the patch, sum over
    # masked patches / their number
    t = x.reshape(3, 3, 8, 4, 8, 4).permute(0, 2, 4, 3, 5, 1).reshape(3, 64, 48)
    t = (t - t.mean(-1, keepdim=True)) / (t.var(-1, keepdim=True) + 1e-6) ** 0.5
    per_patch = ((out.pred - t) ** 2).mean(-1)
    want = (per_patch * mask).sum() / mask.sum()
    torch.testing.assert_close(out.target, t)
    torch.testing.assert_close(out.loss, want)


def test_ragged_masks_equal_one_image_at_a_time():
    torch.manual_seed(0)
    m = build_method("mae", **TINY, **TINY_DEC, masker={"name": "beit_block", "ratio": 0.4}).eval()
    x = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    mask = torch.zeros(3, 64, dtype=torch.bool)
    for i, k in enumerate((48, 30, 55)):
        mask[i, torch.randperm(64, generator=torch.Generator().manual_seed(i))[:k]] = True
    out = m.reconstruct(x, mask)
    for i in range(3):
        one = m.reconstruct(x[i : i + 1], mask[i : i + 1])
        torch.testing.assert_close(out.pred[i], one.pred[0])
    per = torch.stack([((out.pred[i] - out.target[i]) ** 2).mean(-1)[mask[i]].sum() for i in range(3)])
    torch.testing.assert_close(out.loss, per.sum() / mask.sum())
    assert torch.isfinite(m(GridBatch(x, 4), torch.Generator().manual_seed(0))["loss"])  # the block masker runs


@pytest.mark.parametrize("config", ["mae_cpu", "mae"])
def test_shipped_configs_build_and_take_a_step(config):
    spec = yaml.safe_load((CONFIGS / f"{config}.yaml").read_text())
    assert spec["data"]["kind"] == ("shapes" if config.endswith("_cpu") else "images")
    kw = {k: v for k, v in spec["method"].items() if k != "name"}
    if config == "mae":
        assert (kw["image_size"], kw["patch_size"], kw["dim"], kw["depth"], kw["heads"]) == (224, 16, 768, 12, 12)
        assert kw["masker"] == {"name": "random_tokens", "ratio": 0.75}
        kw.update(dim=48, depth=1, heads=3, decoder_dim=32, decoder_depth=1, decoder_heads=2)  # the rest as shipped
    torch.manual_seed(0)
    m = build_method(spec["method"]["name"], **kw)
    size = m.encoder.image_grid[0] * m.encoder.patch[0]
    x = torch.rand(2, 3, size, size)
    out = m(GridBatch(x, m.encoder.patch), torch.Generator().manual_seed(0))
    assert torch.isfinite(out["loss"])
    assert m.features(x).shape == (2, m.encoder.dim)


def ramps(n: int, seed: int, size: int = 16) -> torch.Tensor:
    """Coloured sine gratings of random orientation, frequency and phase (every patch follows from the others)."""
    g = torch.Generator().manual_seed(seed)
    theta = torch.rand(n, 1, 1, 1, generator=g) * 2 * math.pi
    freq = 0.15 + 0.25 * torch.rand(n, 1, 1, 1, generator=g)
    phase = torch.rand(n, 1, 1, 1, generator=g) * 2 * math.pi
    colour = torch.rand(n, 3, 1, 1, generator=g)
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    return (0.5 + 0.5 * torch.sin(freq * (xx * torch.cos(theta) + yy * torch.sin(theta)) + phase)) * colour


def train_and_compare(m: MAE, draw, test: torch.Tensor, steps: int) -> tuple[float, float]:
    """Train ``steps`` AdamW steps on ``draw(step)``; the held-out masked loss and that of predicting every masked
    patch by its own mean (0 in norm_pix units), on the same masks."""
    opt = torch.optim.AdamW(m.parameters(), lr=2e-3, weight_decay=0.05, betas=(0.9, 0.95))
    for step in range(steps):
        loss = m(draw(step), torch.Generator().manual_seed(10_000 + step))["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    m.eval()
    layout = TokenGridLayout(test.size(0), m.encoder.grid(test))
    mask = m.masker(layout, torch.Generator().manual_seed(5)).view(test.size(0), -1)
    with torch.no_grad():
        out = m.reconstruct(test, mask)
        if m.target is not None:  # after norm_pix a patch's own mean is 0
            mean_pred = torch.zeros_like(out.target)
        else:
            mean_pred = patchify(test, m.encoder.patch).mean(-1, keepdim=True).expand_as(out.target)
        baseline = m.criterion(mean_pred, out.target, mask)
    return float(out.loss), float(baseline)


def test_training_beats_predicting_each_masked_patch_by_its_mean_on_gratings():
    torch.manual_seed(0)
    m = build_method("mae", image_size=16, patch_size=4, dim=64, depth=2, heads=4, **TINY_DEC | {"decoder_depth": 1})
    loss, baseline = train_and_compare(m, lambda s: ramps(64, s), ramps(256, 999), steps=120)
    assert baseline > 0.9  # normalised patches: the mean predicts nothing of their shape
    assert loss < 0.7 * baseline, (loss, baseline)


def test_training_beats_predicting_each_masked_patch_by_its_mean_on_cifar10(shared_data):
    folder = shared_data / "images" / "cifar10"
    if not (folder / "cifar10_train_10k.npz").is_file():
        pytest.skip(f"CIFAR-10 subset not present in {folder}")
    train = torch.from_numpy(np.load(folder / "cifar10_train_10k.npz")["images"][:4096]).permute(0, 3, 1, 2)
    test = torch.from_numpy(np.load(folder / "cifar10_test_2k.npz")["images"][:256]).permute(0, 3, 1, 2)
    train, test = train.float() / 255, test.float() / 255
    g = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    m = build_method("mae", image_size=32, patch_size=4, dim=64, depth=2, heads=4, **TINY_DEC | {"decoder_depth": 1})
    loss, baseline = train_and_compare(m, lambda s: train[torch.randint(0, 4096, (32,), generator=g)], test, 120)
    assert loss < 0.85 * baseline, (loss, baseline)
