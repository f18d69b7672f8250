"""``geomask eval probe`` / ``weak`` end to end on tiny synthetic scans written in the test."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest

from geomask.eval.scan_command import add_scan_eval_parsers

CONFIG = """
seed: 0
method: {backbone: Res16UNetTiny, voxel_size: 0.1, geometry: height, METHOD}
trainer: {max_steps: 2, threads: 1}
scan_eval: {crop_points: 600, probe_epochs: 20, knn_k: 5, knn_bank: 500}
"""


# tiny sparse ops run fastest (and predictably on a busy machine) on one thread
pytestmark = pytest.mark.usefixtures("one_thread")


def write_scan(folder, name, seed, n=800):
    rng = np.random.default_rng(seed)
    xyz = rng.random((n, 3)) * [2.0, 2.0, 1.0]
    labels = (xyz[:, 2] > 0.3).astype(np.int64) + (xyz[:, 0] > 1.0)
    rgb = np.stack([labels * 80.0, 255 - labels * 80.0, rng.random(n) * 255], 1)
    np.save(folder / f"{name}.npy", np.concatenate([xyz, rgb], 1).astype(np.float32))
    np.save(folder / f"{name}_labels.npy", labels)
    return f"{folder / name}.npy:{folder / name}_labels.npy"


def parse(argv):
    p = argparse.ArgumentParser()
    add_scan_eval_parsers(p.add_subparsers(dest="what", required=True))
    return p.parse_args(argv)


def test_probe_and_weak_commands_write_results(tmp_path):
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(CONFIG.replace("METHOD", "mask_cell: 2"))
    train, test = write_scan(tmp_path, "a", 0), write_scan(tmp_path, "b", 1)
    out = tmp_path / "probe.json"
    args = parse(["probe", "--train", train, "--test", test, "--json", str(out), "--config", str(cfg)])
    assert args.func(args) == 0
    res = json.loads(out.read_text())
    assert set(res["methods"]) == {"msm", "random", "raw"}
    for r in res["methods"].values():
        assert 0.0 <= r["linear"]["miou"] <= 1.0 and 0.0 <= r["knn"]["oa"] <= 1.0
    assert out.with_suffix(".png").is_file() and res["pretrain"]["steps"] == 2
    assert res["coords"] is True and res["config"]["method"]["geometry"] == "height"  # default: coordinates kept

    out = tmp_path / "weak.json"
    cfg.write_text(CONFIG.replace("METHOD", "grid: 2"))
    argv = ["weak", "--label-fraction", "0.02", "--train", train, "--test", test, "--json", str(out)]
    args = parse([*argv, "--config", str(cfg), "--labels-dir", str(tmp_path / "lab")])
    assert args.func(args) == 0
    res = json.loads(out.read_text())
    assert set(res["methods"]) == {"cpcm", "no_mask"}
    assert (tmp_path / "lab" / "a_f0.02_s0.npy").is_file() and res["weak_labels"][0]["labelled_points"] == 16


def test_unknown_method_keyword_is_reported(tmp_path):
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(CONFIG.replace("METHOD", "grid: 2"))  # a CPCM keyword given to MSM
    train = write_scan(tmp_path, "a", 0, n=200)
    args = parse(["probe", "--train", train, "--test", train, "--json", str(tmp_path / "o.json"), "--config", str(cfg)])
    with pytest.raises(ValueError, match="grid"):
        args.func(args)


def test_probe_reads_prepared_scan_folders_like_the_files(tmp_path):
    """A `geomask prep scans` folder is accepted for --train/--test: the same points, colours and labels as
    the files it was made from, so the same results."""
    from geomask.datasets.scans import prep_scans

    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(CONFIG.replace("METHOD", "mask_cell: 2"))
    train, test = write_scan(tmp_path, "a", 0, n=300), write_scan(tmp_path, "b", 1, n=300)
    rows, failures = prep_scans([train], tmp_path / "prepared", voxel_size=0.1, progress=False)
    assert not failures and len(rows) == 1
    results = []
    for src in (train, str(tmp_path / "prepared")):
        out = tmp_path / f"probe_{len(results)}.json"
        args = parse(["probe", "--train", src, "--test", test, "--json", str(out), "--config", str(cfg)])
        assert args.func(args) == 0
        results.append(json.loads(out.read_text())["methods"])
    assert results[0]["raw"] == results[1]["raw"]
    assert results[0]["msm"]["linear"]["miou"] == pytest.approx(results[1]["msm"]["linear"]["miou"], abs=1e-6)


def write_lattice_scan(folder, name, seed, shift=0.0, n=400):
    """A scan on a 1/64 m lattice (exact in float32 under a shift by whole metres), labels from position."""
    rng = np.random.default_rng(seed)
    xyz = rng.integers(0, 256, (n, 3)) / 64.0 * [1.0, 1.0, 0.5]  # 4 x 4 x 2 m
    labels = (xyz[:, 2] > 0.6).astype(np.int64) + (xyz[:, 0] > 2.0)
    rgb = rng.random((n, 3)) * 255  # colour carries no label: only position does
    np.save(folder / f"{name}.npy", np.concatenate([xyz + shift, rgb], 1).astype(np.float32))
    np.save(folder / f"{name}_labels.npy", labels)
    return f"{folder / name}.npy:{folder / name}_labels.npy"


def test_no_coords_removes_coordinates_and_default_keeps_them(tmp_path):
    """--no-coords: raw is colour alone and the network has no coordinate channel, so moving the test scan by
    2 m (16 voxels of 0.125 m: the coarsest stride) changes neither raw nor random. On these scans, labelled by
    position with random colours, raw with xyz (the default) beats that colour-only raw by far."""
    from geomask.eval.probe import probe_all, raw_features
    from geomask.eval.scan_common import load_scans

    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(CONFIG.replace("voxel_size: 0.1", "voxel_size: 0.125").replace("METHOD", "mask_cell: 2"))
    train = write_lattice_scan(tmp_path, "a", 0)
    results = {}
    for shift in (0.0, 2.0):
        test = write_lattice_scan(tmp_path, f"b{shift:g}", 1, shift)
        out = tmp_path / f"probe_{shift:g}.json"
        argv = ["probe", "--train", train, "--test", test, "--json", str(out), "--config", str(cfg)]
        args = parse([*argv, "--steps", "1", "--no-coords"])
        assert args.func(args) == 0
        results[shift] = json.loads(out.read_text())
    off, off_moved = results[0.0], results[2.0]
    assert off["coords"] is False and off["config"]["method"]["geometry"] == "none"  # the config says height
    assert off["methods"]["raw"] == off_moved["methods"]["raw"]
    assert off["methods"]["random"] == off_moved["methods"]["random"]
    (a,), (b,) = load_scans([train], None), load_scans([f"{tmp_path / 'b0'}.npy:{tmp_path / 'b0'}_labels.npy"], None)
    on = probe_all(raw_features(a.scene), a.scene.labels, raw_features(b.scene), b.scene.labels, 3, 0, 5, 500, 20)
    for probe in ("linear", "knn"):
        assert on[probe]["miou"] > off["methods"]["raw"][probe]["miou"] + 0.15, probe
