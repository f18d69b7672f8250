"""The embedded-corpus data kinds (``corpus``, ``corpus_pairs``): built once into the cache, reused after, a subset
of designs, ``data.roots`` taking over, and a one-line error where the corpus is absent."""

from __future__ import annotations

from pathlib import Path

import pytest

import geomask
from geomask.datasets import readers
from geomask.datasets.kinds import get_data_kind
from geomask.errors import UsageError
from geomask.train.config import load_config
from geomask.train.engine import check_data_kind


def _cfg(kind: str, designs: int = 3, **data):
    return load_config(
        {
            "method": {"name": "mgvga" if kind == "corpus_pairs" else "mgm", "verilog_dim": 32},
            "data": {"kind": kind, "corpus": {"designs": designs, "jobs": 1}, **data},
        }
    )


def test_corpus_is_built_once_into_the_cache_then_reused(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("GEOMASK_CACHE", str(tmp_path))
    cfg = _cfg("corpus")
    ds = get_data_kind("corpus").open_dataset(None, cfg.data, 0)
    first = capsys.readouterr().err
    assert first.count("building the embedded corpus dataset into") == 1 and str(tmp_path) in first
    assert len(ds) == 3 and ds[0].node_type.numel() > 0 and ds[0].edge_index.shape[0] == 2
    (built,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    assert built.name.startswith("corpus-3-") and (tmp_path / f"{built.name}.done").is_file()
    again = get_data_kind("corpus").open_dataset(None, cfg.data, 0)
    assert "building" not in capsys.readouterr().err and len(again) == 3
    assert [g.name for g in again] == [g.name for g in ds]
    # other options: another folder
    get_data_kind("corpus").open_dataset(None, _cfg("corpus", designs=2).data, 0)
    assert len([p for p in tmp_path.iterdir() if p.is_dir()]) == 2


def test_data_corpus_cache_wins_over_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("GEOMASK_CACHE", str(tmp_path / "env"))
    assert readers.cache_root(str(tmp_path / "cfg")) == tmp_path / "cfg"
    assert readers.cache_root("") == tmp_path / "env"
    monkeypatch.delenv("GEOMASK_CACHE")
    assert readers.cache_root("") == Path(geomask.__file__).resolve().parents[1] / "out" / "cache"


def test_corpus_pairs_carry_verilog_at_the_methods_dim(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("GEOMASK_CACHE", str(tmp_path))
    cfg = _cfg("corpus_pairs", designs=2)
    assert cfg.data.corpus.text_encoder == "hashing:32"
    ds = get_data_kind("corpus_pairs").open_dataset(None, cfg.data, 0)
    assert "building the embedded corpus dataset" in capsys.readouterr().err
    assert len(ds) == 2 * (1 + cfg.data.corpus.recipes)
    assert ds[0].verilog_emb.shape[1] == 32 and ds[0].verilog_vec.shape == (1, 32)


def test_subset_is_evenly_spread_and_fixed():
    all_files = readers.corpus_designs(10_000)
    assert len(all_files) == 400
    four = readers.corpus_designs(4)
    assert four == [all_files[0], all_files[100], all_files[200], all_files[300]] == readers.corpus_designs(4)


def test_roots_take_over_from_the_corpus_kinds():
    assert _cfg("corpus").data.kind == "corpus"
    assert _cfg("corpus", roots=["some/prep"]).data.kind == "auto"
    assert _cfg("corpus_pairs", roots=["some/prep"]).data.kind == "auto"


def test_graph_methods_take_the_corpus_kinds_and_point_methods_do_not():
    assert check_data_kind(_cfg("corpus")) == [(None, "corpus")]
    assert check_data_kind(_cfg("corpus_pairs")) == [(None, "corpus_pairs")]
    cfg = _cfg("corpus")
    cfg.method.name, cfg.method.kwargs = "pointmae", {}
    with pytest.raises(UsageError, match="corpus"):
        check_data_kind(cfg)


def test_an_absent_corpus_is_a_one_line_error(tmp_path, monkeypatch):
    monkeypatch.setattr(geomask, "__file__", str(tmp_path / "site-packages" / "geomask" / "__init__.py"))
    with pytest.raises(UsageError, match="embedded corpus is not here") as e:
        get_data_kind("corpus").open_dataset(None, _cfg("corpus").data, 0)
    assert "\n" not in str(e.value) and "data.roots" in str(e.value)


@pytest.mark.parametrize("key, value", [("designs", 0), ("jobs", 0), ("recipes", -1)])
def test_bad_corpus_options_name_the_key(key, value):
    with pytest.raises(UsageError, match=f"data.corpus.{key}"):
        load_config({"method": {"name": "mgm"}, "data": {"kind": "corpus", "corpus": {key: value}}})
