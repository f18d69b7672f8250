"""``prep images`` (folders of PNG/JPEG, npz, npy → an ``images`` dataset) and its reader / collate (data kind
``images``): formats and pixel round trips, resumability, atomicity, one line per bad input with the rest kept,
and the real CIFAR-10 subset where ../shared/data is present."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from geomask.cli import main
from geomask.datasets import prep_images as prep_module
from geomask.datasets.images import ImageBatch, ImageFolderDataset, ImagesOptions, collate_images, images_options
from geomask.datasets.kinds import get_data_kind
from geomask.datasets.prep_images import prep_images
from geomask.datasets.store import DatasetWriter
from geomask.errors import FormatError, UsageError
from geomask.train.config import DataConfig
from geomask.train.data import DataModule

RNG = np.random.default_rng(0)


def _png(path: Path, pixels: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)
    return path


def _folder(root: Path, n: int = 3, size: tuple[int, int] = (8, 12)) -> dict[str, np.ndarray]:
    """``root/cat``, ``root/dog`` with ``n`` PNGs each and one unlabelled PNG at the top; pixels by file name."""
    out = {}
    for cls in ("dog", "cat"):  # written out of order: ids follow the sorted names
        for i in range(n):
            px = RNG.integers(0, 256, (*size, 3), dtype=np.uint8)
            out[str(_png(root / cls / f"{i}.png", px))] = px
    out[str(_png(root / "loose.png", RNG.integers(0, 256, (*size, 3), dtype=np.uint8)))] = None
    return out


def _all(root: Path, **kw) -> tuple[torch.Tensor, torch.Tensor, ImageFolderDataset]:
    ds = ImageFolderDataset(root, **kw)
    images, labels = ds.tensors()
    return images, labels, ds


def test_npz_layouts_labels_classes_and_pixels_round_trip(tmp_path):
    hwc = RNG.integers(0, 256, (5, 6, 7, 3), dtype=np.uint8)
    np.savez(tmp_path / "a.npz", images=hwc, labels=np.array([0, 1, 1, -1, 0]), classes=np.array(["x", "y"]))
    np.savez(tmp_path / "b.npz", images=hwc.transpose(0, 3, 1, 2), labels=np.array([2, 0, 1, 0, 0]))
    np.save(tmp_path / "c.npy", hwc.astype(np.float32) / 255.0)  # floats in 0..1, unlabelled
    srcs = [tmp_path / n for n in ("a.npz", "b.npz", "c.npy")]
    rows, failures = prep_images(srcs, tmp_path / "ds", progress=False)
    assert failures == []
    assert [(r["format"], r["images"], r["shape"], r["classes"], r["status"]) for r in rows] == [
        ("npz", 5, "3x6x7", 2, "written"),
        ("npz", 5, "3x6x7", 3, "written"),
        ("npy", 5, "3x6x7", 0, "written"),
    ]
    images, labels, ds = _all(tmp_path / "ds")
    want = hwc.transpose(0, 3, 1, 2)
    for k in range(3):  # every source: the same pixels, exactly (floats rounded back to the same bytes)
        np.testing.assert_array_equal(images[5 * k : 5 * k + 5].numpy(), want)
    # classes merged by name: a's ["x", "y"], then b's unnamed ids "0", "1", "2"
    assert ds.classes == ["x", "y", "0", "1", "2"]
    assert labels.tolist() == [0, 1, 1, -1, 0, 4, 2, 3, 2, 2, -1, -1, -1, -1, -1]
    manifest = json.loads((tmp_path / "ds" / "manifest.json").read_text())
    assert manifest["kind"] == "images" and manifest["schema_version"] == 1
    shard = torch.load(tmp_path / "ds" / manifest["items"][0]["shard"], weights_only=True)
    assert set(shard) == {"images", "labels"} and shard["images"].dtype == torch.uint8


def test_grey_arrays_and_the_channel_axis_rule(tmp_path):
    grey = RNG.integers(0, 256, (4, 9, 5), dtype=np.uint8)
    np.save(tmp_path / "g.npy", grey)
    rows, failures = prep_images([tmp_path / "g.npy"], tmp_path / "ds", progress=False)
    assert failures == [] and rows[0]["shape"] == "1x9x5"
    np.testing.assert_array_equal(_all(tmp_path / "ds")[0][:, 0].numpy(), grey)
    many = RNG.integers(0, 256, (2, 13, 16, 16), dtype=np.uint8)  # 13 bands, channels first: the shorter axis
    np.save(tmp_path / "m.npy", many)
    rows, _ = prep_images([tmp_path / "m.npy"], tmp_path / "ds13", progress=False)
    assert rows[0]["shape"] == "13x16x16"


def test_png_folder_classes_sorted_loose_images_unlabelled_and_exact_pixels(tmp_path):
    pixels = _folder(tmp_path / "pics")
    _png(tmp_path / "pics" / ".hidden" / "x.png", np.zeros((8, 12, 3), np.uint8))  # skipped
    (tmp_path / "pics" / "README.txt").write_text("not an image")  # ignored
    rows, failures = prep_images([tmp_path / "pics"], tmp_path / "ds", progress=False)
    assert failures == [] and rows[0]["images"] == 7 and rows[0]["format"] == "folder"
    images, labels, ds = _all(tmp_path / "ds")
    assert ds.classes == ["cat", "dog"]
    files = sorted(pixels)  # the reading order: sorted paths
    assert labels.tolist() == [0, 0, 0, 1, 1, 1, -1]
    for img, f in zip(images, files):
        px = pixels[f] if pixels[f] is not None else np.asarray(Image.open(f))
        np.testing.assert_array_equal(img.numpy(), px.transpose(2, 0, 1))
    # grey PNGs and a JPEG read as RGB
    _png(tmp_path / "mixed" / "a" / "grey.png", np.full((8, 12), 77, np.uint8))
    Image.fromarray(np.full((8, 12, 3), 200, np.uint8)).save(tmp_path / "mixed" / "a" / "photo.jpg", quality=95)
    rows, failures = prep_images([tmp_path / "mixed"], tmp_path / "ds2", progress=False)
    images, _, _ = _all(tmp_path / "ds2")
    assert failures == [] and images.shape == (2, 3, 8, 12)
    assert (images[0] == 77).all() and (images[1].float() - 200).abs().max() <= 3


def test_each_bad_input_is_one_line_and_the_others_are_kept(tmp_path):
    pics = tmp_path / "pics"
    _folder(pics, n=2)
    good = (pics / "cat" / "0.png").read_bytes()
    (pics / "cat" / "broken.png").write_bytes(good[: len(good) // 2])  # truncated PNG
    _png(pics / "dog" / "big.png", np.zeros((16, 12, 3), np.uint8))  # another size
    ok = RNG.integers(0, 256, (3, 8, 12, 3), dtype=np.uint8)
    np.savez(tmp_path / "ok.npz", images=ok, labels=np.array([0, 1, 0]))
    np.savez(tmp_path / "rank.npz", images=np.zeros((8, 12), np.uint8))
    np.savez(tmp_path / "size.npz", images=np.zeros((2, 10, 12, 3), np.uint8))
    np.savez(tmp_path / "chan.npz", images=np.zeros((2, 8, 12), np.uint8))
    nan = np.zeros((3, 8, 12, 3), np.float32)
    nan[2, 1, 1, 0] = np.nan
    np.save(tmp_path / "nan.npy", nan)
    np.savez(tmp_path / "labels.npz", images=ok, labels=np.array([0, 1]))
    np.savez(tmp_path / "range.npz", images=ok.astype(np.int32) * 3)
    np.savez(tmp_path / "objects.npz", images=np.array([{"a": 1}], dtype=object))
    (tmp_path / "garbage.npz").write_bytes(b"PK\x03\x04 not really a zip")
    (tmp_path / "notes.txt").write_text("hello")
    bad = ["rank.npz", "size.npz", "chan.npz", "nan.npy", "labels.npz", "range.npz", "objects.npz", "garbage.npz"]
    srcs = [pics, tmp_path / "ok.npz", *(tmp_path / b for b in bad), tmp_path / "notes.txt", tmp_path / "gone.npy"]
    rows, failures = prep_images(srcs, tmp_path / "ds", progress=False)
    assert [Path(r["source"]).name for r in rows] == ["pics", "ok.npz"]
    assert rows[0]["images"] == 5  # the folder's 4 + 1 good images, without the two bad files
    messages = dict(failures)
    assert len(failures) == len(messages) == 2 + len(bad) + 2  # one line each
    for path, msg in failures:
        assert "\n" not in msg and Path(path).name in msg, msg
    expect = {
        "broken.png": "cannot decode the image",
        "big.png": "images are 16×12 (H×W), the dataset's are 8×12: pass --size H W",
        "rank.npz": "images must be N×H×W×C, N×C×H×W or N×H×W, got shape (8, 12)",
        "size.npz": "images are 10×12 (H×W), the dataset's are 8×12",
        "chan.npz": "images have 1 channel(s), the dataset's have 3",
        "nan.npy": "NaN in the images (first in image 2)",
        "labels.npz": "2 labels for 3 images",
        "range.npz": "int32 pixel values from 0 to",
        "objects.npz": "cannot read",
        "garbage.npz": "cannot read",
        "notes.txt": "not an image source",
        "gone.npy": "no such file or folder",
    }
    for path, msg in failures:
        assert expect[Path(path).name] in msg, (path, msg)
    images, _, _ = _all(tmp_path / "ds")
    assert images.shape == (5 + 3, 3, 8, 12)


def test_size_resizes_everything_and_is_remembered(tmp_path):
    _png(tmp_path / "p" / "a" / "wide.png", RNG.integers(0, 256, (10, 30, 3), dtype=np.uint8))
    _png(tmp_path / "p" / "b" / "tall.png", RNG.integers(0, 256, (30, 10, 3), dtype=np.uint8))
    flat = np.full((2, 3, 40, 40), 0.5, np.float32)
    np.save(tmp_path / "flat.npy", flat)
    rows, failures = prep_images(
        [tmp_path / "p", tmp_path / "flat.npy"], tmp_path / "ds", size=(16, 20), progress=False
    )
    assert failures == [] and [r["shape"] for r in rows] == ["3x16x20", "3x16x20"]
    images, _, _ = _all(tmp_path / "ds")
    assert images.shape == (4, 3, 16, 20) and (images[:2] == 128).all()  # items in key order: flat, p
    with pytest.raises(FormatError, match="other settings"):
        prep_images([tmp_path / "flat.npy"], tmp_path / "ds", size=(8, 8), progress=False)
    with pytest.raises(UsageError, match="--size"):
        prep_images([tmp_path / "flat.npy"], tmp_path / "x", size=(0, 8), progress=False)
    with pytest.raises(UsageError, match="--jobs"):
        prep_images([tmp_path / "flat.npy"], tmp_path / "x", jobs=0, progress=False)


def test_resume_skips_written_sources_adds_new_ones_and_rewrites_changed_ones(tmp_path):
    a = RNG.integers(0, 256, (4, 8, 8, 3), dtype=np.uint8)
    np.savez(tmp_path / "a.npz", images=a, labels=np.arange(4) % 2)
    np.save(tmp_path / "b.npy", a[:2])
    prep_images([tmp_path / "a.npz"], tmp_path / "ds", progress=False)
    shard = tmp_path / "ds" / "shards" / "a.pt"
    stamp = shard.stat().st_mtime_ns
    rows, _ = prep_images([tmp_path / "a.npz", tmp_path / "b.npy"], tmp_path / "ds", progress=False)
    assert [r["status"] for r in rows] == ["skipped", "written"] and shard.stat().st_mtime_ns == stamp
    np.savez(tmp_path / "a.npz", images=a[:3], labels=np.arange(3) % 2)  # changed content: written again
    rows, _ = prep_images([tmp_path / "a.npz"], tmp_path / "ds", progress=False)
    assert rows[0]["status"] == "written"
    assert len(ImageFolderDataset(tmp_path / "ds")) == 3 + 2
    # a folder's bad files are reported again when it is skipped
    _folder(tmp_path / "pics", n=1, size=(8, 8))
    (tmp_path / "pics" / "cat" / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    for status in ("written", "skipped"):
        rows, failures = prep_images([tmp_path / "pics"], tmp_path / "ds", progress=False)
        assert rows[0]["status"] == status and [Path(f).name for f, _ in failures] == ["bad.png"]


def test_an_interrupted_run_leaves_whole_shards_and_resumes(tmp_path, monkeypatch):
    for name in ("a", "b", "c"):
        np.save(tmp_path / f"{name}.npy", RNG.integers(0, 256, (3, 8, 8, 3), dtype=np.uint8))
    srcs = [tmp_path / f"{n}.npy" for n in ("a", "b", "c")]
    real_save = torch.save
    calls = []

    def dying_save(obj, f, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:  # killed while writing the second shard
            f.write(b"half a shard")
            raise KeyboardInterrupt
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", dying_save)
    with pytest.raises(KeyboardInterrupt):
        prep_images(srcs, tmp_path / "ds", progress=False)
    monkeypatch.setattr(torch, "save", real_save)
    shards = tmp_path / "ds" / "shards"
    assert sorted(p.name for p in shards.iterdir()) == ["a.json", "a.pt"]  # no temporary or half-written file
    assert not (tmp_path / "ds" / "manifest.json").exists()
    rows, failures = prep_images(srcs, tmp_path / "ds", progress=False)
    assert failures == [] and [r["status"] for r in rows] == ["skipped", "written", "written"]
    assert len(ImageFolderDataset(tmp_path / "ds")) == 9


def test_large_sources_are_cut_into_shards_and_stale_parts_removed(tmp_path, monkeypatch):
    monkeypatch.setattr(prep_module, "SHARD_BYTES", 3 * 4 * 4 * 4)  # 4 images of 3x4x4 per shard
    x = RNG.integers(0, 256, (10, 4, 4, 3), dtype=np.uint8)
    np.savez(tmp_path / "a.npz", images=x, labels=np.arange(10) % 3)
    prep_images([tmp_path / "a.npz"], tmp_path / "ds", progress=False)
    manifest = json.loads((tmp_path / "ds" / "manifest.json").read_text())
    assert [r["key"] for r in manifest["items"]] == ["a", "a+001", "a+002"]
    images, labels, _ = _all(tmp_path / "ds")
    np.testing.assert_array_equal(images.numpy(), x.transpose(0, 3, 1, 2))
    assert labels.tolist() == (np.arange(10) % 3).tolist()
    np.savez(tmp_path / "a.npz", images=x[:5], labels=np.arange(5) % 3)
    prep_images([tmp_path / "a.npz"], tmp_path / "ds", progress=False)
    assert sorted(p.name for p in (tmp_path / "ds" / "shards").glob("*.pt")) == ["a+001.pt", "a.pt"]
    assert len(ImageFolderDataset(tmp_path / "ds")) == 5


def test_reader_normalises_by_the_folder_statistics_and_collates_a_grid_batch(tmp_path):
    x = RNG.integers(0, 256, (6, 8, 8, 3), dtype=np.uint8)
    x[..., 2] = 9  # a constant channel: centred, not divided by ~0
    np.savez(tmp_path / "a.npz", images=x, labels=np.arange(6) % 2)
    prep_images([tmp_path / "a.npz"], tmp_path / "ds", progress=False)
    ds = ImageFolderDataset(tmp_path / "ds")
    f = x.astype(np.float64) / 255
    np.testing.assert_allclose(ds.mean.numpy(), f.mean((0, 1, 2)), atol=1e-6)
    np.testing.assert_allclose(ds.std.numpy()[:2], f.std((0, 1, 2))[:2], atol=1e-6)
    assert ds.std[2] == 1.0
    batch = collate_images([ds[i] for i in range(6)])
    assert isinstance(batch, ImageBatch) and batch.values.dtype == torch.float32 and batch.values.shape == (6, 3, 8, 8)
    assert batch.patch == (8, 8)  # 16 does not divide 8: its largest divisor that does
    v = batch.values.double()
    np.testing.assert_allclose(v.mean((0, 2, 3))[:2].numpy(), 0, atol=1e-6)
    np.testing.assert_allclose(v.std((0, 2, 3), unbiased=False)[:2].numpy(), 1, atol=1e-5)
    assert batch.labels.tolist() == [0, 1, 0, 1, 0, 1] and batch.augment is not None
    none = ImageFolderDataset(tmp_path / "ds", ImagesOptions(normalize="none", augment=False))
    b = collate_images([none[0]])
    assert b.augment is None and torch.equal(b.values[0], torch.from_numpy(x[0]).permute(2, 0, 1).float() / 255)
    # the data.images section: missing keys take the defaults, bad values are one-line usage errors
    assert images_options(SimpleNamespace(images=SimpleNamespace(flip=False))) == ImagesOptions(flip=False)
    assert images_options(SimpleNamespace()) == ImagesOptions()
    with pytest.raises(UsageError, match="normalize must be one of dataset, imagenet, none"):
        images_options(SimpleNamespace(images=SimpleNamespace(normalize="zscore")))
    with pytest.raises(UsageError, match="crop scale"):
        images_options(SimpleNamespace(images=SimpleNamespace(crop_scale=[0.0, 1.0])))
    DatasetWriter(tmp_path / "scan", "scan", 1, {}).finalize()
    with pytest.raises(FormatError, match="expected 'images'"):
        ImageFolderDataset(tmp_path / "scan")


def test_images_kind_trains_from_a_prep_folder_through_the_data_module(tmp_path):
    np.savez(tmp_path / "a.npz", images=RNG.integers(0, 256, (10, 16, 16, 3), dtype=np.uint8))
    prep_images([tmp_path / "a.npz"], tmp_path / "ds", progress=False)
    kind = get_data_kind("images")
    assert kind.reads_folders and kind.manifests == ("images",)
    dm = DataModule(DataConfig(kind="auto", roots=[str(tmp_path / "ds")], batch_size=4), 0)
    dm.setup()
    assert dm.describe() == "10 images: 10 train, 0 validation"
    batch = next(iter(dm.train_dataloader()))
    assert isinstance(batch, ImageBatch) and batch.values.shape == (4, 3, 16, 16) and batch.patch == (16, 16)
    assert (batch.labels == -1).all()
    from lightning.fabric.utilities.apply_func import move_data_to_device

    moved = move_data_to_device(batch, torch.device("cpu"))  # Lightning moves it with .to (it is frozen)
    assert isinstance(moved, ImageBatch) and torch.equal(moved.values, batch.values)


def test_cli_prints_a_table_one_error_line_per_failure_and_exit_status(tmp_path, capsys):
    np.savez(tmp_path / "a.npz", images=RNG.integers(0, 256, (3, 8, 8, 3), dtype=np.uint8))
    np.save(tmp_path / "nan.npy", np.full((1, 8, 8, 3), np.nan, np.float32))
    argv = ["prep", "images", str(tmp_path / "a.npz"), str(tmp_path / "nan.npy"), "--out", str(tmp_path / "ds")]
    assert main([*argv, "--quiet"]) == 1
    cap = capsys.readouterr()
    assert cap.err.splitlines() == [f"error: {tmp_path / 'nan.npy'}: NaN in the images (first in image 0)"]
    assert "a.npz  npz" in cap.out and cap.out.rstrip().endswith(f"1 sources (3 images) in {tmp_path / 'ds'}, 1 failed")
    assert main(["prep", "images", str(tmp_path / "a.npz"), "--out", str(tmp_path / "ds"), "--quiet"]) == 0
    assert "skipped" in capsys.readouterr().out


def test_cifar10_subset(shared_data, tmp_path, capsys):
    src = shared_data / "images" / "cifar10" / "cifar10_test_2k.npz"
    if not src.is_file():
        pytest.skip(f"{src} is not present")
    assert main(["prep", "images", str(src), "--out", str(tmp_path / "c"), "--quiet"]) == 0
    assert "2000  3x32x32       10  written" in capsys.readouterr().out
    images, labels, ds = _all(tmp_path / "c")
    with np.load(src) as z:
        np.testing.assert_array_equal(images.numpy(), z["images"].transpose(0, 3, 1, 2))
        np.testing.assert_array_equal(labels.numpy(), z["labels"])
        assert ds.classes == [str(c) for c in z["classes"]]
    assert ds.classes[:2] == ["airplane", "automobile"] and np.bincount(labels.numpy()).tolist() == [200] * 10
    assert ((ds.mean > 0.4) & (ds.mean < 0.55)).all() and ((ds.std > 0.2) & (ds.std < 0.3)).all()


def test_parallel_jobs_give_the_same_dataset_and_the_first_good_source_sets_the_size(tmp_path):
    np.save(tmp_path / "0_bad.npy", np.full((2, 8, 8, 3), np.inf, np.float32))  # fails: does not set the size
    for name, h in (("1_a", 6), ("2_b", 6), ("3_c", 7)):
        np.save(tmp_path / f"{name}.npy", RNG.integers(0, 256, (2, h, 8, 3), dtype=np.uint8))
    srcs = sorted(tmp_path.glob("*.npy"))
    one = prep_images(srcs, tmp_path / "one", progress=False)
    two = prep_images(srcs, tmp_path / "two", jobs=2, progress=False)
    assert one == two
    assert [Path(s).name for s, _ in one[1]] == ["0_bad.npy", "3_c.npy"]
    assert "infinite values" in one[1][0][1] and "the dataset's are 6×8" in one[1][1][1]
    assert torch.equal(_all(tmp_path / "one")[0], _all(tmp_path / "two")[0])
