"""SimMIM: Hugging Face ``ViTForMaskedImageModeling`` parity (loss, reconstruction, gradients), SimMIM's loss formula
written out, the mask token hiding the masked pixels, the masker's patch check, and the shipped configs."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from geomask.errors import UsageError
from geomask.grids import GridBatch, unpatchify
from geomask.masking import TokenGridLayout, simmim_mask
from geomask.methods import build_method
from geomask.nn.convert_hf import convert_vit_mim, simmim_keywords

pytestmark = pytest.mark.usefixtures("one_thread")

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
TINY = {"image_size": 32, "patch_size": 4, "dim": 48, "depth": 2, "heads": 3, "mask_patch_size": 8}


def hf_pair():
    """A random ``ViTForMaskedImageModeling`` (learned positions, 1x1 conv + pixel shuffle head, LayerNorm eps
    1e-12) and geomask's SimMIM with its weights converted in; the mask token made non-zero."""
    transformers = pytest.importorskip("transformers")
    cfg = transformers.ViTConfig(
        hidden_size=48,
        num_hidden_layers=2,
        num_attention_heads=3,
        intermediate_size=192,
        image_size=32,
        patch_size=4,
        encoder_stride=4,
    )
    torch.manual_seed(0)
    hf = transformers.ViTForMaskedImageModeling(cfg).eval()
    with torch.no_grad():
        hf.vit.embeddings.mask_token.normal_(std=0.02)
    ours = build_method("simmim", **simmim_keywords(cfg), mask_patch_size=8).eval()
    ours.load_state_dict(convert_vit_mim(hf.state_dict()))
    return hf, ours


def test_same_loss_reconstruction_and_gradients_as_hugging_face():
    hf, ours = hf_pair()
    g = torch.Generator().manual_seed(1)
    x = torch.randn(4, 3, 32, 32, generator=g)
    mask = simmim_mask(4, 32, mask_patch_size=8, model_patch_size=4, ratio=0.6, generator=g).view(4, 64)
    want = hf(x, bool_masked_pos=mask)
    got = ours.reconstruct(x, mask)
    torch.testing.assert_close(unpatchify(got.pred, 4, (32, 32)), want.reconstruction, rtol=0, atol=1e-5)
    torch.testing.assert_close(got.loss, want.loss, rtol=1e-6, atol=1e-6)  # HF adds 1e-5 to the pixel count
    want.loss.backward()
    got.loss.backward()
    grads = convert_vit_mim({k: p.grad for k, p in hf.named_parameters() if p.grad is not None})
    mine = dict(ours.named_parameters())
    assert set(grads) == set(mine)
    for k, grad in grads.items():
        torch.testing.assert_close(mine[k].grad, grad, rtol=1e-4, atol=1e-6, msg=k)


def test_loss_is_simmims_formula_written_out():
    torch.manual_seed(0)
    m = build_method("simmim", **TINY).eval()
    x = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    mask = m.masker(TokenGridLayout(3, (8, 8)), torch.Generator().manual_seed(3)).view(3, 64)
    assert mask.sum(1).tolist() == [40, 40, 40]  # 10 of 16 mask patches of 2 x 2 tokens
    out = m.reconstruct(x, mask)
    # SimMIM's forward: l1 on pixels, the patch mask spread to pixels, / (masked pixels) / channels
    rec = unpatchify(out.pred, 4, (32, 32))
    pix = mask.view(3, 8, 8).repeat_interleave(4, 1).repeat_interleave(4, 2).unsqueeze(1).float()
    want = ((rec - x).abs() * pix).sum() / pix.sum() / 3
    torch.testing.assert_close(out.loss, want)


def test_masked_pixels_do_not_reach_the_encoder():
    torch.manual_seed(0)
    m = build_method("simmim", **TINY).eval()
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    mask = m.masker(TokenGridLayout(2, (8, 8)), torch.Generator().manual_seed(3)).view(2, 64)
    y = x.clone()
    pix = mask.view(2, 8, 8).repeat_interleave(4, 1).repeat_interleave(4, 2)[:, None].expand_as(x)
    y[pix] = torch.rand(int(pix.sum()))
    torch.testing.assert_close(m.reconstruct(x, mask).pred, m.reconstruct(y, mask).pred)
    assert not torch.allclose(m.features(x), m.features(y))


def test_the_masker_must_mask_whole_mask_patches_of_the_vits_tokens():
    vit = {k: v for k, v in TINY.items() if k != "mask_patch_size"}
    with pytest.raises(UsageError, match="model_patch_size 2 must be the ViT's patch_size 4"):
        build_method("simmim", **vit, masker={"name": "simmim", "mask_patch_size": 8, "model_patch_size": 2})
    assert build_method("simmim", **vit, masker={"mask_patch_size": 16}).masker.model_patch_size == 4
    with pytest.raises(UsageError, match="both set"):
        build_method("simmim", **TINY, masker={"name": "simmim"})
    m = build_method("simmim", image_size=32, patch_size=4, dim=48, depth=1, heads=3, masker={"name": "beit_block"})
    assert torch.isfinite(m(torch.rand(2, 3, 32, 32), torch.Generator().manual_seed(0))["loss"])


@pytest.mark.parametrize("config", ["simmim_cpu", "simmim"])
def test_shipped_configs_build_and_take_a_step(config):
    spec = yaml.safe_load((CONFIGS / f"{config}.yaml").read_text())
    assert spec["data"]["kind"] == ("shapes" if config.endswith("_cpu") else "images")
    kw = {k: v for k, v in spec["method"].items() if k != "name"}
    if config == "simmim":
        assert (kw["image_size"], kw["patch_size"], kw["dim"], kw["depth"], kw["heads"]) == (224, 16, 768, 12, 12)
        assert kw["masker"] == {"name": "simmim", "ratio": 0.6, "mask_patch_size": 32, "model_patch_size": 16}
        kw.update(dim=48, depth=1, heads=3)  # the rest as shipped
    torch.manual_seed(0)
    m = build_method(spec["method"]["name"], **kw).train()
    size = m.encoder.image_grid[0] * m.encoder.patch[0]
    x = torch.rand(2, 3, size, size)
    assert torch.isfinite(m(GridBatch(x, 16), torch.Generator().manual_seed(0))["loss"])
    assert m.eval().features(x).shape == (2, m.encoder.dim)
