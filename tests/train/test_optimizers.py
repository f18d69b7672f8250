from __future__ import annotations

import pytest
import torch

from geomask.train.optimizers import Lamb, build_optimizer


def test_lamb_step_by_hand():
    """Two LAMB steps equal the paper's update written out: bias-corrected Adam moments, decoupled weight decay
    inside the update, the step scaled by ||w|| / ||u|| per tensor."""
    torch.manual_seed(0)
    w0 = torch.randn(4, 3)
    p = torch.nn.Parameter(w0.clone())
    opt = Lamb([p], lr=0.1, betas=(0.9, 0.99), eps=1e-6, weight_decay=0.01)
    w, m, v = w0.clone(), torch.zeros(4, 3), torch.zeros(4, 3)
    for t in (1, 2):
        g = torch.randn(4, 3)
        p.grad = g.clone()
        opt.step()
        m = 0.9 * m + 0.1 * g
        v = 0.99 * v + 0.01 * g * g
        u = (m / (1 - 0.9**t)) / ((v / (1 - 0.99**t)).sqrt() + 1e-6) + 0.01 * w
        w = w - 0.1 * (w.norm() / u.norm()) * u
        torch.testing.assert_close(p.detach(), w)


def test_lamb_moves_each_tensor_by_lr_times_its_norm():
    """The property SparK relies on: the first step of every tensor has norm lr * ||w|| whatever its gradient's
    scale (AdamW's first step is lr per element, the same for a large and a small tensor)."""
    a = torch.nn.Parameter(torch.full((10,), 100.0))
    b = torch.nn.Parameter(torch.full((10,), 0.01))
    opt = Lamb([a, b], lr=0.05)
    a.grad, b.grad = torch.randn(10) * 1e3, torch.randn(10) * 1e-3
    a0, b0 = a.detach().clone(), b.detach().clone()
    opt.step()
    assert float((a.detach() - a0).norm()) == pytest.approx(0.05 * float(a0.norm()), rel=1e-4)
    assert float((b.detach() - b0).norm()) == pytest.approx(0.05 * float(b0.norm()), rel=1e-4)


def test_build_optimizer_names():
    p = [torch.nn.Parameter(torch.zeros(2))]
    assert isinstance(build_optimizer("lamb", p, 1e-3), Lamb)
    assert isinstance(build_optimizer("adamw", p, 1e-3), torch.optim.AdamW)
    assert isinstance(build_optimizer("sgd", p, 1e-3, (0.9, 0.999)), torch.optim.SGD)
    with pytest.raises(ValueError, match="unknown optimiser"):
        build_optimizer("adagrad", p, 1e-3)


@pytest.mark.parametrize("name", ["adam", "adamw"])
def test_adam_is_fused_on_cpu_and_matches_torch_default(name):
    """``build_optimizer`` picks torch's fused Adam/AdamW on CPU; ten steps agree with torch's default (for-loop)
    implementation to float rounding, parameter groups and a generator of parameters included."""
    torch.manual_seed(0)
    w = [torch.randn(5, 7), torch.randn(7)]
    ours = [torch.nn.Parameter(t.clone()) for t in w]
    ref = [torch.nn.Parameter(t.clone()) for t in w]
    opt = build_optimizer(name, iter([{"params": ours[0]}, {"params": [ours[1]], "lr": 2e-3}]), 1e-2, (0.9, 0.99), 0.1)
    cls = torch.optim.AdamW if name == "adamw" else torch.optim.Adam
    opt_ref = cls([{"params": ref[0]}, {"params": [ref[1]], "lr": 2e-3}], lr=1e-2, betas=(0.9, 0.99), weight_decay=0.1)
    assert opt.defaults["fused"] is True and not opt_ref.defaults["fused"]
    for _ in range(10):
        grads = [torch.randn_like(t) for t in w]
        for params, o in ((ours, opt), (ref, opt_ref)):
            for p, g in zip(params, grads):
                p.grad = g.clone()
            o.step()
    for a, b in zip(ours, ref):
        torch.testing.assert_close(a.detach(), b.detach(), rtol=1e-6, atol=1e-6)
        assert not torch.equal(a.detach(), w[0] if a.shape == w[0].shape else w[1])  # it moved


def test_adam_fused_only_where_torch_supports_it():
    from geomask.train.optimizers import _fusable

    p = torch.nn.Parameter(torch.zeros(3, dtype=torch.float64))
    assert build_optimizer("adam", [p], 1e-3).defaults["fused"] is True
    assert _fusable([{"params": [p]}]) and _fusable([{"params": p}])
    assert not _fusable([torch.zeros(3, dtype=torch.int64)]) and not _fusable([])
    assert not _fusable([p, torch.zeros(3, device="meta")])  # two device types
