"""The contract of every registered method (:class:`~geomask.methods.base.Method`), on tiny sizes.

Parametrised over :data:`geomask.methods.METHODS`, so a newly registered method is checked as soon as it is
registered (with its builder's defaults and a batch of the first data kind it declares; an entry in
``method_cases.CASES`` makes it tiny):

* the interface: a :class:`Method` with ``data_kinds`` (what the registry reports), an ``encoder`` module
  among its own parameters, ``loss_terms`` and ``features``;
* finite scalar losses, and a gradient on every trainable parameter but those ``unused_parameters()`` names
  (which must really get none);
* masks (every :class:`~geomask.masking.base.Masker` call a forward makes) and losses: the same seed gives
  the same, another seed other masks;
* ``forward`` twice gives the same result and changes nothing: the global RNG state, the thread count, the
  state dict (in training mode up to BatchNorm running statistics, which PyTorch updates in every
  training-mode forward), the modules' modes;
* ``features(batch)`` runs in eval mode, finite, the same twice;
* a state dict saved with ``torch.save`` and loaded with ``weights_only=True`` into a differently initialised
  build gives the same losses;
* ``on_train_step_end`` moves MSM's EMA teacher (and ``forward`` does not).
"""

from __future__ import annotations

import importlib.util
import io
from pathlib import Path

import pytest
import torch
from torch import nn

from geomask.masking.base import Masker
from geomask.masking.layout import Layout
from geomask.methods import METHODS
from geomask.methods.base import Method
from geomask.methods.registry import method_data_kinds

_spec = importlib.util.spec_from_file_location("method_cases", Path(__file__).with_name("method_cases.py"))
cases = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(cases)

NAMES = sorted(METHODS)
FIXED_MASKS = {"clm", "pepmlm"}  # issue 13: causal (every maskable token) and terminus (the whole peptide) masks

pytestmark = pytest.mark.usefixtures("one_thread")


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def flat(out: dict[str, torch.Tensor]) -> dict[str, float]:
    return {k: float(v.detach()) for k, v in out.items()}


def bn_stat_names(m: nn.Module) -> set[str]:
    """State-dict names of BatchNorm running statistics (updated by every training-mode forward in PyTorch)."""
    names = set()
    for prefix, mod in m.named_modules():
        if isinstance(mod, nn.modules.batchnorm._BatchNorm):
            names |= {f"{prefix}.{b}" if prefix else b for b, _ in mod.named_buffers(recurse=False)}
    return names


@pytest.fixture
def masks(monkeypatch) -> list[torch.Tensor]:
    """Every mask a masker draws while the test runs (``Masker.__call__`` on a layout), in order."""
    seen: list[torch.Tensor] = []
    call = Masker.__call__

    def recording(self, layout, generator=None, *args, **kwargs):
        out = call(self, layout, generator, *args, **kwargs)
        if isinstance(layout, Layout):  # a bare tensor goes through sample() back here with a layout
            seen.append(out.detach().clone())
        return out

    monkeypatch.setattr(Masker, "__call__", recording)
    return seen


@pytest.mark.parametrize("name", NAMES)
def test_interface(name):
    m = cases.build_case(name)
    assert isinstance(m, Method), f"{name}: {type(m).__name__} is not a geomask.methods.base.Method"
    kinds = method_data_kinds(name)
    assert kinds and kinds == type(m).data_kinds and all(isinstance(k, str) for k in kinds)
    assert isinstance(m.encoder, nn.Module)
    own = {id(p) for p in m.parameters()}
    enc = [p for p in m.encoder.parameters()]
    assert enc and all(id(p) in own for p in enc), "the encoder's weights are part of the method's"
    assert type(m).loss_terms is not Method.loss_terms and type(m).features is not Method.features


@pytest.mark.parametrize("name", NAMES)
def test_losses_finite_and_gradients_reach_every_trainable_parameter(name):
    m = cases.build_case(name).train()
    out = m(cases.case_batch(name), gen(0))
    assert "loss" in out
    for k, v in out.items():
        assert isinstance(v, torch.Tensor) and v.dim() == 0 and torch.isfinite(v), k
    out["loss"].backward()
    trainable = {n: p for n, p in m.named_parameters() if p.requires_grad}
    assert trainable
    unused = m.unused_parameters()
    assert unused <= set(trainable), f"unused_parameters() names unknown parameters: {sorted(unused - set(trainable))}"
    for n, p in trainable.items():
        if n in unused:
            assert p.grad is None or not p.grad.any(), f"{n} is declared unused but gets a gradient"
            continue
        assert p.grad is not None, f"no gradient reaches {n}"
        assert torch.isfinite(p.grad).all(), n
        assert p.grad.abs().sum() > 0, f"a zero gradient reaches {n}"


@pytest.mark.parametrize("name", NAMES)
def test_same_seed_same_masks_and_losses_another_seed_other_masks(name, masks):
    m = cases.build_case(name).train()  # the case's defaults: dropout active where the method has it
    batch = cases.case_batch(name)
    runs = []
    for seed in (7, 7, 8):
        masks.clear()
        out = flat(m(batch, gen(seed)))
        runs.append((out, list(masks)))
    (a, ma), (b, mb), (_, mc) = runs
    assert ma, f"{name} drew no mask from a geomask.masking.Masker"
    assert a == b
    assert len(ma) == len(mb) and all(torch.equal(x, y) for x, y in zip(ma, mb))
    if name in FIXED_MASKS:  # issue 13: the targets are fixed by the layout, never drawn
        return
    assert len(ma) != len(mc) or any(not torch.equal(x, y) for x, y in zip(ma, mc)), "another seed, the same masks"


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("name", NAMES)
def test_forward_twice_same_result_and_no_side_effects(name, training):
    m = cases.build_case(name).train(training)
    batch = cases.case_batch(name)
    torch.set_num_threads(2)  # restored by the one_thread fixture; a forward that sets its own count shows
    skip = bn_stat_names(m) if training else set()
    state = {k: v.clone() for k, v in m.state_dict().items() if k not in skip}
    modes = [mod.training for mod in m.modules()]
    torch.manual_seed(1234)
    rng = torch.random.get_rng_state()
    with torch.set_grad_enabled(training):
        first, second = flat(m(batch, gen(3))), flat(m(batch, gen(3)))
    assert first == second
    assert torch.equal(torch.random.get_rng_state(), rng), "forward moved the global RNG"
    assert torch.get_num_threads() == 2
    after = m.state_dict()
    changed = [k for k, v in state.items() if not torch.equal(v, after[k])]
    assert not changed, f"forward changed {changed[:5]}"
    assert [mod.training for mod in m.modules()] == modes


@pytest.mark.parametrize("name", NAMES)
def test_features_in_eval_mode(name):
    m = cases.build_case(name).eval()
    batch = cases.case_batch(name)
    rng = torch.random.get_rng_state()
    with torch.no_grad():
        f1, f2 = m.features(batch), m.features(batch)
    f1, f2 = ([f1], [f2]) if isinstance(f1, torch.Tensor) else (list(f1), list(f2))
    assert f1 and all(isinstance(t, torch.Tensor) and t.numel() > 0 and torch.isfinite(t).all() for t in f1)
    assert all(torch.equal(a, b) for a, b in zip(f1, f2))
    assert torch.equal(torch.random.get_rng_state(), rng)


def one_step(m: Method, batch) -> None:
    """A training step as the engine takes it: forward, backward, SGD, then the step hook."""
    opt = torch.optim.SGD([p for p in m.parameters() if p.requires_grad], lr=0.05)
    m(batch, gen(0))["loss"].backward()
    opt.step()
    with torch.no_grad():
        m.on_train_step_end(0)


@pytest.mark.parametrize("name", NAMES)
def test_checkpoint_round_trip_weights_only(name):
    batch = cases.case_batch(name)
    m = cases.build_case(name).train()
    one_step(m, batch)  # teachers, counters and schedules away from their initial values
    buf = io.BytesIO()
    torch.save(m.state_dict(), buf)
    buf.seek(0)
    fresh = cases.build_case(name, seed=1).train()
    before = flat(fresh(batch, gen(5)))
    fresh.load_state_dict(torch.load(buf, weights_only=True))
    want, got = flat(m(batch, gen(5))), flat(fresh(batch, gen(5)))
    assert got == want
    assert before["loss"] != want["loss"], "the fresh build already gave the same loss: the check proves nothing"


def test_step_hook_moves_the_msm_teacher_and_forward_does_not():
    m = cases.build_case("msm").train()
    batch = cases.case_batch("msm")
    opt = torch.optim.SGD(m.parameters(), lr=0.05)
    m(batch, gen(0))["loss"].backward()
    opt.step()
    teacher = [p.clone() for p in m.teacher.parameters()]
    m(batch, gen(1))
    assert all(torch.equal(a, b) for a, b in zip(teacher, m.teacher.parameters()))
    m.on_train_step_end(0)
    assert any(not torch.equal(a, b) for a, b in zip(teacher, m.teacher.parameters()))
    mom = m.momentum
    for t0, t, s in zip(teacher, m.teacher.parameters(), m.encoder.parameters()):
        torch.testing.assert_close(t, mom * t0 + (1 - mom) * s)
