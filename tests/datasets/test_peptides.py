"""``geomask prep peptides`` and the ``peptide_pairs`` kind: one error line per bad row, the others kept, resumable,
plain tensors with a manifest; the batch's segments; the real PepNN pairs when ../shared/data is present."""

from __future__ import annotations

import json

import pytest
import torch

from geomask.cli import main
from geomask.datasets.kinds import get_data_kind
from geomask.datasets.peptides import PeptidePairDataset, collate_peptide_pairs, prep_peptides

pytestmark = pytest.mark.usefixtures("one_thread")


def write_csv(path, rows):
    path.write_text("PDB,Receptor Sequence,Sequence\n" + "".join(f"x,{r},{p}\n" for r, p in rows))
    return path


def test_prep_keeps_good_rows_reports_bad_ones_and_resumes(tmp_path, capsys):
    src = write_csv(tmp_path / "a.csv", [("ACDE", "KLM"), ("AC1E", "KK"), ("ACDE", ""), ("mmww", "gg")])
    out = tmp_path / "out"
    assert main(["prep", "peptides", str(src), str(tmp_path / "none.csv"), "--out", str(out), "--quiet"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"error: {src}:3: invalid residue letter(s) 1 in the receptor; row skipped",
        f"error: {src}:4: empty peptide; row skipped",
        f"error: {tmp_path / 'none.csv'}: no such file",
    ]
    ds = PeptidePairDataset(out)
    assert len(ds) == 2 and ds[1].receptor.tolist() == [20, 20, 22, 22] and ds[1].peptide.tolist() == [6, 6]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["kind"] == "peptide_pairs" and manifest["options"]["vocab"]["name"] == "amino"
    shard = torch.load(next((out / "shards").glob("*.pt")), weights_only=True)
    assert set(shard) == {"receptor", "receptor_offsets", "peptide", "peptide_offsets"}
    rows, failures = prep_peptides([src], out, progress=False)  # resumed: written before, nothing re-read
    assert rows == [{"source": "a.csv", "pairs": "(written before)"}] and failures == []
    with pytest.raises(Exception, match="no column 'Peptide'"):
        from geomask.datasets.peptides import read_pairs

        read_pairs(src, peptide_column="Peptide")


def test_batch_segments_and_the_registered_kinds(tmp_path):
    out = tmp_path / "out"
    prep_peptides([write_csv(tmp_path / "a.csv", [("ACD", "KL"), ("A", "WWW")])], out, progress=False)
    kind = get_data_kind("peptide_pairs")
    ds = kind.open_dataset(out, None, 0)
    b = kind.collate_fn()([ds[0], ds[1]])
    assert b.ids.tolist() == [[0, 5, 23, 13, 2, 15, 4, 2], [0, 5, 2, 22, 22, 22, 2, 1]]
    assert b.segment_ids.tolist() == [[0, 0, 0, 0, 0, 1, 1, 1], [0, 0, 0, 1, 1, 1, 1, -1]]
    assert b.to("cpu").segment_ids is not None
    assert get_data_kind("generated_peptides").default_data
    short = collate_peptide_pairs([ds[0]], max_receptor=1)
    assert short.ids.tolist() == [[0, 5, 2, 15, 4, 2]]


def test_real_pepnn_pairs(tmp_path, shared_data):
    src = shared_data / "sequences" / "pepnn_train.csv"
    rows, failures = prep_peptides([src], tmp_path / "pepnn", progress=False)
    ds = PeptidePairDataset(tmp_path / "pepnn")
    assert rows[0]["pairs"] == len(ds) == 2828 - len(failures) and len(ds) > 2700
    b = collate_peptide_pairs([ds[i] for i in range(8)])
    assert b.layout().maskable.shape == b.ids.shape and (b.segment_ids == 1).any(1).all()
