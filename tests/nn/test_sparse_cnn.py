"""The sparse ResNet: on every site it is the dense ResNet with the same weights (values, gradients, BatchNorm
statistics), on the visible sites it is SparK's masked dense emulation, and its weights move both ways."""

from __future__ import annotations

import pytest
import torch

from geomask.errors import UsageError
from geomask.grids import patch_mask_to_sites, to_sparse
from geomask.nn.sparse_cnn import SparseCNN, build_sparse_cnn, dense_conv_weight, sparse_conv_weight
from geomask.sparse import SparseTensor

pytestmark = pytest.mark.usefixtures("one_thread")

SMALL = {
    "resnet18": {"widths": (4, 8, 8, 16), "stem_width": 8},
    "resnet50": {"widths": (2, 4, 4, 8), "stem_width": 4, "layers": (1, 2, 1, 1)},
    "tiny": {"widths": (4, 8, 8), "layers": (1, 2, 1), "stem_width": 4},
}


def dense(st: SparseTensor, like: torch.Tensor) -> torch.Tensor:
    return st.to_dense(shape=like.shape[2:], origin=(0, 0))


def net_and_twin(name: str, seed: int = 0) -> tuple[SparseCNN, SparseCNN]:
    torch.manual_seed(seed)
    net = build_sparse_cnn(name, 3, **SMALL[name]).double()
    with torch.no_grad():  # BatchNorm affine parameters away from 1 / 0, so a wrong copy shows
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm1d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)
    return net, net.to_dense()


@pytest.mark.parametrize("name", ["resnet18", "resnet50", "tiny"])
def test_every_site_equals_the_dense_twin_values_gradients_and_statistics(name):
    net, twin = net_and_twin(name)
    assert twin.conv1.__class__ is torch.nn.Conv2d and not twin.sparse
    size = (64, 96) if name != "tiny" else (24, 16)  # non-square on purpose
    x = torch.randn(2, 3, *size, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    xs, xd = x.clone().requires_grad_(), x.clone().requires_grad_()
    outs, douts = net(to_sparse(xs)), twin(xd)
    assert [o.stride[0] for o in outs] == list(net.strides)
    assert [d.size(1) for d in douts] == list(net.out_channels)
    w = [torch.randn_like(d) for d in douts]  # a random linear read-out of every stage
    for o, d in zip(outs, douts):
        torch.testing.assert_close(dense(o, d), d, rtol=1e-10, atol=1e-10)
    sum((dense(o, d) * wi).sum() for o, d, wi in zip(outs, douts, w)).backward()
    sum((d * wi).sum() for d, wi in zip(douts, w)).backward()
    torch.testing.assert_close(xs.grad, xd.grad, rtol=1e-9, atol=1e-9)
    conv = dict(net.named_modules())
    for key, p in twin.named_parameters():
        g = dict(net.named_parameters())[key].grad
        if p.dim() == 4:
            g = dense_conv_weight(g, conv[key.rsplit(".", 1)[0]].kernel_size[0])
        torch.testing.assert_close(g, p.grad, rtol=1e-8, atol=1e-9, msg=key)
    for key, b in twin.named_buffers():  # running statistics updated alike
        torch.testing.assert_close(dict(net.named_buffers())[key], b, rtol=1e-10, atol=1e-12, msg=key)


def test_eval_mode_and_the_exported_twin_agree():
    net, _ = net_and_twin("resnet18")
    x = torch.randn(3, 3, 64, 64, dtype=torch.float64)
    net(to_sparse(x))  # one training step's statistics
    net.eval()
    twin = net.to_dense()
    assert not twin.training
    torch.testing.assert_close(net.pooled(to_sparse(x)), twin.pooled(x))


def test_visible_sites_equal_sparks_masked_dense_emulation():
    net, twin = net_and_twin("resnet18", seed=3)
    x = torch.randn(2, 3, 128, 96, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    active = torch.rand(2, 4, 3, generator=torch.Generator().manual_seed(4)) > 0.6  # the 32-pixel cells kept
    assert 0 < int(active.sum()) < active.numel()
    outs = net(to_sparse(x, patch_mask_to_sites(~active, 32, (4, 3))))
    douts = twin(x, active)
    for o, d in zip(outs, douts):
        # the sparse tensor holds exactly the visible cells' sites ...
        assert len(o) == int(active.sum()) * (32 // o.stride[0]) ** 2
        # ... with the emulation's values there, and the emulation is zero elsewhere
        torch.testing.assert_close(dense(o, d), d, rtol=1e-10, atol=1e-10)
    for key, b in twin.named_buffers():  # BatchNorm over the active sites only, in both
        torch.testing.assert_close(dict(net.named_buffers())[key], b, rtol=1e-10, atol=1e-12, msg=key)


def test_masked_sites_do_not_change_the_visible_features():
    net, _ = net_and_twin("tiny")
    net.eval()
    x = torch.randn(1, 3, 16, 16, dtype=torch.float64)
    mask = torch.zeros(1, 2, 2, dtype=torch.bool)
    mask[0, 1, 1] = True
    pix = patch_mask_to_sites(mask, 8, (2, 2))
    a = net(to_sparse(x, pix))[-1]
    y = x.clone()
    y[:, :, 8:, 8:] = 1e3  # changing what is masked changes nothing
    b = net(to_sparse(y, pix))[-1]
    torch.testing.assert_close(a.feats, b.feats)
    assert len(a) == 3 * (8 // 4) ** 2  # three visible 8-pixel cells, 2 x 2 sites each at stride 4


def test_weights_round_trip_between_sparse_and_dense():
    net, twin = net_and_twin("resnet18")
    back = build_sparse_cnn("resnet18", 3, **SMALL["resnet18"]).double()
    back.load_dense_state_dict(twin.state_dict())
    for k, v in net.state_dict().items():
        assert torch.equal(back.state_dict()[k], v), k
    w = torch.randn(5, 4, 3, 3)
    assert torch.equal(dense_conv_weight(sparse_conv_weight(w), 3), w)


def test_torchvision_resnet18_weights_load_by_name():
    tv = pytest.importorskip("torchvision")
    ref = tv.models.resnet18()
    full = build_sparse_cnn("resnet18")
    sd = {k: v for k, v in ref.state_dict().items() if not k.startswith("fc.")}
    full.load_dense_state_dict(sd)  # strict: every name matches torchvision's
    ref.eval(), full.eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        want = ref.avgpool(ref.layer4(ref.layer3(ref.layer2(ref.layer1(ref.maxpool(ref.relu(ref.bn1(ref.conv1(x)))))))))
        torch.testing.assert_close(full.pooled(to_sparse(x)), want.flatten(1), rtol=1e-4, atol=1e-5)


def test_bad_inputs_are_one_line_errors():
    net = build_sparse_cnn("tiny", 3, **SMALL["tiny"])
    with pytest.raises(UsageError, match="2-D SparseTensor with 3 channels"):
        net(to_sparse(torch.randn(1, 4, 8, 8)))
    with pytest.raises(UsageError, match="dense twin"):
        net(to_sparse(torch.randn(1, 3, 8, 8)), torch.ones(1, 2, 2, dtype=torch.bool))
    with pytest.raises(UsageError, match="multiples of the network's stride 4"):
        net.to_dense()(torch.randn(1, 3, 10, 8))
    with pytest.raises(UsageError, match="unknown CNN 'resnet7'"):
        build_sparse_cnn("resnet7")
    with pytest.raises(UsageError, match="block must be one of"):
        SparseCNN(block="dense")
