"""Generated shape images (the ``shapes`` data kind): a pure function of the seed, every class present, labels that
a trivial classifier can learn, an ``images`` dataset built once into the cache by ``prep images``' code."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from geomask.datasets.generated_images import BLOCK, CLASSES, ShapesSpec, build_shapes, generate_shapes, shapes_dir
from geomask.datasets.images import ImageBatch, ImageFolderDataset
from geomask.datasets.kinds import get_data_kind
from geomask.errors import UsageError
from geomask.train.config import DataConfig
from geomask.train.data import DataModule


def test_images_are_a_pure_function_of_seed_and_index():
    a, la = generate_shapes(300, 32, seed=0)
    b, lb = generate_shapes(300, 32, seed=0)
    assert a.shape == (300, 32, 32, 3) and a.dtype == np.uint8 and la.dtype == np.int64
    assert np.array_equal(a, b) and np.array_equal(la, lb)
    assert not np.array_equal(generate_shapes(300, 32, seed=1)[0], a)
    prefix, _ = generate_shapes(BLOCK + 5, 32, seed=0)  # a larger set starts with the same images
    assert np.array_equal(prefix[:BLOCK], generate_shapes(BLOCK, 32, seed=0)[0])
    assert generate_shapes(20, 48, seed=0)[0].shape == (20, 48, 48, 3)


def test_every_class_equally_often_and_the_pictures_vary():
    x, y = generate_shapes(500)
    assert np.bincount(y).tolist() == [50] * len(CLASSES)
    assert x.std() > 40 and len(np.unique(x.reshape(len(x), -1), axis=0)) == len(x)
    flat = x.reshape(len(x), -1, 3)
    assert (flat.std(1).max(1) > 10).all()  # every picture has something on it


def _spectrum(x: np.ndarray) -> np.ndarray:
    grey = x.astype(np.float64).mean(-1)
    grey -= grey.mean((1, 2), keepdims=True)
    return np.abs(np.fft.fft2(grey)).reshape(len(x), -1)  # invariant to translation and to the colours' offset


def test_a_nearest_class_mean_on_held_out_shapes_beats_chance():
    x, y = generate_shapes(1000, seed=3)
    f = _spectrum(x)
    train = np.arange(len(x)) < 800
    means = np.stack([f[train & (y == k)].mean(0) for k in range(len(CLASSES))])
    pred = ((f[~train, None] - means[None]) ** 2).sum(-1).argmin(1)
    accuracy = (pred == y[~train]).mean()
    assert accuracy > 0.3, accuracy  # chance: 0.1 (about 0.5 here)


def test_bad_specs_are_one_line_usage_errors(tmp_path):
    with pytest.raises(UsageError, match="images must be a whole number >= 1"):
        shapes_dir(ShapesSpec(images=0, cache=str(tmp_path)))
    with pytest.raises(UsageError, match="size must be a whole number >= 8"):
        generate_shapes(4, size=4)
    with pytest.raises(UsageError, match="seed"):
        shapes_dir(ShapesSpec(seed=-1, cache=str(tmp_path)))


def test_built_once_into_the_cache_with_one_line_and_read_as_images(tmp_path, capsys):
    spec = ShapesSpec(images=120, size=16, seed=2, cache=str(tmp_path / "cache"))
    out = build_shapes(spec)
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "GENERATED, not real images" in err and str(out) in err
    assert out == shapes_dir(spec) and out.name.startswith("shapes-120x16-seed2-")
    assert build_shapes(spec) == out and capsys.readouterr().err == ""  # built once
    assert not out.with_name(out.name + ".partial").exists() and not (out / "generated").exists()
    assert json.loads((out / "generated.json").read_text())["classes"] == list(CLASSES)
    ds = ImageFolderDataset(out)
    images, labels = ds.tensors()
    x, y = generate_shapes(120, 16, seed=2)
    assert torch.equal(images, torch.from_numpy(x).permute(0, 3, 1, 2)) and labels.tolist() == y.tolist()
    assert ds.classes == list(CLASSES)


def test_a_killed_build_leaves_no_folder_and_the_next_one_builds(tmp_path, monkeypatch):
    spec = ShapesSpec(images=30, size=16, cache=str(tmp_path))
    from geomask.datasets import prep_images

    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(prep_images, "prep_images", killed)
    with pytest.raises(KeyboardInterrupt):
        build_shapes(spec, progress=False)
    assert not shapes_dir(spec).exists()
    monkeypatch.undo()
    assert (build_shapes(spec, progress=False) / "manifest.json").is_file()


def test_shapes_kind_is_default_data_batched_as_images(tmp_path, monkeypatch):
    kind = get_data_kind("shapes")
    assert kind.default_data and not kind.reads_folders and "GENERATED" in kind.description
    assert kind.collate == get_data_kind("images").collate  # the same batches as prepared images
    monkeypatch.setenv("GEOMASK_CACHE", str(tmp_path))
    cfg = DataConfig(kind="shapes", batch_size=8)
    cfg.shapes = ShapesSpec(images=64)  # as a data.shapes section would, smaller; the cache from $GEOMASK_CACHE
    dm = DataModule(cfg, 0)
    dm.setup()
    assert dm.describe() == "64 images: 64 train, 0 validation"
    batch = next(iter(dm.train_dataloader()))
    assert isinstance(batch, ImageBatch) and batch.values.shape == (8, 3, 32, 32) and batch.augment is not None
    assert ((batch.labels >= 0) & (batch.labels < 10)).all()
    from geomask.datasets.readers import open_shapes

    cfg = SimpleNamespace(shapes=ShapesSpec(images=20, size=16, cache=str(tmp_path / "own")))
    assert len(open_shapes(None, cfg, 0)) == 20
