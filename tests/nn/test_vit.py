"""The ViT of geomask.nn.vit: attention against a hand-written softmax, visible-only encoding against full encoding
with the masked tokens kept out of attention, padding, the mask token, patch embedding against a convolution, any
rank, positions, and MAE's decoder on ragged visible sets against one sample at a time."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from geomask.errors import UsageError
from geomask.grids import patchify, sincos_pos_embed
from geomask.nn.vit import MAEDecoder, ViT, ViTBlock, visible_ids

pytestmark = pytest.mark.usefixtures("one_thread")


def vit(**kw) -> ViT:
    torch.manual_seed(0)
    args = {"patch_size": 4, "in_channels": 3, "dim": 24, "depth": 2, "heads": 3, "image_size": 16, **kw}
    return ViT(**args).double().eval()


def images(b: int = 3, size: tuple[int, ...] = (16, 16), c: int = 3, seed: int = 1) -> torch.Tensor:
    return torch.randn(b, c, *size, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def random_mask(b: int, n: int, k: int, seed: int = 2) -> torch.Tensor:
    """``k`` masked tokens in each of ``b`` rows of ``n``."""
    noise = torch.rand(b, n, generator=torch.Generator().manual_seed(seed))
    return torch.argsort(torch.argsort(noise, 1), 1) >= n - k


def test_block_equals_a_hand_written_pre_ln_block_with_softmax_attention_and_padding():
    torch.manual_seed(0)
    blk = ViTBlock(12, 3, mlp_ratio=2.0).double().eval()
    for p in blk.parameters():
        torch.nn.init.normal_(p, std=0.3)
    x = torch.randn(2, 5, 12, dtype=torch.float64)
    pad = torch.tensor([[False, False, True, False, True], [False] * 5])
    allowed = (~pad)[:, None, None, :]
    got = blk(x, allowed)

    h = F.layer_norm(x, (12,), blk.norm1.weight, blk.norm1.bias, 1e-6)
    q, k, v = (h @ blk.attn.qkv.weight.T + blk.attn.qkv.bias).split(12, -1)
    q, k, v = (t.reshape(2, 5, 3, 4).transpose(1, 2) for t in (q, k, v))
    scores = (q @ k.transpose(-1, -2)) / math.sqrt(4)
    scores = scores.masked_fill(~allowed, float("-inf"))
    a = (scores.softmax(-1) @ v).transpose(1, 2).reshape(2, 5, 12)
    x1 = x + a @ blk.attn.proj.weight.T + blk.attn.proj.bias
    h = F.layer_norm(x1, (12,), blk.norm2.weight, blk.norm2.bias, 1e-6)
    mlp = F.gelu(h @ blk.mlp.fc1.weight.T + blk.mlp.fc1.bias) @ blk.mlp.fc2.weight.T + blk.mlp.fc2.bias
    torch.testing.assert_close(got, x1 + mlp)


@pytest.mark.parametrize("cls_token", [True, False])
def test_visible_only_encoding_equals_full_encoding_with_masked_tokens_out_of_attention(cls_token):
    m = vit(cls_token=cls_token)
    x = images()
    mask = random_mask(3, 16, 12)
    ids, pad = visible_ids(mask)
    assert pad is None and ids.shape == (3, 4)
    c = int(cls_token)
    visible = m(x, ids_keep=ids)
    full = m(x, padding_mask=mask)  # every token, the masked ones no key of any attention
    assert visible.shape == (3, c + 4, 24)
    if cls_token:
        torch.testing.assert_close(visible[:, 0], full[:, 0])
    torch.testing.assert_close(visible[:, c:], full[:, c:][~mask].view(3, 4, 24))
    assert not torch.allclose(m(x)[:, c:][~mask], full[:, c:][~mask]), "attending to every token must differ"


def test_ragged_visible_sets_are_padded_and_equal_one_sample_at_a_time():
    m = vit()
    x = images()
    mask = torch.stack([random_mask(1, 16, k, seed=k)[0] for k in (12, 9, 14)])
    ids, pad = visible_ids(mask)
    assert ids.shape == (3, 7) and pad.sum(1).tolist() == [3, 0, 5]
    assert torch.equal(torch.gather(mask, 1, ids), pad), "fillers are masked tokens, real entries visible ones"
    out = m(x, ids_keep=ids, padding_mask=pad)
    for i in range(3):
        one = m(x[i : i + 1], ids_keep=ids[i : i + 1, : 7 - int(pad[i].sum())])
        torch.testing.assert_close(out[i, : one.size(1)], one[0])


def test_mask_token_hides_the_masked_patches_pixels():
    m = vit(mask_token=True)
    x = images(2)
    mask = random_mask(2, 16, 10)
    y = x.clone()
    pix = mask.view(2, 4, 4).repeat_interleave(4, 1).repeat_interleave(4, 2)[:, None].expand_as(x)
    y[pix] = torch.randn(int(pix.sum()), dtype=torch.float64)
    torch.testing.assert_close(m(x, mask=mask), m(y, mask=mask))
    assert not torch.allclose(m(x), m(y))
    emb = m.embed(x, mask=mask)[:, 1:]
    pos = sincos_pos_embed(24, (4, 4), dtype=torch.float64)
    torch.testing.assert_close(emb[mask], (m.mask_token[0, 0] + pos.expand(2, -1, -1)[mask]))
    with pytest.raises(UsageError, match="mask token"):
        vit()(x, mask=mask)


def test_linear_patch_embedding_equals_a_strided_convolution_in_2d_and_3d():
    m = vit()
    x = images(2)
    w = m.patch_embed.weight.view(24, 4, 4, 3).permute(0, 3, 1, 2)  # [E, C, p, p]
    conv = F.conv2d(x, w, m.patch_embed.bias, stride=4).flatten(2).transpose(1, 2)
    torch.testing.assert_close(m.patch_embed(patchify(x, 4)), conv)
    v = vit(spatial_dims=3, patch_size=(2, 4, 4), image_size=(4, 8, 8), dim=36)
    vol = images(2, (4, 8, 8))
    w3 = v.patch_embed.weight.view(36, 2, 4, 4, 3).permute(0, 4, 1, 2, 3)
    conv3 = F.conv3d(vol, w3, v.patch_embed.bias, stride=(2, 4, 4)).flatten(2).transpose(1, 2)
    torch.testing.assert_close(v.patch_embed(patchify(vol, (2, 4, 4))), conv3)


@pytest.mark.parametrize(
    "kw,size",
    [
        ({"spatial_dims": 1, "patch_size": 4, "image_size": 32}, (32,)),
        ({"spatial_dims": 3, "patch_size": 2, "image_size": 8, "dim": 36}, (8, 8, 8)),
        ({}, (8, 20)),  # non-square, another size than image_size: positions computed for its grid
    ],
)
def test_any_rank_and_non_square_grids(kw, size):
    m = vit(**kw)
    x = images(2, size)
    grid = tuple(s // p for s, p in zip(size, m.patch))
    out = m(x)
    assert out.shape == (2, 1 + math.prod(grid), m.dim) and torch.isfinite(out).all()
    torch.testing.assert_close(m.positions(grid, torch.float64, x.device), sincos_pos_embed(m.dim, grid, True).double())


def test_learned_positions_belong_to_one_grid_and_bad_inputs_say_why():
    m = vit(pos_embed="learned")
    assert m.pos_embed.shape == (1, 17, 24) and m(images(1)).shape == (1, 17, 24)
    with pytest.raises(UsageError, match="grid"):
        m(images(1, (8, 8)))
    with pytest.raises(UsageError, match="image_size"):
        ViT(4, 3, 24, 1, 3, pos_embed="learned")
    with pytest.raises(UsageError, match="takes"):
        vit()(images(1, c=1))
    with pytest.raises(UsageError, match="divisible"):
        ViT(4, 3, 25, 1, 5)


def test_drop_path_only_in_training_and_from_the_global_rng():
    m = vit(drop_path=0.5)
    x = images(8)
    torch.testing.assert_close(m(x), vit()(x))  # eval: identity
    m.train()
    torch.manual_seed(3)
    a = m(x)
    torch.manual_seed(3)
    torch.testing.assert_close(m(x), a)
    assert not torch.allclose(a, m.eval()(x))


def test_mae_decoder_with_ragged_visible_sets_equals_one_sample_at_a_time():
    torch.manual_seed(0)
    enc = vit()
    dec = MAEDecoder(24, 48, 16, 1, 2, grid=(4, 4)).double().eval()
    torch.nn.init.normal_(dec.mask_token)
    x = images()
    mask = torch.stack([random_mask(1, 16, k, seed=k)[0] for k in (12, 9, 14)])
    ids, pad = visible_ids(mask)
    pred = dec(enc(x, ids_keep=ids, padding_mask=pad), ids, (4, 4), pad)
    assert pred.shape == (3, 16, 48)
    for i in range(3):
        k = 7 - int(pad[i].sum())
        one = dec(enc(x[i : i + 1], ids_keep=ids[i : i + 1, :k]), ids[i : i + 1, :k], (4, 4))
        torch.testing.assert_close(pred[i], one[0])
