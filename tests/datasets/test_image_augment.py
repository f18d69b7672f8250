"""Seeded, batched image augmentations (random resized crop, flip): the same seed gives the same crops, a whole-image
box is the identity, a box resized to its own size is the slice, flips flip, one ``grid_sample`` call per batch,
and the image batch applies its augmentation once, from the step's generator."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from geomask.datasets import image_augment
from geomask.datasets.image_augment import ImageAugment, crop_boxes, resized_crop
from geomask.datasets.images import ImageBatch, augment_batch
from geomask.errors import UsageError
from geomask.grids import GridBatch


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _images(b: int = 6, c: int = 3, h: int = 12, w: int = 16) -> torch.Tensor:
    return torch.randn(b, c, h, w, generator=_gen(123))


def test_same_seed_same_crops_other_seed_other_crops():
    x = _images()
    aug = ImageAugment()
    a, b, c = aug(x, _gen(0)), aug(x, _gen(0)), aug(x, _gen(1))
    assert torch.equal(a, b) and not torch.allclose(a, c)
    assert torch.equal(crop_boxes(50, 12, 16, _gen(3)), crop_boxes(50, 12, 16, _gen(3)))


def test_boxes_fit_and_follow_scale_and_ratio():
    boxes = crop_boxes(4000, 32, 48, _gen(0), scale=(0.2, 1.0), ratio=(3 / 4, 4 / 3))
    top, left, h, w = boxes.T
    assert (top >= 0).all() and (left >= 0).all() and (top + h <= 32).all() and (left + w <= 48).all()
    share = (h * w).double() / (32 * 48)
    # U(0.2, 1) areas, rounded; large ones of the wrong aspect do not fit and are drawn again (as torchvision)
    assert share.min() > 0.17 and share.max() <= 1.0 and 0.4 < share.mean() < 0.6
    aspect = (w / h).double()
    assert aspect.min() > 0.6 and aspect.max() < 1.5
    assert len({tuple(b) for b in boxes.tolist()}) > 3000  # positions and sizes vary
    # no draw fits (scale 1 of a 2:1 image at ratio 1): the centred square fallback
    fall = crop_boxes(5, 10, 20, _gen(0), scale=(1.0, 1.0), ratio=(1.0, 1.0))
    assert fall.tolist() == [[0, 5, 10, 10]] * 5


def test_scale_one_without_flip_is_the_identity_and_a_box_at_its_size_is_the_slice():
    x = _images()
    same = ImageAugment(crop_scale=(1.0, 1.0), crop_ratio=(16 / 12, 16 / 12), flip=False)
    torch.testing.assert_close(same(x, _gen(5)), x, atol=1e-5, rtol=0)
    boxes = torch.tensor([[0, 0, 5, 7], [3, 4, 5, 7], [7, 9, 5, 7], [1, 2, 5, 7], [0, 9, 5, 7], [7, 0, 5, 7]])
    out = resized_crop(x, boxes, size=(5, 7))
    for img, crop, (t, l, h, w) in zip(x, out, boxes.tolist()):
        torch.testing.assert_close(crop, img[:, t : t + h, l : l + w], atol=1e-5, rtol=0)


def test_flip_flips():
    x = _images()
    whole = torch.tensor([[0, 0, 12, 16]] * len(x))
    torch.testing.assert_close(
        resized_crop(x, whole, torch.ones(len(x), dtype=torch.bool)), x.flip(-1), atol=1e-5, rtol=0
    )
    aug = ImageAugment(crop_scale=(1.0, 1.0), crop_ratio=(16 / 12, 16 / 12), flip=True)
    boxes, flips = aug.sample(len(x), 12, 16, _gen(7))
    assert 0 < int(flips.sum()) < len(x)  # this seed flips some, not all
    out = aug(x, _gen(7))
    for img, o, f in zip(x, out, flips.tolist()):
        torch.testing.assert_close(o, img.flip(-1) if f else img, atol=1e-5, rtol=0)
    assert not ImageAugment(flip=False).sample(100, 12, 16, _gen(0))[1].any()
    assert 30 < int(ImageAugment().sample(100, 12, 16, _gen(0))[1].sum()) < 70


def test_one_grid_sample_call_per_batch(monkeypatch):
    calls = []
    real = F.grid_sample

    def counting(*args, **kwargs):
        calls.append(args[0].shape[0])
        return real(*args, **kwargs)

    monkeypatch.setattr(image_augment.F, "grid_sample", counting)
    ImageAugment()(torch.randn(64, 3, 32, 32), _gen(0))
    assert calls == [64]


def test_grid_batches_keep_patch_and_labels_and_the_output_size_may_change():
    x = GridBatch(_images(h=16), 4, labels=torch.arange(6))
    out = ImageAugment()(x, _gen(0))
    assert isinstance(out, GridBatch) and out.patch == (4, 4) and torch.equal(out.labels, x.labels)
    small = ImageAugment(size=(8, 8))(x.values, _gen(0))
    assert small.shape == (6, 3, 8, 8)
    with pytest.raises(UsageError, match="float \\[B, C, H, W\\] images"):
        ImageAugment()(torch.zeros(2, 3, 4, 4, 4), _gen(0))
    with pytest.raises(UsageError, match="crop scale"):
        ImageAugment(crop_scale=(0.5, 1.5))
    with pytest.raises(UsageError, match="crop ratio"):
        ImageAugment(crop_ratio=(2.0, 1.0))


def test_an_image_batch_is_augmented_once_from_the_generator():
    values = _images(h=16)
    batch = ImageBatch(values, 16, labels=torch.zeros(6, dtype=torch.long), augment=ImageAugment())
    once = batch.augmented(_gen(0))
    assert once.augment is None and once.augmented(_gen(1)) is once  # nothing left to apply
    assert torch.equal(once.values, ImageAugment()(values, _gen(0)))
    assert torch.equal(augment_batch(batch, _gen(0)).values, once.values)
    plain = GridBatch(values, 16)
    assert augment_batch(plain, _gen(0)) is plain
    off = ImageBatch(values, 16)
    assert off.augmented(_gen(0)) is off
    assert math.isclose(float(once.values.std()), float(values.std()), rel_tol=0.5)
