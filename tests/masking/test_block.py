"""Point-BERT block masking and Point-MAE random patch masking."""

from __future__ import annotations

import pytest
import torch

from geomask.masking.block import BlockPatchMasker
from geomask.masking.random_patches import random_patch_mask


def test_block_ratio_and_contiguity():
    g = torch.Generator().manual_seed(0)
    centers = torch.rand(64, 40, 3, generator=g)
    mask = BlockPatchMasker(0.25, 0.45).sample(centers, g)
    frac = mask.float().mean(1)
    assert (frac >= 0.25 - 1 / 80).all() and (frac <= 0.45 + 1 / 80).all()
    assert frac.std() > 0  # the ratio varies per cloud
    # contiguous: some masked centre is closer to every masked centre than any visible one is (a ball)
    d = torch.cdist(centers, centers)
    for b in range(64):
        m = mask[b]
        inside = d[b][:, m].amax(1)  # radius of the masked set around each candidate seed
        outside = torch.where(~m, d[b], torch.inf).amin(1)
        assert ((inside <= outside) & m).any()


def test_block_seeded():
    centers = torch.rand(4, 30, 3)
    a = BlockPatchMasker().sample(centers, torch.Generator().manual_seed(5))
    b = BlockPatchMasker().sample(centers, torch.Generator().manual_seed(5))
    assert torch.equal(a, b)
    with pytest.raises(ValueError):
        BlockPatchMasker(0.5, 0.2)


def test_random_patch_mask_counts():
    m = random_patch_mask(16, 64, 0.6, torch.Generator().manual_seed(0))
    assert (m.sum(1) == 38).all()
    assert not torch.equal(m[0], m[1])
    with pytest.raises(ValueError):
        random_patch_mask(2, 4, 1.5)
