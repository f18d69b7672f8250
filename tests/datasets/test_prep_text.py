"""geomask prep text / prep sequences: datasets written, bad records one line each and skipped, resumable."""

from __future__ import annotations

import json
import shutil

from geomask.cli import main
from geomask.datasets.sequences import prep_sequences
from geomask.datasets.text import SequenceDataset, prep_text
from geomask.sequences import collate_sequences
from geomask.sequences.tokenizer import load_tokenizer

TEXT = "the cat sat on the mat\n\nthe dog sat on the log\n" * 10


def test_prep_text_skips_bad_lines_and_keeps_the_rest(tmp_path, capsys):
    good = tmp_path / "a.txt"
    good.write_text(TEXT)
    bad = tmp_path / "b.txt"
    bad.write_bytes(b"a fine line here\n\xff\xfe broken bytes\nanother fine line\n")
    rc = main(
        [
            "prep",
            "text",
            str(good),
            str(bad),
            str(tmp_path / "missing.txt"),
            "--out",
            str(tmp_path / "d"),
            "--vocab-size",
            "60",
            "--quiet",
        ]
    )
    err = capsys.readouterr().err.splitlines()
    assert rc == 1
    assert sum("b.txt:2: undecodable" in line for line in err) == 1
    assert sum("10 empty line(s) skipped" in line for line in err) == 1
    assert sum("missing.txt" in line for line in err) == 1
    ds = SequenceDataset(tmp_path / "d", "text")
    assert len(ds) == 20 + 2  # every good line of both files
    tok = load_tokenizer(tmp_path / "d" / "tokenizer")
    assert tok.decode(ds[0].ids.tolist()) == "the cat sat on the mat"
    batch = collate_sequences([ds[i] for i in range(4)])
    assert batch.word_ids is not None and batch.ids[0, 0] == batch.vocab.cls_id
    # resumable: a second run skips written sources and gives the same manifest
    before = (tmp_path / "d" / "manifest.json").read_text()
    prep_text([good, bad], tmp_path / "d", progress=False)
    assert json.loads((tmp_path / "d" / "manifest.json").read_text())["items"] == json.loads(before)["items"]


def test_long_records_are_cut_into_pieces_nothing_dropped(tmp_path):
    src = tmp_path / "long.txt"
    src.write_text(" ".join(["word"] * 300) + "\nshort line\n")
    prep_text([src], tmp_path / "d", vocab_size=40, progress=False)
    ds = SequenceDataset(tmp_path / "d", "text", max_len=128)
    assert [len(ds[i].ids) for i in range(3)] == [126, 126, 48] and len(ds) == 4  # 300 words = 126 + 126 + 48
    tok = load_tokenizer(tmp_path / "d" / "tokenizer")
    assert tok.decode(ds[3].ids.tolist()) == "short line"


def test_prep_sequences_fasta_csv_text(tmp_path, capsys):
    fa = tmp_path / "p.fasta"
    fa.write_text(">one\nMKTA\nYIAK\n>two bad\nMKJ1\n>three\nacde\n")
    csv = tmp_path / "p.csv"
    csv.write_text("id,Seq\n1,GGGG\n2,\n3,MK*\n")
    txt = tmp_path / "p.txt"
    txt.write_text("LLLL\n\nXBZ\n")
    rc = main(
        ["prep", "sequences", str(fa), str(csv), str(txt), "--column", "Seq", "--out", str(tmp_path / "s"), "--quiet"]
    )
    err = capsys.readouterr().err
    assert rc == 1
    assert "p.fasta:4: invalid residue letter(s) 1J in two bad" in err
    assert "p.csv:3: empty sequence" in err and "p.csv:4: invalid residue letter(s) *" in err
    ds = SequenceDataset(tmp_path / "s", "sequences")
    got = sorted(ds[i].ids.tolist() for i in range(len(ds)))
    assert len(got) == 5  # MKTAYIAK, ACDE (lower case read as upper), GGGG, LLLL, XBZ
    b = collate_sequences([ds[i] for i in range(len(ds))])
    assert (b.ids[:, 0] == 0).all() and b.vocab.name == "amino"


def test_prep_sequences_csv_without_the_column(tmp_path, capsys):
    csv = tmp_path / "p.csv"
    csv.write_text("id,Seq\n1,GGGG\n")
    rows, failures = prep_sequences([csv], tmp_path / "s", progress=False)
    assert rows == [] and len(failures) == 1 and "no column 'Sequence'" in failures[0][1]


def test_wikitext_prep(tmp_path, shared_data):
    src = shared_data / "text" / "wikitext2" / "wiki.valid.txt"
    rows, failures, warnings = prep_text([src], tmp_path / "w", vocab_size=2000, progress=False)
    assert not failures and rows[0]["records"] > 1000
    ds = SequenceDataset(tmp_path / "w", "text")
    assert len(ds) >= rows[0]["records"] and int(ds.ids.max()) < ds.vocab.size


def test_generated_text_cache_is_the_same_bytes_on_every_build(tmp_path):
    """Two builds of the GENERATED text cache under the same cache root (the second after removing the first) write
    byte-identical folders: tokenizer, token shards and manifest (which records the source's path)."""
    from geomask.datasets.text import GeneratedTextSpec, build_generated_text

    def build() -> dict[str, bytes]:
        out = build_generated_text(GeneratedTextSpec(lines=60, vocab_size=120, cache=str(tmp_path / "cache")))
        files = {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}
        shutil.rmtree(out)
        return files

    first, second = build(), build()
    assert first.keys() == second.keys() and "manifest.json" in first
    assert first == second
