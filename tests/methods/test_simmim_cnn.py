"""SimMIM with a CNN encoder (``encoder: cnn``): SimMIM's loss written out on a tiny ResNet, the mask token the only
trace of the masked pixels, a short seeded run against predicting each masked patch by its own mean, the keyword
checks, the picture path of ``geomask eval images`` and the shipped configs."""

from __future__ import annotations

import io
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import yaml

from geomask.errors import UsageError
from geomask.grids import GridBatch, patchify
from geomask.masking import TokenGridLayout
from geomask.methods import build_method
from geomask.methods.simmim import SimMIMCNN

pytestmark = pytest.mark.usefixtures("one_thread")

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
# a 3-stage tiny ResNet with a 3x3/2 stem (token stride 2, last stride 8) on 16 x 16 images, 4-pixel mask patches
TINY = {
    "encoder": "cnn",
    "backbone": "tiny",
    "widths": (8, 16, 16),
    "layers": (1, 1, 1),
    "stem_width": 8,
    "stem_stride": 2,
    "mask_patch_size": 4,
}


def build(seed: int = 0, **kw) -> SimMIMCNN:
    torch.manual_seed(seed)
    base = {k: v for k, v in TINY.items() if not ("masker" in kw and k == "mask_patch_size")}
    return build_method("simmim", **{**base, **kw})


def draw(m: SimMIMCNN, x: torch.Tensor, seed: int) -> torch.Tensor:
    return m.masker(TokenGridLayout(x.size(0), m.grid(x)), torch.Generator().manual_seed(seed)).view(x.size(0), -1)


def test_the_loss_is_simmims_l1_over_the_masked_pixels_of_the_hand_written_network():
    m = build().eval()
    with torch.no_grad():
        m.mask_token.normal_()
    x = torch.rand(3, 3, 16, 16)
    mask = draw(m, x, 1)
    assert m.token_stride == 2 and m.grid(x) == (8, 8) and int(mask.sum()) == 3 * 10 * 4  # 10 of 16 mask patches
    enc = m.encoder
    # hand-written: zero the masked pixels, the stem (conv 3x3/2, BN, ReLU), the mask token at the masked sites,
    # the stages, then SimMIM's head (1x1 conv to r^2 C, pixel shuffle r)
    pix = mask.view(3, 8, 8).repeat_interleave(2, 1).repeat_interleave(2, 2)[:, None]
    h = F.conv2d(x * (~pix).float(), enc.conv1.weight, stride=2, padding=1)
    h = F.relu(F.batch_norm(h, enc.bn1.running_mean, enc.bn1.running_var, enc.bn1.weight, enc.bn1.bias, False))
    w = mask.view(3, 1, 8, 8).float()
    h = h * (1 - w) + m.mask_token.view(1, -1, 1, 1) * w
    for stage in enc.stages():
        for blk in stage:
            h = blk(h)
    pred = F.pixel_shuffle(F.conv2d(h, m.head[0].weight, m.head[0].bias), 8)
    pm = pix.expand_as(x).float()
    expected = ((pred - x).abs() * pm).sum() / pm.sum()  # |M| pixels x C channels
    with torch.no_grad():
        out = m.reconstruct(x, mask)
    torch.testing.assert_close(m.predict(x, mask), pred, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out.loss, expected, rtol=1e-5, atol=1e-6)
    assert out.pred.shape == (3, 64, 2 * 2 * 3)


@pytest.mark.parametrize("train", [False, True], ids=["eval", "train"])
def test_masked_pixels_reach_the_encoder_only_as_the_mask_token(train):
    m = build().train(train)
    x = torch.rand(2, 3, 16, 16)
    mask = draw(m, x, 2)
    pix = mask.view(2, 8, 8).repeat_interleave(2, 1).repeat_interleave(2, 2)[:, None].expand_as(x)
    y = torch.where(pix, torch.rand_like(x) * 5 - 2, x)  # other masked pixels, the same visible ones
    with torch.no_grad():
        a, b = m.predict(x, mask), m.predict(y, mask)
        torch.testing.assert_close(a, b, rtol=0, atol=0)
        m.mask_token.add_(1.0)  # ... and the token does reach it
        assert not torch.allclose(m.predict(x, mask), a)


def gratings(n: int, seed: int, size: int = 16) -> torch.Tensor:
    """Coloured sine gratings of random orientation, frequency and phase (a masked patch follows from the rest)."""
    g = torch.Generator().manual_seed(seed)
    theta = torch.rand(n, 1, 1, 1, generator=g) * 2 * math.pi
    freq = 0.15 + 0.25 * torch.rand(n, 1, 1, 1, generator=g)
    phase = torch.rand(n, 1, 1, 1, generator=g) * 2 * math.pi
    colour = torch.rand(n, 3, 1, 1, generator=g)
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    return (0.5 + 0.5 * torch.sin(freq * (xx * torch.cos(theta) + yy * torch.sin(theta)) + phase)) * colour


def test_a_short_run_beats_predicting_each_masked_patch_by_its_own_mean():
    m = build(widths=(16, 32), layers=(1, 1), stem_width=16)  # two stages: stride 4, 16 x 32 pixels a cell
    opt = torch.optim.AdamW(m.parameters(), lr=3e-3, weight_decay=0.05, betas=(0.9, 0.999))
    for step in range(120):
        loss = m(gratings(32, step), torch.Generator().manual_seed(10_000 + step))["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    m.eval()
    test = gratings(128, 999)
    mask = draw(m, test, 5)
    with torch.no_grad():
        out = m.reconstruct(test, mask)
        # the baseline: every masked 4 x 4 mask patch predicted by its own mean (it sees the hidden pixels)
        own = patchify(test, 4).mean(-1, keepdim=True).expand(-1, -1, 4 * 4 * 3)
        own = patchify(torch.nn.functional.fold(own.transpose(1, 2), 16, 4, stride=4), 2)  # back to the tokens
        baseline = float(m.criterion(own, out.target, mask))
    assert float(out.loss) < 0.8 * baseline, (float(out.loss), baseline)


def test_the_contract_parts_gradients_state_dict_and_features():
    m = build().train()
    x = torch.rand(2, 3, 16, 16)
    out = m(GridBatch(x, 2), torch.Generator().manual_seed(0))
    assert set(out) == {"loss", "reconstruction"} and torch.isfinite(out["loss"])
    out["loss"].backward()
    assert [n for n, p in m.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0] == []
    buf = io.BytesIO()
    torch.save(m.state_dict(), buf)
    other = build(seed=1)
    other.load_state_dict(torch.load(io.BytesIO(buf.getvalue()), weights_only=True))
    m.eval(), other.eval()
    g = torch.Generator
    with torch.no_grad():
        assert float(m(x, g().manual_seed(3))["loss"]) == float(other(x, g().manual_seed(3))["loss"])
    assert m.features(x).shape == (2, 16) and not m.encoder.sparse


def test_keyword_checks_are_one_line_usage_errors():
    with pytest.raises(UsageError, match=r"^method\.dim is a ViT keyword; encoder: cnn takes backbone"):
        build_method("simmim", encoder="cnn", backbone="tiny", dim=64)
    with pytest.raises(UsageError, match=r"^method\.backbone is a CNN keyword: give it with encoder: cnn$"):
        build_method("simmim", backbone="tiny", image_size=16, patch_size=2, dim=24, depth=1, heads=2)
    with pytest.raises(UsageError, match=r"^method\.encoder must be 'vit' or 'cnn', got 'swin'$"):
        build_method("simmim", encoder="swin")
    with pytest.raises(UsageError, match=r"model_patch_size 4 must be the CNN stem's stride 2$"):
        build(masker={"name": "simmim", "mask_patch_size": 8, "model_patch_size": 4})
    with pytest.raises(UsageError, match=r"image sides must be multiples of the CNN's stride 8"):
        build()(torch.rand(1, 3, 12, 12), torch.Generator().manual_seed(0))


def test_eval_images_draws_its_pictures():
    from geomask.eval.images import reconstruct

    m = build().eval()
    x = torch.rand(2, 3, 16, 16)
    masked, shown = reconstruct(m, x, torch.Generator().manual_seed(0))
    mask = draw(m, x, 0)
    pix = mask.view(2, 8, 8).repeat_interleave(2, 1).repeat_interleave(2, 2)[:, None].expand_as(x)
    with torch.no_grad():
        pred = m.predict(x, mask)
    torch.testing.assert_close(shown, torch.where(pix, pred, x))
    assert torch.equal(masked, x.masked_fill(pix, 0.0))


def test_the_shipped_configs_build_and_run():
    cpu = yaml.safe_load((CONFIGS / "simmim_cnn_cpu.yaml").read_text())["method"]
    m = build_method("simmim", **{k: v for k, v in cpu.items() if k != "name"})
    assert isinstance(m, SimMIMCNN) and m.token_stride == 1 and m.encoder.downsample_ratio == 8
    out = m(torch.rand(2, 3, 32, 32), torch.Generator().manual_seed(0))
    assert torch.isfinite(out["loss"])
    paper = yaml.safe_load((CONFIGS / "simmim_resnet.yaml").read_text())["method"]
    kw = {k: v for k, v in paper.items() if k != "name"}
    assert kw["backbone"] == "resnet50" and kw["masker"]["model_patch_size"] == 4
    kw.update(widths=[2, 4, 4, 8], stem_width=4)  # ResNet-50's layout, narrow, at 64 px
    m = build_method("simmim", **kw)
    assert m.token_stride == 4 and m.encoder.downsample_ratio == 32
    out = m(torch.rand(2, 3, 64, 64), torch.Generator().manual_seed(0))
    assert torch.isfinite(out["loss"])


def test_the_dense_encoder_loads_into_the_sparse_network_which_gives_the_same_features():
    from geomask.grids import to_sparse
    from geomask.nn.sparse_cnn import SparseCNN

    m = build().eval()
    with torch.no_grad():
        for mod in m.encoder.modules():  # BatchNorm statistics away from (0, 1), so they must travel too
            if isinstance(mod, torch.nn.BatchNorm2d):
                mod.running_mean.uniform_(-0.5, 0.5), mod.running_var.uniform_(0.5, 2.0)
    sparse = SparseCNN(**m.encoder.config, sparse=True).eval()
    sparse.load_dense_state_dict(m.encoder.state_dict())
    x = torch.rand(2, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(sparse.pooled(to_sparse(x)), m.features(x), rtol=1e-4, atol=1e-5)
