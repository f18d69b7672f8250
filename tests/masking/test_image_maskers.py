"""Image maskers on the masker protocol: MAE random tokens, SimMIM, BEiT blocks, MFM frequency discs, DMJD disjoint
views and score-guided selection (HPM, SelectiveMAE) -- exact counts, seeding, hand-checked cases, batching."""

from __future__ import annotations

import math
import pickle
import sys

import pytest
import torch

from geomask.errors import UsageError
from geomask.masking import (
    BEiTBlockMasker,
    RowLayout,
    ScoredLayout,
    TokenGridLayout,
    available_maskers,
    beit_block_mask,
    build_masker,
    centered_spectrum,
    disjoint_masks,
    easy_to_hard,
    frequency_disc,
    frequency_filter,
    ids_from_mask,
    mae_random_masking,
    simmim_mask,
)

pytestmark = pytest.mark.usefixtures("one_thread")

IMAGE_MASKERS = ["random_tokens", "simmim", "beit_block", "frequency", "disjoint", "scored"]


def gen(seed):
    return torch.Generator().manual_seed(seed)


def layout_for(name, b=4, seed=0):
    """A layout of the kind the masker takes (a 2-D token grid; scores for 'scored')."""
    if name == "simmim":
        return TokenGridLayout(b, (16, 24))  # 4 x 6 blocks of 4 x 4 tokens with (32, 8) below
    if name == "disjoint":
        return TokenGridLayout(2 * b, (6, 6))
    if name == "scored":
        return ScoredLayout(TokenGridLayout(b, (6, 6)), torch.randn(b * 36, generator=gen(seed)))
    return TokenGridLayout(b, (14, 14))


def spec(name, **extra):
    opts = {
        "simmim": {"mask_patch_size": 32, "model_patch_size": 8},
        "frequency": {"radius": 4},
        "scored": {"fraction": 0.5},  # half by score, half at random (a pure top-k draws nothing)
    }.get(name, {})
    return {"name": name, **opts, **extra}


# ---- the protocol: registry, seeding, pickling, batching ------------------------------------------------------


def test_registered_with_one_line_descriptions_and_config_round_trip():
    got = available_maskers()
    for name in IMAGE_MASKERS:
        assert got[name] and "\n" not in got[name]
        masker = build_masker(spec(name))
        assert masker.name == name
        assert repr(build_masker(masker.config())) == repr(masker)
        again = pickle.loads(pickle.dumps(masker))
        assert torch.equal(again(layout_for(name), gen(3)), masker(layout_for(name), gen(3)))


@pytest.mark.parametrize("name", IMAGE_MASKERS)
def test_same_seed_same_mask_and_the_generator_advances(name):
    masker, layout = build_masker(spec(name)), layout_for(name, b=6)
    a, b, c = masker(layout, gen(7)), masker(layout, gen(7)), masker(layout, gen(8))
    assert a.dtype == torch.bool and a.shape == (layout.num_rows,)
    assert torch.equal(a, b) and not torch.equal(a, c)
    g = gen(7)
    first, second = masker(layout, g), masker(layout, g)
    assert torch.equal(first, a) and not torch.equal(first, second)


@pytest.mark.parametrize("name", ["random_tokens", "simmim", "beit_block", "scored"])
def test_ratio_one_masks_everything_ratio_zero_nothing(name):
    layout = layout_for(name)
    assert bool(build_masker(spec(name, ratio=1.0))(layout, gen(0)).all())
    assert not bool(build_masker(spec(name, ratio=0.0))(layout, gen(0)).any())


def test_wrong_layout_names_the_masker():
    with pytest.raises(UsageError, match="'scored' takes a ScoredLayout"):
        build_masker("scored")(TokenGridLayout(2, (4, 4)), gen(0))
    with pytest.raises(UsageError, match="'beit_block' takes a TokenGridLayout"):
        build_masker("beit_block")(RowLayout(torch.zeros(3, dtype=torch.long)), gen(0))


def _python_lines(fn) -> int:
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


@pytest.mark.parametrize("name", ["random_tokens", "simmim", "frequency", "disjoint", "scored"])
def test_no_python_loop_over_samples(name):
    """1,000 samples run the very same Python lines as 2 (BEiT's loop over rounds is the one documented loop)."""
    masker = build_masker(spec(name))
    small, large = layout_for(name, b=2), layout_for(name, b=1000)
    masker(small, gen(0))
    assert _python_lines(lambda: masker(small, gen(0))) == _python_lines(lambda: masker(large, gen(0)))


# ---- MAE random tokens ----------------------------------------------------------------------------------------


def test_random_tokens_is_maes_random_masking_of_the_same_noise():
    noise = torch.rand(5, 196, generator=gen(0))
    mask, ids_keep, ids_restore = mae_random_masking(noise, 0.75)
    # MAE, written out: keep the 49 smallest noise values
    len_keep = int(196 * (1 - 0.75))
    ids_shuffle = torch.argsort(noise, dim=1)
    ref = torch.ones(5, 196)
    ref[:, :len_keep] = 0
    ref = torch.gather(ref, 1, torch.argsort(ids_shuffle, dim=1))
    assert torch.equal(mask, ref.bool()) and torch.equal(ids_keep, ids_shuffle[:, :len_keep])
    assert (mask.sum(1) == 147).all()
    # the masker draws exactly that noise from the generator
    got = build_masker({"name": "random_tokens", "ratio": 0.75})(TokenGridLayout(5, (14, 14)), gen(0))
    assert torch.equal(got.view(5, 196), mask)
    # ids_keep / ids_restore: gather the visible tokens, append mask tokens, restore grid order
    x = torch.randn(5, 196, 3, generator=gen(1))
    visible = torch.gather(x, 1, ids_keep.unsqueeze(-1).expand(-1, -1, 3))
    full = torch.cat([visible, torch.zeros(5, 147, 3)], dim=1)
    restored = torch.gather(full, 1, ids_restore.unsqueeze(-1).expand(-1, -1, 3))
    assert torch.equal(restored, x * ~mask.unsqueeze(-1))


def test_ids_from_any_equal_count_mask():
    mask = torch.tensor([[True, False, True, False], [False, False, True, True]])
    ids_keep, ids_restore = ids_from_mask(mask)
    assert ids_keep.tolist() == [[1, 3], [0, 1]]  # visible tokens in grid order
    assert ids_restore.tolist() == [[2, 0, 3, 1], [0, 1, 2, 3]]
    x = torch.arange(8.0).view(2, 4, 1)
    full = torch.cat([torch.gather(x, 1, ids_keep.unsqueeze(-1)), torch.full((2, 2, 1), -1.0)], 1)
    assert torch.gather(full, 1, ids_restore.unsqueeze(-1)).squeeze(-1).tolist() == [[-1, 1, -1, 3], [4, 5, -1, -1]]
    with pytest.raises(UsageError, match="same number"):
        ids_from_mask(torch.tensor([[True, False], [True, True]]))


# ---- SimMIM ---------------------------------------------------------------------------------------------------


def test_simmim_192_32_4_06_masks_22_of_36_blocks():
    m = simmim_mask(8, 192, 32, 4, 0.6, gen(0))
    assert m.shape == (8, 48, 48)
    blocks = m.view(8, 6, 8, 6, 8)
    assert bool((blocks.all(dim=(2, 4)) | ~blocks.any(dim=(2, 4))).all())  # constant on every 8 x 8 block
    assert blocks.all(dim=(2, 4)).sum(dim=(1, 2)).tolist() == [22] * 8
    assert m.sum(dim=(1, 2)).tolist() == [22 * 64] * 8
    assert not torch.equal(m[0], m[1])


def test_simmim_non_square_and_errors():
    m = simmim_mask(3, (64, 96), mask_patch_size=16, model_patch_size=8, ratio=0.5, generator=gen(1))
    assert m.shape == (3, 8, 12) and m.view(3, 4, 2, 6, 2).all(dim=(2, 4)).sum(dim=(1, 2)).tolist() == [12] * 3
    with pytest.raises(UsageError, match="multiple of model_patch_size"):
        build_masker({"name": "simmim", "mask_patch_size": 30, "model_patch_size": 4})
    with pytest.raises(UsageError, match="multiple of 8"):
        build_masker("simmim")(TokenGridLayout(1, (12, 16)), gen(0))


# ---- BEiT blocks ----------------------------------------------------------------------------------------------


def _rects(draws, shape):
    """The painted rectangles of every round as masks [R, B, H, W]."""
    rows = torch.arange(shape[0]).view(1, 1, -1, 1)
    cols = torch.arange(shape[1]).view(1, 1, 1, -1)

    def v(t):
        return t.unsqueeze(-1).unsqueeze(-1)

    return (
        (rows >= v(draws.top))
        & (rows < v(draws.top + draws.h))
        & (cols >= v(draws.left))
        & (cols < v(draws.left + draws.w))
        & v(draws.accepted)
    )


def test_beit_exact_budget_blocks_and_aspect_bounds():
    b, shape = 400, (14, 14)
    budget = torch.full((b,), 75)
    mask, draws = beit_block_mask(budget, shape, gen(0), min_block=16)
    assert mask.sum(dim=(1, 2)).tolist() == [75] * b  # exact, though BEiT's own loop may stop short
    acc = draws.accepted
    assert bool(acc[0].all())  # the first block always fits on an empty 14 x 14 grid
    a, area = draws.aspect[acc], draws.area[acc]
    assert a.min() >= 0.3 - 1e-12 and a.max() <= 1 / 0.3 + 1e-12  # log-uniform in [0.3, 1/0.3]
    assert abs(float(a.log().mean())) < 0.1  # symmetric in log space
    assert torch.equal(draws.h[acc], torch.round(torch.sqrt(area * a)).long())
    assert torch.equal(draws.w[acc], torch.round(torch.sqrt(area / a)).long())
    assert bool((draws.h[acc] < 14).all() and (draws.w[acc] < 14).all())
    assert bool((area[:b] >= 16).all())  # the first block's target area is U(16, 75)
    painted = _rects(draws, shape).any(0)
    assert not bool((painted & ~mask).any())  # every accepted rectangle is masked
    topped = mask & ~painted
    assert 0 < int(topped.any(dim=(1, 2)).sum()) < b  # some samples were short and were topped up
    # top-up order: unmasked 4-neighbours of the painted blocks first
    pad = torch.nn.functional.pad(painted.float().unsqueeze(1), (1, 1, 1, 1)).squeeze(1)
    touch = (pad[:, :-2, 1:-1] + pad[:, 2:, 1:-1] + pad[:, 1:-1, :-2] + pad[:, 1:-1, 2:]) > 0
    candidates = (touch & ~painted).sum(dim=(1, 2))
    short = topped.sum(dim=(1, 2))
    enough = candidates >= short
    assert bool(((topped & ~touch).sum(dim=(1, 2))[enough] == 0).all())


def test_beit_masker_counts_rounding_and_bounds():
    masker = BEiTBlockMasker(ratio=0.4, min_block=4, max_block=12, min_aspect=0.5)
    m = masker(TokenGridLayout(50, (8, 10)), gen(1)).view(50, 8, 10)
    assert m.sum(dim=(1, 2)).tolist() == [32] * 50  # floor(0.4 * 80 + 0.5)
    _, draws = beit_block_mask(torch.full((50,), 32), (8, 10), gen(1), 4, 12, 0.5)
    acc = draws.accepted
    assert bool((draws.h[acc] * draws.w[acc] <= 12).all())  # no block adds more than max_block
    assert draws.aspect[acc].min() >= 0.5 - 1e-12 and draws.aspect[acc].max() <= 2.0 + 1e-12
    assert beit_block_mask(torch.tensor([0, 80]), (8, 10), gen(0))[0].sum(dim=(1, 2)).tolist() == [0, 80]
    with pytest.raises(UsageError, match="2-D"):
        masker(TokenGridLayout(2, (4, 4, 4)), gen(0))
    with pytest.raises(UsageError, match="min_aspect"):
        BEiTBlockMasker(min_aspect=2.0, max_aspect=1.0)


# ---- MFM frequency discs --------------------------------------------------------------------------------------


def test_frequency_disc_hand_counts_and_mfm_loop():
    assert int(frequency_disc((8, 8), 1).sum()) == 1  # d^2 < 1: the zero frequency only
    assert int(frequency_disc((8, 8), 2).sum()) == 9  # (0,0), 4 axis and 4 diagonal neighbours
    # MFM's FreqMaskGenerator loop: mask[y, x] = 0 where d^2 >= r1^2 (the kept disc is d^2 < r1^2)
    size, r = 12, 3.5
    mfm = [[((x - size // 2) ** 2 + (y - size // 2) ** 2) < r**2 for x in range(size)] for y in range(size)]
    assert frequency_disc((size, size), r).tolist() == mfm


@pytest.mark.parametrize("shape", [(8, 8), (7, 9), (6, 5)])
def test_frequency_disc_is_symmetric_so_the_filtered_image_is_real(shape):
    disc = frequency_disc(shape, 2.5)
    h, w = shape
    i = torch.arange(h).view(-1, 1)
    j = torch.arange(w).view(1, -1)
    partner_i = (2 * (h // 2) - i) % h  # index of the negated frequency on the centred grid
    partner_j = (2 * (w // 2) - j) % w
    assert torch.equal(disc, disc[partner_i, partner_j])
    x = torch.randn(2, 3, h, w, dtype=torch.float64, generator=gen(0))
    kept = centered_spectrum(x) * ~(~disc)  # low-pass: the disc kept
    full = torch.fft.ifft2(torch.fft.ifftshift(kept, dim=(-2, -1)))
    assert full.imag.abs().max() < 1e-12
    low = frequency_filter(x, ~disc.expand(2, h, w))
    high = frequency_filter(x, disc.expand(2, h, w))
    assert torch.allclose(low, full.real) and torch.allclose(low + high, x, atol=1e-12)


def test_frequency_masker_modes_and_exact_counts():
    layout = TokenGridLayout(2000, (16, 16))
    disc = int(frequency_disc((16, 16), 4).sum())
    m = build_masker({"name": "frequency", "radius": 4})(layout, gen(0)).view(2000, 16, 16)
    counts = m.sum(dim=(1, 2))
    assert set(counts.tolist()) == {disc, 256 - disc}
    low = counts == 256 - disc  # low-pass: everything outside the disc is masked
    assert 0.45 < float(low.float().mean()) < 0.55
    assert not bool((m[low] & frequency_disc((16, 16), 4)).any())
    hp = build_masker({"name": "frequency", "radius": 4, "mode": "high_pass"})(TokenGridLayout(2, (16, 16)), gen(0))
    assert hp.view(2, 256).sum(1).tolist() == [disc, disc]
    x = torch.rand(2, 3, 16, 16, generator=gen(1))
    assert frequency_filter(x, hp, clamp=(0.0, 1.0)).shape == x.shape
    with pytest.raises(UsageError, match="mode"):
        build_masker({"name": "frequency", "mode": "band"})


# ---- DMJD disjoint views --------------------------------------------------------------------------------------


def test_disjoint_visible_sets_disjoint_masks_cover_the_image():
    m = disjoint_masks(50, (6, 6), ratio=0.6, views=2, generator=gen(0))  # DMJD: two views at 0.6
    assert m.shape == (2, 50, 6, 6)
    assert m.sum(dim=(2, 3)).eq(22).all()  # floor(0.6 * 36 + 0.5) per view
    assert not bool((~m[0] & ~m[1]).any())  # no token visible in both views
    assert bool((m[0] | m[1]).all())  # every token is predicted in some view
    three = disjoint_masks(10, 16, ratio=0.75, views=3, generator=gen(1))
    visible = (~three).long().sum(0)
    assert bool((visible <= 1).all()) and (~three).sum(-1).eq(4).all()


def test_disjoint_masked_sets_partition_and_view_major_layout():
    m = disjoint_masks(20, 12, ratio=0.25, views=4, disjoint="masked", generator=gen(2))
    assert m.sum(-1).eq(3).all() and m.long().sum(0).eq(1).all()  # 4 x 3 masked tokens partition 12
    masker = build_masker({"name": "disjoint", "ratio": 0.25, "views": 4, "disjoint": "masked"})
    flat = masker(TokenGridLayout(80, (12,)), gen(2))
    assert torch.equal(flat.view(4, 20, 12), m)  # sample k * B + b is view k of image b
    with pytest.raises(UsageError, match="cannot be disjoint"):
        disjoint_masks(2, 10, ratio=0.4, views=2)  # two views of 6 visible tokens out of 10
    with pytest.raises(UsageError, match="views of whole images"):
        build_masker({"name": "disjoint", "views": 3})(TokenGridLayout(4, (6,)), gen(0))


# ---- score-guided selection (HPM, SelectiveMAE) ---------------------------------------------------------------


def test_scored_top_k_by_score_and_hpm_mixing():
    scores = torch.tensor([[0.1, 0.9, 0.5, 0.7, 0.2, 0.3, 0.8, 0.0], [1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 2.0]])
    layout = ScoredLayout(TokenGridLayout(2, (8,)), scores)
    top = build_masker({"name": "scored", "ratio": 0.5})(layout, gen(0)).view(2, 8)
    assert top[0].nonzero().flatten().tolist() == [1, 2, 3, 6]  # the 4 largest scores
    assert top[1, 0] and top[1, 7] and int(top[1].sum()) == 4  # ties among the zeros: lower rows first
    assert top[1].nonzero().flatten().tolist() == [0, 1, 2, 7]
    # HPM: half of the 4 by score (the two largest), the other two at random among the rest
    mixed = torch.stack(
        [build_masker({"name": "scored", "ratio": 0.5, "fraction": 0.5})(layout, gen(s)) for s in range(30)]
    )
    mixed = mixed.view(30, 2, 8)
    assert mixed.sum(-1).eq(4).all()
    assert bool(mixed[:, 0, 1].all() and mixed[:, 0, 6].all() and mixed[:, 1, 7].all() and mixed[:, 1, 0].all())
    assert mixed[:, 0, 3].float().mean() < 1  # the third largest is no longer always masked
    assert easy_to_hard(0, 200) == pytest.approx(0.0025) and easy_to_hard(199, 200) == pytest.approx(0.5)


def test_scored_on_ragged_rows_with_exact_counts():
    batch = torch.tensor([2, 0, 0, 1, 2, 2, 0, 2, 1])
    scores = torch.arange(9, dtype=torch.float32)
    m = build_masker({"name": "scored", "ratio": 0.5, "fraction": 1.0})(
        ScoredLayout(RowLayout(batch, 4), scores), gen(0)
    )
    per = torch.zeros(4, dtype=torch.long).index_add_(0, batch, m.long()).tolist()
    assert per == [2, 1, 2, 0]  # half up of 3, 2, 4, 0 rows
    assert m.nonzero().flatten().tolist() == [2, 5, 6, 7, 8]  # the largest scores of each sample


def test_scored_temperature_draws_from_softmax_without_replacement():
    """SelectiveMAE's multinomial(softmax(score)): the first pick of 3 rows follows p = (0.6, 0.3, 0.1)."""
    n = 6000
    p = torch.tensor([0.6, 0.3, 0.1])
    batch = torch.arange(n).repeat_interleave(3)
    layout = ScoredLayout(RowLayout(batch, n), p.log().repeat(n))
    m = build_masker({"name": "scored", "ratio": 1 / 3, "temperature": 1.0})(layout, gen(0)).view(n, 3)
    assert m.sum(1).eq(1).all()
    freq = m.float().mean(0)
    assert torch.allclose(freq, p, atol=4 * math.sqrt(0.25 / n))
    two = build_masker({"name": "scored", "ratio": 2 / 3, "temperature": 1.0})(layout, gen(1)).view(n, 3)
    # P(row 2 is left out) = p0 p1 / (1 - p0) + p1 p0 / (1 - p1) without replacement
    want = 0.6 * 0.3 / 0.4 + 0.3 * 0.6 / 0.7
    assert abs(float((~two[:, 2]).float().mean()) - want) < 4 * math.sqrt(0.25 / n)


def test_scored_layout_validates_scores():
    base = TokenGridLayout(2, (3,))
    with pytest.raises(UsageError, match="6 floats"):
        ScoredLayout(base, torch.zeros(5))
    with pytest.raises(UsageError, match="finite"):
        ScoredLayout(base, torch.tensor([0.0, 1.0, float("nan"), 0.0, 0.0, 0.0]))
    layout = ScoredLayout(base, torch.zeros(2, 3, requires_grad=True))
    assert layout.dense_shape == (2, 3) and layout.num_samples == 2 and not layout.scores.requires_grad
    with pytest.raises(UsageError, match="temperature"):
        build_masker({"name": "scored", "temperature": -1})
