"""MethodModule: the step hook runs after every optimiser step and before checkpoints are written; the global
RNG is forked and seeded per step, so methods outside the base that draw from it still resume exactly."""

from __future__ import annotations

import torch
from torch import nn

from geomask.methods.base import Method
from geomask.train import train
from geomask.train.checkpoint import load_weights


class Counting(Method):
    """A linear score of the gate types; counts steps in a buffer from the step hook, never in forward."""

    data_kinds = ("synthetic",)

    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.Embedding(5, 4)
        self.register_buffer("steps_done", torch.zeros((), dtype=torch.long))
        self.forward_steps: list[int] = []  # steps_done as each training forward saw it
        self.hook_steps: list[int] = []

    def loss_terms(self, batch, generator):
        if self.training:
            self.forward_steps.append(int(self.steps_done))
        return {"loss": self.encoder(batch.node_type).square().mean()}

    def features(self, batch):
        return self.encoder(batch.node_type)

    def on_train_step_end(self, step: int) -> None:
        assert not torch.is_grad_enabled()
        self.hook_steps.append(step)
        self.steps_done += 1


def test_step_hook_runs_after_each_optimiser_step_and_before_the_checkpoint(tiny_config):
    m = Counting()
    r = train(tiny_config("hook", trainer={"max_steps": 7, "checkpoint_every": 3}), method=m)
    assert r.steps == 7
    assert m.hook_steps == list(range(7))  # the index of the step just taken, once per step
    assert m.forward_steps == list(range(7))  # forward k sees the hooks of steps 0 .. k-1
    ckpts = r.out_dir / "checkpoints"
    # the checkpoint written at the end of step 3 holds that step's hook: resuming from it is exact
    assert int(load_weights(ckpts / "step00000003.ckpt")["steps_done"]) == 3
    assert int(load_weights(ckpts / "step00000006.ckpt")["steps_done"]) == 6
    assert int(load_weights(r.model_path)["steps_done"]) == 7
    assert r.encoder_path is not None and set(load_weights(r.encoder_path)) == {"weight"}


class GlobalNoise(nn.Module):
    """Not a Method: its loss draws from the global RNG (as a plain dropout would)."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.ones(()))
        self.draws: list[float] = []

    def forward(self, batch, generator=None):
        noise = torch.rand(())
        if self.training:
            self.draws.append(float(noise))
        return {"loss": (self.w - noise).square()}


def test_global_rng_is_seeded_per_step_and_restored(tiny_config):
    full = GlobalNoise()
    train(tiny_config("full", trainer={"max_steps": 4}), method=full)
    assert len(set(full.draws)) == 4  # a fresh stream every step
    first, rest = GlobalNoise(), GlobalNoise()
    cfg = tiny_config("parts", trainer={"max_steps": 4})
    train(cfg, ["trainer.max_steps=2"], method=first)
    r = train(cfg, method=rest)
    assert r.resumed_from == 2
    assert first.draws + rest.draws == full.draws  # the resumed run draws what the uninterrupted one drew


def test_logged_batch_size_counts_samples_of_every_batch_type():
    from torch_geometric.data import Batch, Data

    from geomask.grids import GridBatch
    from geomask.points.augment import ScenePoints
    from geomask.train.module import _num_graphs

    graphs = Batch.from_data_list([Data(x=torch.zeros(2, 1)), Data(x=torch.zeros(3, 1))])
    scenes = ScenePoints(torch.zeros(5, 3), torch.zeros(5, 3), torch.tensor([0, 0, 1, 2, 2]))
    grid = GridBatch(torch.zeros(4, 3, 8, 8), patch_size=4)
    assert [_num_graphs(b) for b in (graphs, scenes, grid, torch.zeros(6, 10, 3))] == [2, 3, 4, 6]
