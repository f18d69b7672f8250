"""DiffPALM's LM and its data: the GENERATED paired families carry the coupling they promise, the ``paired_families``
kind reads only the training species from a cache folder (bad folders: one error naming the file), the masker draws
only among B's residues, and ``soft_logits`` of one-hot rows are the model's own logits."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch

from geomask.datasets.kinds import get_data_kind
from geomask.datasets.paired_families import (
    FIRST_AA,
    PairedFamiliesDataset,
    PairedFamiliesSpec,
    build_paired_families,
    generate_paired_families,
)
from geomask.datasets.peptides import PeptidePairBatch, collate_peptide_pairs
from geomask.errors import FormatError, UsageError
from geomask.methods import build_method

pytestmark = pytest.mark.usefixtures("one_thread")

SPEC = PairedFamiliesSpec(families=2, species=6, pairs=5, length_a=10, length_b=8, couplings=3, heldout=2)
TINY = {"dim": 16, "depth": 1, "heads": 2, "max_len": 32}


def test_generated_families_carry_the_coupling():
    fam = generate_paired_families(SPEC)
    assert fam.a.shape == (2, 6, 5, 10) and fam.b.shape == (2, 6, 5, 8)
    assert fam.a.min() >= FIRST_AA and fam.a.max() < FIRST_AA + 20
    again, other = generate_paired_families(SPEC), generate_paired_families(replace(SPEC, seed=1))
    assert torch.equal(fam.a, again.a) and torch.equal(fam.b, again.b) and not torch.equal(fam.a, other.a)
    big = generate_paired_families(replace(SPEC, species=60, coupling_noise=0.1))
    for f in range(2):
        x = big.a[f][..., big.a_sites[f]] - FIRST_AA  # [S, n, K]
        y = big.b[f][..., big.b_sites[f]] - FIRST_AA
        hit = (big.tables[f][torch.arange(3), x] == y).double().mean()
        assert 0.85 < hit < 0.97  # 1 - noise (+ noise / 20 by chance)
        # a non-coupled column of B does not follow A's coupled column through the table
        free = [q for q in range(8) if q not in big.b_sites[f].tolist()][0]
        assert (big.tables[f][0, x[..., 0]] == big.b[f][..., free] - FIRST_AA).double().mean() < 0.3
    train_a, _ = fam.split(heldout=False)
    test_a, test_b = fam.split(heldout=True)
    assert train_a.shape[1] == 4 and test_a.shape[1] == 2 and torch.equal(test_b, fam.b[:, 4:])
    with pytest.raises(UsageError, match="heldout"):
        replace(SPEC, heldout=6).check()
    with pytest.raises(UsageError, match="couplings"):
        replace(SPEC, couplings=9).check()


def test_kind_reads_the_training_species_from_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("GEOMASK_CACHE", str(tmp_path))

    class Cfg:  # a data section with a paired_families section (the defaults otherwise)
        paired_families = SPEC

    ds = get_data_kind("paired_families").open_dataset(None, Cfg(), 0)
    manifest = json.loads((next(tmp_path.glob("paired_families-*")) / "manifest.json").read_text())
    assert manifest["kind"] == "paired_families" and manifest["schema_version"] == 1
    fam = generate_paired_families(SPEC)
    assert len(ds) == 2 * 4 * 5  # families x training species x pairs
    assert torch.equal(ds[0].receptor, fam.a[0, 0, 0]) and torch.equal(ds[0].peptide, fam.b[0, 0, 0])
    held = PairedFamiliesDataset(build_paired_families(SPEC), heldout=True)
    assert len(held) == 2 * 2 * 5 and torch.equal(held[0].receptor, fam.a[0, 4, 0])
    batch = get_data_kind("paired_families").collate_fn()([ds[i] for i in range(3)])
    assert isinstance(batch, PeptidePairBatch) and batch.ids.shape == (3, 10 + 8 + 3)
    assert (batch.segment_ids[:, 12:] == 1).all() and (batch.segment_ids[:, :12] == 0).all()


def test_bad_folder_is_one_error_naming_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("GEOMASK_CACHE", str(tmp_path))
    root = build_paired_families(SPEC)
    (root / "shards" / "families.pt").write_bytes(b"not a tensor file")
    with pytest.raises(FormatError, match="families.pt"):
        PairedFamiliesDataset(root)
    with pytest.raises(FormatError, match="manifest"):
        PairedFamiliesDataset(tmp_path / "nothing")


def _batch() -> PeptidePairBatch:
    fam = generate_paired_families(SPEC)
    ds = [(fam.a[0, 0, i], fam.b[0, 0, i]) for i in range(5)]
    from geomask.datasets.peptides import PeptidePair
    from geomask.sequences import amino_vocab

    return collate_peptide_pairs([PeptidePair(a, b, amino_vocab()) for a, b in ds])


def test_masks_fall_in_b_and_soft_logits_match():
    batch = _batch()
    torch.manual_seed(0)
    m = build_method("diffpalm", **TINY).eval()
    mask, inputs, labels = m.masked(batch, torch.Generator().manual_seed(0))
    in_b = batch.segment_ids == 1
    assert mask.any() and not (mask & ~in_b).any() and not (mask & ~batch.maskable).any()
    assert int(mask.sum()) == 5 * 4  # half of B's 8 residues in every row (exact counts)
    torch.manual_seed(0)
    whole = build_method("diffpalm", **TINY, segment=0, masker={"name": "mlm", "ratio": 0.9})
    mask0, _, _ = whole.masked(batch, torch.Generator().manual_seed(0))
    assert (mask0 & ~in_b).any()
    out = m(batch, torch.Generator().manual_seed(0))
    assert set(out) == {"loss", "diffpalm", "accuracy"} and torch.isfinite(out["loss"])
    hot = torch.nn.functional.one_hot(batch.ids, 33).float()
    with torch.no_grad():
        assert torch.allclose(m.soft_logits(hot, batch.attention_mask), m.logits(batch.ids, batch.attention_mask))
    with pytest.raises(UsageError, match="segment"):
        build_method("diffpalm", **TINY, segment=2)
    with pytest.raises(UsageError, match="paired_families"):
        m(object(), torch.Generator())
