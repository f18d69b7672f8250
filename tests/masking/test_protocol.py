"""The masker protocol ``masker(layout, generator) -> [N]`` bool (True = masked) for every registered masker:
exact per-sample budgets on ragged batches (a one-row sample, an empty sample), seeding, the rounding rule,
layouts, the registry, collate use (pickling, CPU), and no Python loop over samples."""

from __future__ import annotations

import pickle
import sys

import pytest
import torch

from geomask.errors import UsageError
from geomask.masking import (
    GridLayout,
    Masker,
    PatchLayout,
    RowLayout,
    TokenGridLayout,
    as_layout,
    available_maskers,
    build_masker,
    mask_counts,
    rank_within_samples,
    register_masker,
)
from geomask.masking import registry as masker_registry
from geomask.masking.region import region_ids
from geomask.masking.voxel import cell_ids

pytestmark = pytest.mark.usefixtures("one_thread")

NAMES = ["block", "random_patches", "region", "uniform", "voxel"]  # the ragged-row maskers tested here
IMAGE_NAMES = ["beit_block", "disjoint", "frequency", "random_tokens", "scored", "simmim"]  # test_image_maskers
SEQUENCE_NAMES = ["mlm", "span", "whole_word"]  # tests/sequences/test_sequence_maskers.py
SEQUENCE_NAMES += ["ngram"]  # tests/masking/test_sequence_ngram.py
SEQUENCE_NAMES += ["causal", "terminus"]  # tests/masking/test_sequence_causal_terminus.py
SIZES = [5, 1, 0, 17, 40, 2]  # ragged: a one-row sample and an empty one


def gen(seed):
    return torch.Generator().manual_seed(seed)


def batch_vector(sizes, shuffle_seed=None):
    b = torch.repeat_interleave(torch.arange(len(sizes)), torch.tensor(sizes))
    if shuffle_seed is not None:  # rows of a sample need not be contiguous
        b = b[torch.randperm(len(b), generator=gen(shuffle_seed))]
    return b


def grid_coords(sizes, seed=0, extent=12):
    """Distinct sites per scene, exactly ``sizes[b]`` of them (0 allowed)."""
    g = gen(seed)
    rows = []
    for b, n in enumerate(sizes):
        flat = torch.randperm(extent**3, generator=g)[:n]
        xyz = torch.stack([flat // extent**2, (flat // extent) % extent, flat % extent], 1)
        rows.append(torch.cat([torch.full((n, 1), b), xyz], 1))
    return torch.cat(rows)


def layout_for(name, sizes=SIZES, seed=0):
    """A ragged layout of the kind the masker takes, with these rows per sample."""
    if name in ("region", "voxel"):
        return GridLayout(grid_coords(sizes, seed), len(sizes))
    b = batch_vector(sizes, shuffle_seed=seed)
    if name == "block":
        return PatchLayout(torch.rand(len(b), 3, generator=gen(seed + 1)), b, len(sizes))
    return RowLayout(b, len(sizes))


def per_sample(mask, layout):
    return torch.zeros(layout.num_samples, dtype=torch.long).index_add_(0, layout.batch, mask.long()).tolist()


def half_up(r, n):
    return int(r * n + 0.5)


# ---- exact budgets ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["uniform", "random_patches", "voxel"])
@pytest.mark.parametrize("ratio", [0.0, 0.25, 0.5, 0.6, 1.0])
def test_exact_counts_per_sample_over_rows(name, ratio):
    layout = layout_for(name)
    m = build_masker({"name": name, "ratio": ratio})(layout, gen(0))
    assert m.dtype == torch.bool and m.shape == (layout.num_rows,)
    assert per_sample(m, layout) == [half_up(ratio, n) for n in SIZES]


@pytest.mark.parametrize("ratio", [0.0, 0.3, 0.5, 1.0])
def test_block_exact_counts_ragged_and_dense(ratio):
    layout = layout_for("block")
    m = build_masker({"name": "block", "ratio": ratio})(layout, gen(1))
    assert per_sample(m, layout) == [half_up(ratio, n) for n in SIZES]
    dense = PatchLayout(torch.rand(4, 9, 3, generator=gen(2)))
    md = build_masker({"name": "block", "ratio": ratio})(dense, gen(1))
    assert md.view(4, 9).sum(1).tolist() == [half_up(ratio, 9)] * 4


def test_block_is_a_ball_around_a_seed_on_ragged_interleaved_rows():
    layout = layout_for("block", [30, 1, 0, 25], seed=4)
    m = build_masker({"name": "block", "low": 0.3, "high": 0.5})(layout, gen(5))
    c, b = layout.centers, layout.batch
    for s in (0, 3):
        rows = (b == s).nonzero().squeeze(1)
        ms, d = m[rows], torch.cdist(c[rows], c[rows])
        inside = d[:, ms].amax(1)  # radius of the masked set around each candidate seed
        outside = torch.where(~ms, d, torch.inf).amin(1)
        assert ((inside <= outside) & ms).any()
        assert 0.3 * len(rows) - 1 <= int(ms.sum()) <= 0.5 * len(rows) + 1


@pytest.mark.parametrize("ratio", [0.25, 0.75])
def test_region_exact_over_boxes_including_an_empty_scene(ratio):
    layout = layout_for("region", [300, 1, 0, 80])
    masker = build_masker({"name": "region", "grid": 2, "ratio": ratio})
    ids, box_mask = masker.mask_boxes(layout, gen(0))
    assert box_mask.view(4, 8).sum(1).tolist() == [half_up(ratio, 8)] * 4
    m = masker(layout, gen(0))
    assert torch.equal(m, box_mask[ids])
    assert torch.equal(ids, region_ids(layout.coords, 2, 4))


def test_voxel_cells_on_a_sparse_grid_with_stride():
    coords = grid_coords([200, 1, 0, 150], seed=3, extent=16)
    strided = coords.clone()
    strided[:, 1:] *= 2  # the same sites at tensor stride 2
    masker = build_masker({"name": "voxel", "ratio": 0.5, "cell": 4})
    a = masker(GridLayout(coords, 4), gen(0))
    b = masker(GridLayout(strided, 4, stride=2), gen(0))
    assert torch.equal(a, b)
    ids, cell_batch = cell_ids(coords, 4)
    masked_cells = torch.zeros(len(cell_batch), dtype=torch.long).index_add_(0, ids, a.long())
    assert bool(((masked_cells == 0) | (masked_cells == torch.bincount(ids))).all())  # whole cells
    hit = torch.zeros(4, dtype=torch.long).index_add_(0, cell_batch, (masked_cells > 0).long())
    assert hit.tolist() == [half_up(0.5, int((cell_batch == s).sum())) for s in range(4)]


def test_token_grid_simmim_style_blocks():
    layout = TokenGridLayout(3, (8, 8))
    m = build_masker({"name": "voxel", "ratio": 0.5, "cell": 2})(layout, gen(0)).view(3, 4, 2, 4, 2)
    assert bool((m.all(dim=(2, 4)) | ~m.any(dim=(2, 4))).all())  # whole 2x2 blocks
    assert m.all(dim=(2, 4)).sum(dim=(1, 2)).tolist() == [8, 8, 8]  # half of the 16 blocks of every image
    r = build_masker({"name": "region", "grid": 2, "ratio": 0.5})(layout, gen(0)).view(3, 2, 4, 2, 4)
    assert r.all(dim=(2, 4)).sum(dim=(1, 2)).tolist() == [2, 2, 2]  # quadrants of a full grid


# ---- seeding and the True = masked convention -----------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_same_seed_same_mask_other_seed_other_mask(name):
    layout = layout_for(name, [60, 1, 0, 90, 45])
    masker = build_masker({"name": name, "ratio": 0.5} if name != "block" else "block")
    a, b, c = masker(layout, gen(7)), masker(layout, gen(7)), masker(layout, gen(8))
    assert torch.equal(a, b) and not torch.equal(a, c)
    g = gen(7)
    first, second = masker(layout, g), masker(layout, g)  # the generator advances
    assert torch.equal(first, a) and not torch.equal(first, second)


@pytest.mark.parametrize("name", NAMES)
def test_true_means_masked(name):
    layout = layout_for(name)
    everything = build_masker({"name": name, "ratio": 1.0})(layout, gen(0))
    nothing = build_masker({"name": name, "ratio": 0.0})(layout, gen(0))
    assert everything.dtype == torch.bool and bool(everything.all()) and not bool(nothing.any())


def test_mask_lives_on_the_layouts_device_and_draws_on_the_generators():
    layout = layout_for("uniform")
    m = build_masker({"name": "uniform", "ratio": 0.5})(layout, None)  # fresh OS-seeded generator
    assert m.device == layout.device and per_sample(m, layout) == [half_up(0.5, n) for n in SIZES]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("name", NAMES)
def test_inside_a_model_on_cuda(name):
    cpu = layout_for(name)
    if isinstance(cpu, GridLayout):
        cuda = GridLayout(cpu.coords.cuda(), cpu.num_samples)
    elif isinstance(cpu, PatchLayout):
        cuda = PatchLayout(cpu.centers.cuda(), cpu.batch.cuda(), cpu.num_samples)
    else:
        cuda = RowLayout(cpu.batch.cuda(), cpu.num_samples)
    masker = build_masker({"name": name, "ratio": 0.5})
    on_gpu = masker(cuda, gen(0))  # a CPU generator: the same mask on any device
    assert on_gpu.is_cuda and torch.equal(on_gpu.cpu(), masker(cpu, gen(0)))
    g = torch.Generator(device="cuda").manual_seed(0)  # a generator on the model's device
    m = masker(cuda, g)
    assert m.is_cuda and per_sample(m.cpu(), cpu) == per_sample(masker(cpu, gen(1)), cpu)


@pytest.mark.parametrize("name", NAMES)
def test_picklable_for_collate_workers(name):
    masker = build_masker({"name": name, "ratio": 0.5})
    again = pickle.loads(pickle.dumps(masker))
    layout = layout_for(name)
    assert repr(again) == repr(masker) and torch.equal(again(layout, gen(3)), masker(layout, gen(3)))


# ---- the rounding rule and the shared helpers -----------------------------------------------------------------


def test_rounding_rule_half_up_clamped():
    n = torch.tensor([5, 3, 1, 0, 64, 7])
    assert mask_counts(n, 0.5).tolist() == [3, 2, 1, 0, 32, 4]
    assert mask_counts(n, 0.75).tolist() == [4, 2, 1, 0, 48, 5]
    assert mask_counts(n, 1.0).tolist() == n.tolist() and mask_counts(n, 0.0).tolist() == [0] * 6
    per = torch.tensor([0.5, 0.1, 0.5, 0.9, 0.3, 1.0], dtype=torch.float32)
    assert mask_counts(n, per).tolist() == [3, 0, 1, 0, 19, 7]


def test_rank_within_samples():
    b = torch.tensor([1, 0, 1, 1, 0, 2])
    key = torch.tensor([0.3, 0.9, 0.1, 0.3, 0.2, 0.5])
    assert rank_within_samples(b, key, 4).tolist() == [1, 1, 0, 2, 0, 0]  # tie (rows 0, 3): lower row first


def test_layouts_validate_and_describe_rows():
    with pytest.raises(UsageError, match="integer"):
        RowLayout(torch.rand(4))
    with pytest.raises(UsageError, match=r"\[N, 1 \+ D\]"):
        GridLayout(torch.zeros(4, 1, dtype=torch.long))
    with pytest.raises(UsageError, match="batch vector"):
        PatchLayout(torch.rand(5, 3))
    with pytest.raises(UsageError, match="rows"):
        PatchLayout(torch.rand(5, 3), torch.zeros(4, dtype=torch.long))
    assert RowLayout(torch.zeros(0, dtype=torch.long)).num_samples == 0
    assert RowLayout(torch.tensor([2, 0]), 5).counts().tolist() == [1, 0, 1, 0, 0]
    t = TokenGridLayout(2, (2, 3))
    assert t.num_rows == 12 and t.dense_shape == (2, 6) and t.batch.tolist() == [0] * 6 + [1] * 6
    assert t.to_grid().coords[:7].tolist() == [
        [0, 0, 0],
        [0, 0, 1],
        [0, 0, 2],
        [0, 1, 0],
        [0, 1, 1],
        [0, 1, 2],
        [1, 0, 0],
    ]
    assert PatchLayout(torch.rand(2, 3, 3)).batch.tolist() == [0, 0, 0, 1, 1, 1]
    assert isinstance(as_layout(torch.tensor([0, 1])), RowLayout)
    assert isinstance(as_layout(torch.zeros(3, 4, dtype=torch.long)), GridLayout)
    assert isinstance(as_layout(torch.rand(2, 3, 3)), PatchLayout)


def test_wrong_layout_is_a_usage_error_naming_the_masker():
    with pytest.raises(UsageError, match="'block' takes a PatchLayout, got RowLayout"):
        build_masker("block")(RowLayout(torch.tensor([0, 0])), gen(0))
    with pytest.raises(UsageError, match="'voxel'"):
        build_masker("voxel")(RowLayout(torch.tensor([0, 0])), gen(0))


# ---- the registry ---------------------------------------------------------------------------------------------


def test_available_maskers_one_line_each():
    got = available_maskers()
    assert sorted(got) == sorted(NAMES + IMAGE_NAMES + SEQUENCE_NAMES)
    assert all(desc and "\n" not in desc for desc in got.values())


@pytest.mark.parametrize("name", NAMES)
def test_build_by_name_and_config_round_trip(name):
    masker = build_masker(name if name != "uniform" else {"name": "uniform", "ratio": 0.3})
    assert isinstance(masker, Masker) and masker.name == name
    again = build_masker(masker.config())
    assert repr(again) == repr(masker) and build_masker(masker) is masker


def test_registry_errors_name_the_valid_choices():
    with pytest.raises(
        UsageError, match=r"unknown masker 'blok' \(valid: beit_block, block, causal, disjoint, frequency, mlm, "
    ):
        build_masker({"name": "blok", "ratio": 0.6})
    with pytest.raises(UsageError, match=r"masker 'block': unknown option 'ration' \(valid: low, high, ratio\)"):
        build_masker({"name": "block", "ration": 0.6})
    with pytest.raises(UsageError, match="masker 'uniform': missing option 'ratio'"):
        build_masker("uniform")
    with pytest.raises(UsageError, match="needs a 'name'"):
        build_masker({"ratio": 0.6})
    with pytest.raises(UsageError, match="ratio must be a number in"):
        build_masker({"name": "uniform", "ratio": 1.5})
    with pytest.raises(UsageError, match="ratio must be a number in"):
        build_masker({"name": "uniform", "ratio": "half"})
    with pytest.raises(UsageError, match="grid must be an integer"):
        build_masker({"name": "region", "grid": 0})
    with pytest.raises(UsageError, match="low <= high"):
        build_masker({"name": "block", "low": 0.5, "high": 0.2})
    for bad in [{"name": "blok"}, {"name": "block", "ration": 1}, {"ratio": 1}]:
        with pytest.raises(UsageError) as err:
            build_masker(bad)
        assert "\n" not in str(err.value)


def test_register_a_new_masker():
    @register_masker("every_other_test_only")
    class EveryOther(Masker):
        """Mask every other row (a test masker)."""

        def __init__(self, start: int = 0):
            self.start = start

        def mask(self, layout, generator):
            return torch.arange(layout.num_rows) % 2 == self.start

    try:
        m = build_masker({"name": "every_other_test_only", "start": 1})
        assert m(RowLayout(torch.zeros(4, dtype=torch.long)), gen(0)).tolist() == [False, True, False, True]
        assert available_maskers()["every_other_test_only"] == "Mask every other row (a test masker)."
        with pytest.raises(ValueError, match="already registered"):
            register_masker("uniform")(EveryOther)
    finally:
        masker_registry._MASKERS.pop("every_other_test_only")
    with pytest.raises(UsageError):
        build_masker("every_other_test_only")


# ---- batched: no Python loop over samples ---------------------------------------------------------------------


def _python_lines(fn) -> int:
    """Python line events while ``fn`` runs (torch's kernels run in C++ and add none)."""
    count = 0

    def tracer(frame, event, arg):
        nonlocal count
        if event == "line":
            count += 1
        return tracer

    previous = sys.gettrace()
    sys.settrace(tracer)
    try:
        fn()
    finally:
        sys.settrace(previous)
    return count


@pytest.mark.parametrize("name", NAMES)
def test_no_python_loop_over_samples(name):
    """2,000 ragged samples run the very same Python lines as 4: the work per sample is all in tensor ops."""
    small_sizes = [3, 1, 0, 5]
    large_sizes = [(i * 7) % 11 for i in range(2000)]  # 0 .. 10 rows each, empty ones included
    small, large = layout_for(name, small_sizes), layout_for(name, large_sizes)
    masker = build_masker({"name": name, "ratio": 0.5, **({"grid": 2} if name == "region" else {})})
    masker(small, gen(0))  # warm up lazy imports and caches (a cold numba cache or a first-use import runs Python
    masker(large, gen(0))  # lines once, on whichever call comes first)
    lines_small = _python_lines(lambda: masker(small, gen(0)))
    lines_large = _python_lines(lambda: masker(large, gen(0)))
    assert lines_small == lines_large
    m = masker(large, gen(0))
    if name != "region":  # region's budget is over boxes, checked above
        assert per_sample(m, large) == [half_up(0.5, n) for n in large_sizes]
