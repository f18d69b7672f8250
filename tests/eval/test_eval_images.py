"""``geomask eval images`` on tiny generated shapes: the JSON's shape, the probes against chance on a separable
toy set, the pretraining loop against the untrained model, reconstructions, the picture grid, and a bad path."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from geomask.cli import main
from geomask.datasets.generated_images import generate_shapes
from geomask.eval.image_grid import grid_pixels, grid_size, write_image_grid
from geomask.eval.images import (
    ImageSet,
    _batch,
    _build,
    image_methods,
    knn_top1,
    linear_top1,
    method_config,
    pretrain,
    reconstruct,
)

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = {
    "method": {
        "dim": 48,
        "depth": 1,
        "heads": 2,
        "decoder_dim": 24,
        "decoder_depth": 1,
        "decoder_heads": 2,
        "image_size": 16,
        "decoder_width": 16,
    },
    "data": {"batch_size": 16},
}


@pytest.fixture(scope="module")
def shapes(tmp_path_factory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("eval_images")
    x, y = generate_shapes(160, 16, 0)  # [N, H, W, 3] uint8, classes i mod 10
    np.savez(root / "train.npz", images=x[:120], labels=y[:120])
    np.savez(root / "test.npz", images=x[120:], labels=y[120:])
    cfg = root / "tiny.yaml"
    cfg.write_text(json.dumps(TINY))  # JSON is YAML
    return {"train": str(root / "train.npz"), "test": str(root / "test.npz"), "cfg": str(cfg), "root": str(root)}


def _blobs(seed: int, n: int, k: int = 4, d: int = 16, spread: float = 0.6) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(k, d, generator=torch.Generator().manual_seed(123)) * 2
    y = torch.arange(n) % k
    return centres[y] + spread * torch.randn(n, d, generator=g), y


def test_probes_beat_chance_on_separable_features_and_not_on_shuffled_labels():
    a, ya = _blobs(0, 200)
    b, yb = _blobs(1, 100)
    assert linear_top1(a, ya, b, yb, seed=0, epochs=100) > 90  # chance is 25 %
    assert knn_top1(a, ya, b, yb) > 90
    shuffled = ya[torch.randperm(len(ya), generator=torch.Generator().manual_seed(0))]
    assert knn_top1(a, shuffled, b, yb) < 50  # no signal, no score


def test_subset_of_a_class_sorted_file_draws_every_class():
    labels = torch.arange(10).repeat_interleave(50)  # sorted by class, as the CIFAR-10 subsets are
    full = ImageSet(torch.zeros(500, 3, 8, 8, dtype=torch.uint8), labels, [str(i) for i in range(10)], "x")
    part = full.subset(100)
    assert len(part.labels) == 100 and len(part.labels.unique()) == 10
    assert torch.equal(part.labels, full.subset(100).labels) and full.subset(None) is full


def test_image_methods_come_from_the_registry():
    found = image_methods()
    assert found[:3] == ["mae", "simmim", "spark"]  # the default order first
    from geomask.methods.registry import method_data_kinds

    assert all("images" in method_data_kinds(m) for m in found)


def test_pretraining_lowers_the_loss_against_the_untrained_model():
    torch.set_num_threads(1)
    x, _ = generate_shapes(64, 16, 1)
    v = torch.from_numpy(x).permute(0, 3, 1, 2).float() / 255
    v = (v - v.mean((0, 2, 3), keepdim=True)) / v.std((0, 2, 3), keepdim=True)
    cfg = method_config("mae", TINY)
    cfg["optim"]["warmup_steps"] = 0

    def loss(model) -> float:
        model.eval()
        with torch.no_grad():
            return float(model(_batch(v), torch.Generator().manual_seed(5))["loss"])

    untrained = _build("mae", cfg, 0, 40)
    trained = _build("mae", cfg, 0, 40)
    pretrain(trained, v, cfg, 40, seed=0)
    assert loss(trained) < 0.9 * loss(untrained)


@pytest.mark.parametrize("name", ["mae", "spark"])
def test_reconstruction_keeps_the_visible_patches_and_blanks_the_masked(name):
    torch.manual_seed(0)
    model = _build(name, method_config(name, TINY), 0, 1).eval()
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        masked, shown = reconstruct(model, _batch(x), torch.Generator().manual_seed(0))
    assert masked.shape == shown.shape == x.shape
    blank = (masked == 0).all(1)  # [B, H, W]: masked pixels
    assert 0.3 < blank.float().mean() < 0.9
    keep = ~blank[:, None].expand_as(x)
    assert torch.equal(shown[keep], x[keep])  # visible pixels are the original's
    assert not torch.allclose(shown[~keep], x[~keep])  # masked ones are predicted


def test_grid_is_tiled_in_row_order(tmp_path):
    rows = [torch.full((3, 1, 4, 5), v) for v in (0.0, 0.5, 1.0)]
    px = grid_pixels(rows, scale=2)
    assert px.shape == (*grid_size(3, 3, 4, 5, 2), 3)
    gap = 2
    assert (px[gap, gap] == 0).all() and (px[gap + 8 + gap, gap] == 128).all()
    path = write_image_grid(rows, tmp_path / "g.png", scale=2)
    from PIL import Image

    with Image.open(path) as im:
        assert im.format == "PNG" and im.size == (px.shape[1], px.shape[0])


def test_cli_writes_the_json_table_and_grids(shapes, tmp_path, capsys):
    torch.set_num_threads(1)
    out, plots = tmp_path / "r.json", tmp_path / "plots"
    argv = ["eval", "images", "--train", shapes["train"], "--test", shapes["test"], "--json", str(out)]
    argv += ["--methods", "mae", "spark", "--config", shapes["cfg"], "--pretrain-steps", "3"]
    argv += ["--finetune-steps", "3", "--probe-epochs", "30", "--plots", str(plots), "--quiet"]
    assert main(argv) == 0, capsys.readouterr().err
    text = capsys.readouterr().out
    assert "finetune" in text and "mae" in text
    r = json.loads(out.read_text())
    m = r["methods"]
    assert set(m) == {"raw", "random:mae", "scratch:mae", "mae", "random:spark", "scratch:spark", "spark"}
    for name, per in m.items():
        want = {"raw": {"linear", "knn"}, "random": {"linear", "knn"}, "scratch": {"finetune"}}.get(
            name.split(":")[0], {"linear", "knn", "finetune"}
        )
        assert set(per) == want | {"seconds"}, name
        for k in want:
            assert set(per[k]) == {"top1", "top1_std"} and 0 <= per[k]["top1"] <= 100
    assert r["baselines"]["spark"] == {"random": "random:spark", "scratch": "scratch:spark"}
    for name in ("mae", "spark"):
        from PIL import Image

        with Image.open(plots / f"{name}_reconstructions.png") as im:
            assert im.format == "PNG" and im.size == grid_size(3, 8, 16, 16)[::-1]


def test_bad_train_path_is_one_line(shapes, tmp_path, capsys):
    out = tmp_path / "r.json"
    missing = str(Path(shapes["root"]) / "nope.npz")
    code = main(["eval", "images", "--train", missing, "--test", shapes["test"], "--json", str(out)])
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert code == 1 and len(err) == 1 and err[0].startswith("error: ") and "nope.npz" in err[0]
    assert not out.exists()


def test_a_config_naming_another_encoder_replaces_the_shipped_method_section():
    from geomask.eval.images import method_config

    cnn = method_config("simmim", {"method": {"encoder": "cnn", "backbone": "tiny"}})["method"]
    assert cnn == {"name": "simmim", "encoder": "cnn", "backbone": "tiny"}  # no ViT keys left behind
    vit = method_config("simmim", {"method": {"encoder": "vit", "depth": 2}})["method"]
    assert vit["depth"] == 2 and vit["dim"] == method_config("simmim")["method"]["dim"]  # merged into the shipped one


def test_pretraining_steps_are_per_method_unless_given():
    from geomask.eval.image_command import add_image_eval_parser
    from geomask.eval.images import DEFAULT_PRETRAIN_STEPS, PRETRAIN_STEPS, ImageEvalBudget

    own = ImageEvalBudget()
    assert own.steps_for("spark") == PRETRAIN_STEPS["spark"] != DEFAULT_PRETRAIN_STEPS
    assert own.steps_for("mae") == DEFAULT_PRETRAIN_STEPS
    given = ImageEvalBudget(pretrain_steps=7)
    assert given.steps_for("spark") == given.steps_for("mae") == 7
    import argparse

    sub = argparse.ArgumentParser().add_subparsers()
    add_image_eval_parser(sub)
    action = next(a for a in sub.choices["images"]._actions if a.dest == "pretrain_steps")
    assert action.default is None
    for name, steps in PRETRAIN_STEPS.items():  # the help states every per-method default
        assert f"{name} {steps}" in action.help
    assert f"the others {DEFAULT_PRETRAIN_STEPS}" in action.help


def test_pretraining_crops_follow_the_config(monkeypatch):
    import geomask.datasets.image_augment as image_augment

    seen = []
    real = image_augment.ImageAugment

    def spy(*args):
        seen.append(args)
        return real(*args)

    monkeypatch.setattr(image_augment, "ImageAugment", spy)
    cfg = method_config("mae", TINY)
    model = _build("mae", cfg, 0, 1)
    x = torch.randn(4, 3, 16, 16)
    pretrain(model, x, cfg, 1, seed=0)
    assert seen[-1][0] == (0.2, 1.0)  # MAE's default
    cfg["data"]["images"] = {"crop_scale": [0.67, 1.0]}  # SparK's ImageNet recipe
    pretrain(model, x, cfg, 1, seed=0)
    assert seen[-1][0] == (0.67, 1.0)
