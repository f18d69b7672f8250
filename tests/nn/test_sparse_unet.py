from __future__ import annotations

import pytest
import torch

from geomask.nn.sparse_unet import UNET_CONFIGS, SparseResUNet, build_sparse_unet
from geomask.sparse import SparseTensor, sparse_collate


def _cloud(gen: torch.Generator, dim: int = 3) -> SparseTensor:
    coords, feats = [], []
    for n in (300, 200):
        c = torch.randint(0, 24, (n, dim), generator=gen).unique(dim=0)
        coords.append(c)
        feats.append(torch.randn(len(c), 4, generator=gen))
    return sparse_collate(coords, feats)


def test_forward_backward_every_parameter_gets_a_gradient():
    gen = torch.Generator().manual_seed(0)
    x = _cloud(gen)
    net = build_sparse_unet("Res16UNetTiny", 4, 5, stem_kernel=3)
    res = net(x)
    assert res.out.feats.shape == (len(x), 5) and torch.equal(res.out.coords, x.coords)
    assert [lvl.stride for lvl in res.levels] == [(8,) * 3, (4,) * 3, (2,) * 3, (1,) * 3]
    assert [e.stride for e in res.encoder] == [(s,) * 3 for s in (1, 2, 4, 8, 16)]
    for lvl, enc in zip(res.levels, res.encoder[3::-1]):
        assert torch.equal(lvl.coords, enc.coords)  # decoder level j sits on the encoder sites of its stride
        assert bool((lvl.coords[:, 1:] % lvl.stride[0] == 0).all())
    assert [lvl.num_channels for lvl in res.levels] == list(UNET_CONFIGS["Res16UNetTiny"][1][4:])
    loss = res.out.feats.square().mean() + sum(lvl.feats.mean() for lvl in res.levels)
    loss.backward()
    for name, p in net.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert bool(p.grad.abs().sum() > 0), name


def test_mask_hook_sees_each_decoder_level():
    gen = torch.Generator().manual_seed(1)
    x = _cloud(gen)
    net = SparseResUNet(4, None, planes=(4, 4, 8, 8, 8, 4, 4, 4), blocks=(1,) * 8, stem_kernel=3)
    seen = []

    def hook(level, up, skip):
        seen.append((level, up.stride))
        return up, skip.replace(torch.zeros_like(skip.feats))

    out = net(x, mask_hook=hook)
    assert seen == [(j, (s,) * 3) for j, s in enumerate((8, 4, 2, 1))]
    assert out.out.num_channels == 4


def test_two_dimensional_and_bad_config():
    gen = torch.Generator().manual_seed(2)
    net = build_sparse_unet("Res16UNetTiny", 4, 2, dim=2, stem_kernel=3)
    assert net(_cloud(gen, dim=2)).out.feats.shape[1] == 2
    with pytest.raises(ValueError, match="unknown sparse U-Net"):
        build_sparse_unet("nope", 3)
    with pytest.raises(ValueError, match="8 entries"):
        SparseResUNet(3, 2, planes=(4, 4), blocks=(1, 1))


def test_res16unet34c_layout():
    net = build_sparse_unet("Res16UNet34C", 3, 20)
    assert [len(s) for s in net.enc_blocks] + [len(s) for s in net.dec_blocks] == [2, 3, 4, 6, 2, 2, 2, 2]
    assert net.dec_blocks[-1][-1].conv2.out_channels == 96 and net.stem[0].kernel_size == (5, 5, 5)
    assert net.dec_blocks[0][0].conv1.in_channels == 256 + 128  # up-sampled + stride-8 skip
