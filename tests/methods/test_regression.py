"""Regression fixture: every method's loss terms at fixed seeds equal those of the code before the method base.

The numbers in :data:`PRE_REFACTOR` were produced by the pre-refactor code at commit ``5f86dd7`` (``git archive
5f86dd7 geomask``, where MSM updated its EMA teacher and CPCM / Point-BERT counted steps inside ``forward``),
running exactly :func:`run_case` below on the tiny cases of ``method_cases.py`` (without the ``on_train_step_end``
call, which that code did not have) on one CPU thread, rounded to 7 significant digits.  The code after the
refactor reproduced them bit for bit; the tolerance only allows for other CPUs' float rounding.

Per method: ``step1``, a training-mode forward (generator seeded 1) with every dropout off (the dropout stream
moved from the global RNG to the generator's, so it is not part of the fixture; MSM at momentum 0.5 so that one
EMA update shows in the next step); then SGD (lr 0.05), the step hook, and ``step2`` (seed 2), which sees the
EMA teacher / step counter / schedules after one step; ``eval``, a fresh build with the case's defaults in eval
mode (seed 3).  Skipping the step hook changes Point-BERT's, MSM's and CPCM's ``step2`` loss by 5e-4 to 5e-3
(relative), 9 to 90 times the tolerance.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

_spec = importlib.util.spec_from_file_location("method_cases", Path(__file__).with_name("method_cases.py"))
cases = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(cases)

PRE_REFACTOR: dict[str, dict[str, dict[str, float]]] = {
    "mgvga": {
        "step1": {
            "mgm_type": 1.604732,
            "mgm_acc": 0.1203704,
            "mgm_degree": 0.1841761,
            "vga_type": 1.614649,
            "vga_acc": 0.07777778,
            "loss": 3.403558,
        },
        "step2": {
            "mgm_type": 1.572749,
            "mgm_acc": 0.4259259,
            "mgm_degree": 0.1834316,
            "vga_type": 1.568122,
            "vga_acc": 0.4333333,
            "loss": 3.324303,
        },
        "eval": {
            "mgm_type": 1.605186,
            "mgm_acc": 0.08333334,
            "mgm_degree": 0.1841754,
            "vga_type": 1.612638,
            "vga_acc": 0.06666667,
            "loss": 3.401999,
        },
    },
    "mgvga_single": {
        "step1": {
            "mgm_type": 1.604732,
            "mgm_acc": 0.1203704,
            "mgm_degree": 0.1841761,
            "vga_type": 1.614517,
            "vga_acc": 0.08888889,
            "loss": 3.403426,
        },
        "step2": {
            "mgm_type": 1.572749,
            "mgm_acc": 0.4259259,
            "mgm_degree": 0.1834316,
            "vga_type": 1.567885,
            "vga_acc": 0.4333333,
            "loss": 3.324065,
        },
        "eval": {
            "mgm_type": 1.605186,
            "mgm_acc": 0.08333334,
            "mgm_degree": 0.1841754,
            "vga_type": 1.612549,
            "vga_acc": 0.05555556,
            "loss": 3.40191,
        },
    },
    "mgm": {
        "step1": {"mgm_type": 1.624622, "mgm_acc": 0.0, "mgm_degree": 0.1842207, "loss": 1.808843},
        "step2": {"mgm_type": 1.588823, "mgm_acc": 0.4259259, "mgm_degree": 0.183483, "loss": 1.772306},
        "eval": {"mgm_type": 1.623791, "mgm_acc": 0.0, "mgm_degree": 0.1842203, "loss": 1.808012},
    },
    "graphmae": {
        "step1": {"sce": 2.335987, "acc": 0.08888889, "loss": 2.335987},
        "step2": {"sce": 0.9260712, "acc": 0.06111111, "loss": 0.9260712},
        "eval": {"sce": 2.391105, "acc": 0.07222223, "loss": 2.391105},
    },
    "pointmae": {
        "step1": {"loss": 0.6256777, "chamfer": 0.6256777},
        "step2": {"loss": 0.4880628, "chamfer": 0.4880628},
        "eval": {"loss": 0.575451, "chamfer": 0.575451},
    },
    "pointbert": {
        "step1": {
            "dvae_recon_coarse": 0.1698798,
            "dvae_recon_fine": 0.3322331,
            "dvae_kl": 0.1111663,
            "dvae": 0.5021129,
            "mpm": 3.39762,
            "mpm_acc": 0.0,
            "loss": 3.899733,
        },
        "step2": {
            "dvae_recon_coarse": 0.1660983,
            "dvae_recon_fine": 0.2616853,
            "dvae_kl": 0.1095651,
            "dvae": 0.4288793,
            "mpm": 0.825249,
            "mpm_acc": 1.0,
            "loss": 1.254128,
        },
        "eval": {
            "dvae_recon_coarse": 0.1645706,
            "dvae_recon_fine": 0.3244503,
            "dvae_kl": 0.1004545,
            "dvae": 0.4890209,
            "mpm": 3.291284,
            "mpm_acc": 0.0,
            "loss": 3.780304,
        },
    },
    "msm": {
        "step1": {
            "level0": 1.041939,
            "level1": 1.0138,
            "level2": 1.007431,
            "level3": 0.9609712,
            "loss": 1.006035,
            "masked_ratio": 0.4118786,
        },
        "step2": {
            "level0": 0.9392307,
            "level1": 1.013596,
            "level2": 1.016177,
            "level3": 0.9679877,
            "loss": 0.9842478,
            "masked_ratio": 0.3917791,
        },
        "eval": {
            "level0": 1.036476,
            "level1": 0.8787386,
            "level2": 0.9262765,
            "level3": 1.09623,
            "loss": 0.9844303,
            "masked_ratio": 0.4054054,
        },
    },
    "cpcm": {
        "step1": {
            "ce": 1.172176,
            "js_within": 0.01456769,
            "js_across": 0.02166734,
            "weight": 0.006737947,
            "loss": 1.17242,
        },
        "step2": {
            "ce": 0.8066086,
            "js_within": 0.006625131,
            "js_across": 0.01000113,
            "weight": 0.0407622,
            "loss": 0.8072863,
        },
        "eval": {
            "ce": 0.7689424,
            "js_within": 3.639088e-06,
            "js_across": 4.480801e-06,
            "weight": 0.006737947,
            "loss": 0.7689424,
        },
    },
}


def run_case(name: str) -> dict[str, dict[str, float]]:
    batch = cases.case_batch(name)
    m = cases.build_case(name, **cases.REGRESSION[name]).train()
    opt = torch.optim.SGD([p for p in m.parameters() if p.requires_grad], lr=0.05)
    out1 = m(batch, torch.Generator().manual_seed(1))
    out1["loss"].backward()
    opt.step()
    opt.zero_grad()
    m.on_train_step_end(0)
    out2 = m(batch, torch.Generator().manual_seed(2))
    e = cases.build_case(name).eval()
    with torch.no_grad():
        out3 = e(batch, torch.Generator().manual_seed(3))
    return {
        p: {k: float(v.detach()) for k, v in o.items()} for p, o in (("step1", out1), ("step2", out2), ("eval", out3))
    }


def test_fixture_covers_every_registered_method():
    from geomask.methods import METHODS

    assert set(PRE_REFACTOR) <= set(METHODS) == set(cases.CASES)  # methods added since have no earlier numbers


@pytest.mark.usefixtures("one_thread")
@pytest.mark.parametrize("name", sorted(PRE_REFACTOR))
def test_same_seed_gives_the_pre_refactor_losses(name):
    got = run_case(name)
    want = PRE_REFACTOR[name]
    for phase, terms in want.items():
        assert set(got[phase]) == set(terms), (phase, sorted(got[phase]))
        for term, value in terms.items():
            assert got[phase][term] == pytest.approx(value, rel=5e-5, abs=1e-6), (name, phase, term)
