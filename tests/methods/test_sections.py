"""Config composition: every method builds its ``masker:`` and ``loss:`` sections through the registries.

* the sections written out as the method's defaults give the same losses as leaving them out, and another
  section gives other losses (so the section is really what the method uses);
* a section without a name (or with the default's name) updates the default; the older keywords are short forms,
  and giving one together with its section is an error;
* an unknown name or option is the registry's one-line UsageError prefixed with the section, which the engine
  reports as a config error;
* the shipped configs use the sections, never a section and its short form together;
* MSM's state dicts from before its teacher was an ``EMATeacher`` still load.
"""

from __future__ import annotations

import importlib.util
import io
from pathlib import Path

import pytest
import torch
import yaml
from torch import nn

from geomask.errors import UsageError
from geomask.losses import L1, L2, ChamferL2, CosineError, CrossEntropy, JSDivergence, ScaledCosineError, SmoothL1
from geomask.losses.frequency import FrequencyDistance
from geomask.masking import (
    BlockPatchMasker,
    RandomPatchMasker,
    RandomTokenMasker,
    RegionMasker,
    SimMIMMasker,
    UniformMasker,
    VoxelMasker,
)
from geomask.masking.image_disjoint import DisjointMasker
from geomask.masking.image_frequency import FrequencyMasker
from geomask.masking.scored import ScoredMasker
from geomask.masking.sequence_causal import CausalMasker
from geomask.masking.sequence_mlm import MLMMasker
from geomask.masking.sequence_ngram import NgramMasker
from geomask.masking.sequence_terminus import TerminusMasker
from geomask.methods import METHODS, build_method
from geomask.methods.compose import resolve_section
from geomask.methods.registry import _builder, register_method

_spec = importlib.util.spec_from_file_location("method_cases", Path(__file__).with_name("method_cases.py"))
cases = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(cases)

pytestmark = pytest.mark.usefixtures("one_thread")

CONFIGS = Path(__file__).resolve().parents[2] / "configs"

# per method: its default sections written out (for the tiny case), and another choice that changes the losses
DEFAULTS: dict[str, dict] = {
    "mgvga": {
        "masker": {"name": "uniform", "ratio": 0.3},
        "vga_masker": {"name": "uniform", "ratio": 0.5},
        "loss": {"name": "cross_entropy"},
    },
    "mgvga_single": {
        "masker": {"name": "uniform", "ratio": 0.3},
        "vga_masker": {"name": "uniform", "ratio": 0.5},
        "loss": {"name": "cross_entropy"},
    },
    "mgm": {"masker": {"name": "uniform", "ratio": 0.3}, "loss": {"name": "cross_entropy"}},
    "graphmae": {"masker": {"name": "uniform", "ratio": 0.5}, "loss": {"name": "sce", "gamma": 2.0}},
    "pointmae": {"masker": {"name": "random_patches", "ratio": 0.6}, "loss": {"name": "chamfer_l2"}},
    "pointbert": {"masker": {"name": "block", "low": 0.25, "high": 0.45}, "loss": {"name": "cross_entropy"}},
    "msm": {"masker": {"name": "voxel", "ratio": 0.4, "cell": 2}, "loss": {"name": "cosine", "eps": 1e-6}},
    "cpcm": {"masker": {"name": "region", "grid": 2, "ratio": 0.75}, "loss": {"name": "js"}},
    "mae": {"masker": {"name": "random_tokens", "ratio": 0.75}, "loss": {"name": "l2"}},
    "simmim": {
        "masker": {"name": "simmim", "ratio": 0.6, "mask_patch_size": 4, "model_patch_size": 2},
        "loss": {"name": "l1"},
    },
    "spark": {"masker": {"name": "random_tokens", "ratio": 0.6}, "loss": {"name": "l2"}},
    "mlm": {"masker": {"name": "mlm", "ratio": 0.15}, "loss": {"name": "cross_entropy"}},
    "drbert": {"masker": {"name": "mlm", "ratio": 0.15}, "loss": {"name": "cross_entropy"}},  # issue 13
    "ernie_gram": {"masker": {"name": "ngram", "ratio": 0.15}, "loss": {"name": "cross_entropy"}},
    "clm": {"masker": {"name": "causal"}, "loss": {"name": "cross_entropy"}},  # issue 13
    "biphasic": {"masker": {"name": "mlm", "ratio": 0.15}, "loss": {"name": "cross_entropy"}},
    "pepmlm": {"masker": {"name": "terminus"}, "loss": {"name": "cross_entropy"}},
    "diffpalm": {"masker": {"name": "mlm", "ratio": 0.5}, "loss": {"name": "cross_entropy"}},  # issue 13
    "mfm": {"masker": {"name": "frequency", "radius": 4.0, "mode": "random"}, "loss": {"name": "frequency"}},
    "hpm": {"masker": {"name": "scored", "ratio": 0.75, "fraction": 0.5}, "loss": {"name": "l2"}},
    "selective_mae": {
        "masker": {"name": "scored", "ratio": 0.85, "fraction": 1.0, "temperature": 1.0},
        "loss": {"name": "l2"},
    },
    "uni4eye": {"masker": {"name": "random_tokens", "ratio": 0.75}, "loss": {"name": "l2"}},
    "graphmae2": {"masker": {"name": "uniform", "ratio": 0.5}, "loss": {"name": "sce", "gamma": 2.0}},
    "dmjd": {"masker": {"name": "disjoint", "ratio": 0.6, "views": 2, "disjoint": "visible"}, "loss": {"name": "l2"}},
}
OTHER: dict[str, dict] = {
    "mgvga": {"masker": {"ratio": 0.5}},
    "mgvga_single": {"vga_masker": {"ratio": 0.8}},
    "mgm": {"masker": {"name": "random_patches", "ratio": 0.3}},
    "graphmae": {"loss": {"gamma": 3.0}},
    "pointmae": {"masker": {"name": "uniform", "ratio": 0.5}},
    "pointbert": {"masker": {"name": "random_patches", "ratio": 0.4}},
    "msm": {"loss": "smooth_l1"},
    "cpcm": {"masker": {"ratio": 0.25}},
    "mae": {"masker": {"ratio": 0.5}},
    "simmim": {"loss": "l2"},
    "spark": {"masker": {"ratio": 0.3}},
    "mlm": {"masker": {"name": "whole_word", "ratio": 0.2}},
    "drbert": {"masker": {"name": "span", "ratio": 0.2}},  # issue 13
    "ernie_gram": {"masker": {"ratio": 0.5}},
    "clm": {"masker": {"name": "mlm", "ratio": 0.5}},  # issue 13: half the targets
    "biphasic": {"masker": {"ratio": 0.5}},
    "pepmlm": {"masker": {"name": "mlm", "ratio": 0.5}},
    "diffpalm": {"masker": {"name": "terminus"}},  # issue 13: the whole B
    "mfm": {"loss": "l2"},
    "hpm": {"masker": {"name": "random_tokens", "ratio": 0.75}},
    "selective_mae": {"masker": {"name": "random_tokens", "ratio": 0.85}},
    "uni4eye": {"masker": {"ratio": 0.5}},
    "graphmae2": {"loss": {"gamma": 3.0}},
    "dmjd": {"masker": {"ratio": 0.5}},
}
BUILT = {  # the classes the default sections build: (masker attribute, masker class, loss attribute, loss class)
    "mgm": ("mgm_masker", UniformMasker, "criterion", CrossEntropy),
    "graphmae": ("masker", UniformMasker, "criterion", ScaledCosineError),
    "pointmae": ("masker", RandomPatchMasker, "criterion", ChamferL2),
    "pointbert": ("masker", BlockPatchMasker, "criterion", CrossEntropy),
    "msm": ("masker", VoxelMasker, "criterion", CosineError),
    "cpcm": ("masker", RegionMasker, "consistency", JSDivergence),
    "mae": ("masker", RandomTokenMasker, "criterion", L2),
    "simmim": ("masker", SimMIMMasker, "criterion", L1),
    "spark": ("masker", RandomTokenMasker, "criterion", L2),
    "mlm": ("masker", MLMMasker, "criterion", CrossEntropy),
    "drbert": ("masker", MLMMasker, "criterion", CrossEntropy),  # issue 13
    "ernie_gram": ("masker", NgramMasker, "criterion", CrossEntropy),
    "clm": ("masker", CausalMasker, "criterion", CrossEntropy),  # issue 13
    "biphasic": ("masker", MLMMasker, "criterion", CrossEntropy),
    "pepmlm": ("masker", TerminusMasker, "criterion", CrossEntropy),
    "diffpalm": ("masker", MLMMasker, "criterion", CrossEntropy),  # issue 13
    "mfm": ("masker", FrequencyMasker, "criterion", FrequencyDistance),
    "hpm": ("masker", ScoredMasker, "criterion", L2),
    "selective_mae": ("masker", ScoredMasker, "criterion", L2),
    "uni4eye": ("masker", RandomTokenMasker, "criterion", L2),
    "graphmae2": ("masker", UniformMasker, "criterion", ScaledCosineError),
    "dmjd": ("masker", DisjointMasker, "criterion", L2),
}


def build(name: str, seed: int = 0, **kwargs) -> nn.Module:
    """The tiny case of ``name`` with ``kwargs``; a section given drops the case's short forms of it (msm's
    ``mask_cell``, cpcm's ``grid``), which would set the same part twice."""
    aliases = getattr(_builder(name), "section_aliases", {})
    drop = {k for section in kwargs for k in aliases.get(section, ())}
    keep = {k: v for k, v in cases.CASES.get(name, {}).items() if k not in drop}
    torch.manual_seed(seed)
    return build_method(name, **{**keep, **kwargs})


def losses(m: nn.Module, batch) -> dict[str, float]:
    m.train()
    return {k: float(v.detach()) for k, v in m(batch, torch.Generator().manual_seed(4)).items()}


def test_every_registered_method_is_covered():
    assert set(DEFAULTS) == set(OTHER) == set(METHODS)


@pytest.mark.parametrize("name", sorted(DEFAULTS))
def test_default_sections_written_out_give_the_same_losses_and_others_change_them(name):
    batch = cases.case_batch(name)
    base = losses(cases.build_case(name), batch)
    assert losses(build(name, **DEFAULTS[name]), batch) == base
    other = losses(build(name, **OTHER[name]), batch)
    assert other["loss"] != base["loss"], f"{name}: the section {OTHER[name]} changed nothing"


@pytest.mark.parametrize("name", sorted(BUILT))
def test_default_sections_build_the_methods_former_parts(name):
    masker_attr, masker_cls, loss_attr, loss_cls = BUILT[name]
    m = cases.build_case(name)
    assert type(getattr(m, masker_attr)) is masker_cls and type(getattr(m, loss_attr)) is loss_cls


def test_a_section_without_a_name_updates_the_default():
    assert resolve_section("masker", None, {"name": "uniform", "ratio": 0.3}) == {"name": "uniform", "ratio": 0.3}
    assert resolve_section("masker", {"ratio": 0.5}, {"name": "uniform", "ratio": 0.3}) == {
        "name": "uniform",
        "ratio": 0.5,
    }
    assert resolve_section("loss", "smooth_l1", {"name": "cosine", "eps": 1e-6}) == {"name": "smooth_l1"}
    assert build_method("mgm", hidden=8, layers=1, masker={"ratio": 0.6}).mgm_masker.ratio == 0.6
    m = build_method("msm", backbone="Res16UNetTiny", loss={"name": "cosine"})
    assert type(m.criterion) is CosineError and m.criterion.eps == 1e-6  # MSM's cosine keeps its eps
    assert type(build_method("msm", backbone="Res16UNetTiny", loss="smooth_l1").criterion) is SmoothL1


def test_short_forms_are_aliases_and_never_given_with_their_section():
    assert build_method("mgm", hidden=8, layers=1, mgm_ratio=0.6).mgm_masker.ratio == 0.6
    assert build_method("graphmae", hidden=8, layers=1, gamma=3.0).criterion.gamma == 3.0
    with pytest.raises(UsageError, match=r"^method\.masker and method\.mgm_ratio both set the masker: give one"):
        build_method("mgm", mgm_ratio=0.3, masker={"name": "uniform", "ratio": 0.3})
    with pytest.raises(UsageError, match=r"^method\.vga_masker and method\.vga_ratio both set"):
        build_method("mgvga", vga_ratio=0.5, vga_masker={"ratio": 0.5})
    with pytest.raises(UsageError, match=r"^method\.masker and method\.mask_low and method\.mask_high both set"):
        build_method("pointbert", mask_low=0.2, mask_high=0.3, masker="block")
    with pytest.raises(UsageError, match=r"^method\.loss and method\.gamma both set the loss"):
        build_method("graphmae", gamma=2.0, loss={"name": "sce"})


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"masker": {"name": "blok"}},
            r"^method\.masker: unknown masker 'blok' \(valid: beit_block, block, .*uniform, voxel, whole_word\)$",
        ),
        ({"masker": {"name": "uniform", "rate": 0.3}}, r"^method\.masker: masker 'uniform': unknown option 'rate'"),
        ({"masker": {"ratio": 1.5}}, r"^method\.masker: uniform: mask ratio must be a number in \[0, 1\], got 1\.5$"),
        ({"masker": "block"}, r"^method\.masker: masker 'block' takes a PatchLayout, but .* masks .*RowLayout$"),
        ({"masker": 0.3}, r"^method\.masker: expected a mapping with a name \(e\.g\. \{name: uniform\}\), got 0\.3$"),
        ({"loss": {"name": "focal"}}, r"^method\.loss: unknown loss 'focal'; valid: .*cross_entropy"),
        ({"loss": {"name": "cross_entropy", "gamma": 2}}, r"^method\.loss: loss 'cross_entropy' has no keyword"),
    ],
)
def test_bad_sections_are_one_line_usage_errors_naming_the_section(kwargs, message):
    with pytest.raises(UsageError, match=message) as e:
        build_method("mgm", hidden=8, layers=1, **kwargs)
    assert "\n" not in str(e.value)


def test_the_engine_reports_a_bad_section_as_a_config_error():
    from geomask.train.config import ConfigError, load_config
    from geomask.train.engine import build_method_from_config

    raw = {"method": {"name": "mgm", "hidden": 8, "layers": 1}, "data": {"kind": "synthetic"}}
    cfg = load_config(raw, ["method.masker.name=blok"])
    with pytest.raises(ConfigError, match=r"method\.masker: unknown masker 'blok' \(valid: ") as e:
        build_method_from_config(cfg)
    assert "\n" not in str(e.value) and "mgm" in str(e.value)
    cfg = load_config(raw, ["method.masker.ratio=0.6"])  # a --set on a section the config does not write
    assert build_method_from_config(cfg).mgm_masker.ratio == 0.6


def test_pointmae_refuses_a_masker_with_a_ratio_per_cloud():
    m = build("pointmae", masker={"name": "block"})
    with pytest.raises(UsageError, match=r"^pointmae: the masker must hide the same number of patches in every cloud"):
        m(cases.case_batch("pointmae"), torch.Generator().manual_seed(0))
    fixed = build("pointmae", masker={"name": "block", "ratio": 0.5})  # one ratio: equal counts
    assert torch.isfinite(fixed(cases.case_batch("pointmae"), torch.Generator().manual_seed(0))["loss"])


def test_the_cpcm_baseline_has_no_masker_whatever_the_section():
    assert build("cpcm", mask=False, masker={"name": "region", "grid": 2}).masker is None


def test_register_method_refuses_a_second_builder_under_a_taken_name():
    with pytest.raises(ValueError, match="'mgm' is already registered"):
        register_method("mgm")(lambda **kw: None)
    assert register_method("mgm")(_builder("mgm")) is _builder("mgm")  # the same builder again is fine


def _method_sections(path: Path) -> dict:
    return yaml.safe_load(path.read_text(encoding="utf-8"))["method"]


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_configs_write_each_part_once(path):
    method = _method_sections(path)
    aliases = getattr(_builder(method["name"]), "section_aliases", {})
    for section, keys in aliases.items():
        both = [k for k in keys if k in method]
        assert not (section in method and both), f"{path.name}: method.{section} and {both}"
    assert "masker" in method and "loss" in method, f"{path.name} does not show its parts as sections"


def test_shipped_sections_equal_the_former_keys():
    """The migrated sections are exactly the parts the former keys built (mgm_ratio 0.3, vga_ratio 0.5, ...)."""
    mgm = _method_sections(CONFIGS / "mgm_cpu.yaml")
    assert mgm["masker"] == {"name": "uniform", "ratio": 0.3}
    for name in ("mgvga.yaml", "mgvga_cpu.yaml"):
        m = _method_sections(CONFIGS / name)
        assert m["masker"]["ratio"] == 0.3 and m["vga_masker"] == {"name": "uniform", "ratio": 0.5}
    assert _method_sections(CONFIGS / "graphmae_cpu.yaml")["masker"] == {"name": "uniform", "ratio": 0.5}
    for name in ("msm.yaml", "msm_cpu.yaml"):
        assert _method_sections(CONFIGS / name)["masker"] == {"name": "voxel", "ratio": 0.4, "cell": 8}
    for name in ("cpcm.yaml", "cpcm_cpu.yaml"):
        assert _method_sections(CONFIGS / name)["masker"] == {"name": "region", "grid": 4, "ratio": 0.75}
    for name in ("pointbert.yaml", "pointbert_cpu.yaml"):
        assert _method_sections(CONFIGS / name)["masker"] == {"name": "block", "low": 0.25, "high": 0.45}
    for name in ("pointmae.yaml", "pointmae_cpu.yaml"):
        assert _method_sections(CONFIGS / name)["masker"] == {"name": "random_patches", "ratio": 0.6}


class _Parent(nn.Module):
    """A method under a prefix, as Lightning's module holds it (``method.*``)."""

    def __init__(self, method: nn.Module) -> None:
        super().__init__()
        self.method = method


@pytest.mark.parametrize("wrapped", [False, True], ids=["bare", "prefixed"])
def test_msm_state_dicts_with_the_former_teacher_keys_still_load(wrapped):
    trained = cases.build_case("msm")
    with torch.no_grad():
        for p in trained.teacher.parameters():
            p.add_(0.5)  # the teacher apart from the student and from a fresh build
    state = trained.state_dict()
    assert any(k.startswith("teacher.module.") for k in state)
    old = {k.replace("teacher.module.", "teacher.", 1): v for k, v in state.items()}  # the former layout
    buf = io.BytesIO()
    torch.save(old, buf)
    buf.seek(0)
    old = torch.load(buf, weights_only=True)
    fresh = cases.build_case("msm", seed=1)
    target = _Parent(fresh) if wrapped else fresh
    target.load_state_dict({f"method.{k}": v for k, v in old.items()} if wrapped else old)  # strict
    for k, v in fresh.state_dict().items():
        assert torch.equal(v, state[k]), k
    fresh.load_state_dict(state)  # the current layout loads as well
