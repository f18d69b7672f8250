"""EMA teacher (copy, freeze, momentum schedules, update formula) and the frozen teacher's weights_only loading."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from geomask.errors import FormatError, UsageError
from geomask.targets import EMATeacher, FrozenTeacher, ema_momentum, load_state_dict


def student(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.ReLU(), nn.Linear(4, 2))


def test_constant_and_cosine_schedules_follow_their_formulas():
    assert ema_momentum(0, 0.99) == 0.99 and ema_momentum(10**6, 0.99) == 0.99
    m0, K = 0.996, 100
    for k in (0, 1, 25, 50, 99, 100, 150):
        kk = min(k, K)
        byol = 1 - (1 - m0) * (math.cos(math.pi * kk / K) + 1) / 2
        assert ema_momentum(k, m0, "cosine", K) == pytest.approx(byol, abs=1e-15)
    assert ema_momentum(0, m0, "cosine", K) == pytest.approx(m0)
    assert ema_momentum(50, m0, "cosine", K) == pytest.approx((1 + m0) / 2)
    assert ema_momentum(K, m0, "cosine", K) == 1.0
    # an end value other than 1 (iBOT-style cosine_scheduler(m0, final))
    assert ema_momentum(50, 0.9, "cosine", K, final=0.99) == pytest.approx(0.99 - 0.09 / 2)
    assert ema_momentum(3, 0.9, "cosine", 0) == 1.0
    with pytest.raises(UsageError, match="schedule"):
        ema_momentum(0, 0.9, "linear")


def test_ema_teacher_is_a_frozen_deep_copy_computing_without_grad():
    s = student()
    t = EMATeacher(s, momentum=0.9)
    for pt, ps in zip(t.module.parameters(), s.parameters()):
        assert torch.equal(pt, ps) and pt.data_ptr() != ps.data_ptr() and not pt.requires_grad
    x = torch.randn(5, 3)
    s.eval(), t.eval()
    y = t(x)
    assert not y.requires_grad and torch.equal(y, s(x))


def test_ema_update_follows_the_formula_and_copies_buffers():
    s = student()
    t = EMATeacher(s, momentum=0.8, schedule="cosine", total_steps=10)
    before = [p.clone() for p in t.module.parameters()]
    with torch.no_grad():
        for p in s.parameters():
            p.add_(1.0)
        s[1].running_mean.fill_(3.0)
    m = t.update(s, step=5)
    expected_m = 1 - 0.2 * (math.cos(math.pi / 2) + 1) / 2
    assert m == pytest.approx(expected_m)
    for pt, pb, ps in zip(t.module.parameters(), before, s.parameters()):
        assert torch.allclose(pt, expected_m * pb + (1 - expected_m) * ps, atol=1e-6)
    assert torch.equal(t.module[1].running_mean, torch.full((4,), 3.0))


def test_ema_update_with_momentum_one_keeps_and_zero_copies():
    s = student()
    t = EMATeacher(s, momentum=1.0)
    before = [p.clone() for p in t.module.parameters()]
    with torch.no_grad():
        for p in s.parameters():
            p.mul_(2.0).add_(1.0)
    t.update(s, 0)
    assert all(torch.equal(a, b) for a, b in zip(t.module.parameters(), before))
    t.momentum = 0.0
    t.update(s, 1)
    assert all(torch.equal(a, b) for a, b in zip(t.module.parameters(), s.parameters()))


def test_forward_has_no_side_effect_on_teacher_parameters():
    s = student()
    t = EMATeacher(s, momentum=0.5)
    before = [p.clone() for p in t.module.parameters()]
    with torch.no_grad():
        for p in s.parameters():
            p.add_(1.0)
    t.eval()(torch.randn(4, 3))
    assert all(torch.equal(a, b) for a, b in zip(t.module.parameters(), before))


def test_ema_teacher_argument_errors():
    with pytest.raises(UsageError, match="nn.Module"):
        EMATeacher(lambda x: x)
    with pytest.raises(UsageError, match=r"\[0, 1\]"):
        EMATeacher(student(), momentum=1.5)
    with pytest.raises(UsageError, match="schedule"):
        EMATeacher(student(), schedule="step")
    with pytest.raises(ValueError):
        EMATeacher(student()).update(nn.Linear(3, 4), 0)  # another architecture


def test_frozen_teacher_loads_a_weights_only_file_written_here(tmp_path):
    trained = student(1)
    path = tmp_path / "teacher.pt"
    torch.save({k: v.clone() for k, v in trained.state_dict().items()}, path)
    t = FrozenTeacher(student(2), path)
    for (k, v), (k2, v2) in zip(t.module.state_dict().items(), trained.state_dict().items()):
        assert k == k2 and torch.equal(v, v2)
    assert all(not p.requires_grad for p in t.parameters())
    t.train()
    assert t.training and not t.module.training and not t.module[1].training
    x = torch.randn(6, 3)
    y = t(x)
    assert not y.requires_grad and torch.equal(y, trained.eval()(x))


def test_frozen_teacher_from_lightning_checkpoint_with_prefix_and_from_a_mapping(tmp_path):
    trained = student(3)
    ckpt = {"state_dict": {f"method.encoder.{k}": v for k, v in trained.state_dict().items()}, "epoch": 1}
    ckpt["state_dict"]["method.head.weight"] = torch.zeros(1)
    path = tmp_path / "last.ckpt"
    torch.save(ckpt, path)
    t = FrozenTeacher(student(4), path, prefix="method.encoder.")
    assert torch.equal(t.module[0].weight, trained[0].weight)
    t2 = FrozenTeacher(student(5), trained.state_dict())
    assert torch.equal(t2.module[3].bias, trained[3].bias)


def test_frozen_teacher_refuses_pickled_objects_missing_files_and_wrong_keys(tmp_path):
    bad = tmp_path / "pickled.pt"
    torch.save({"model": student()}, bad)  # a module object: not loadable with weights_only=True
    with pytest.raises(FormatError, match="weights-only"):
        FrozenTeacher(student(), bad)
    with pytest.raises(FormatError, match="no such checkpoint"):
        FrozenTeacher(student(), tmp_path / "absent.pt")
    with pytest.raises(FormatError, match="Missing key"):
        FrozenTeacher(student(), {"0.weight": torch.zeros(4, 3)})
    with pytest.raises(FormatError, match="prefix"):
        load_state_dict({"a.x": torch.zeros(1)}, prefix="b.")
    with pytest.raises(UsageError, match="nn.Module"):
        FrozenTeacher("not a module", {"a": torch.zeros(1)})
