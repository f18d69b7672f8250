"""Fixtures of the training-engine tests: a tiny config on random AIGs that trains in about a second."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

TINY: dict[str, Any] = {
    "seed": 3,
    "method": {"name": "mgvga", "hidden": 16, "layers": 2, "dropout": 0.2, "verilog_dim": 8, "cross_heads": 2},
    "data": {
        "kind": "synthetic",
        "batch_size": 3,
        "synthetic": {"graphs": 10, "ands": [8, 24], "verilog_dim": 8, "verilog_fraction": 0.5},
    },
    "optim": {"scheduler": "cosine", "warmup_steps": 2, "schedule_steps": 8},
    "trainer": {
        "max_steps": 8,
        "checkpoint_every": 3,
        "log_every": 1,
        "progress_bar": False,
        "summary": False,
        "accelerator": "cpu",
        "loggers": ["csv"],
        "threads": 1,
    },
}


@pytest.fixture
def tiny_config(tmp_path: Path):
    """``tiny_config(name, **sections)``: TINY with ``trainer.out_dir = tmp_path/name`` and sections updated."""

    def make(name: str = "run", **sections: dict[str, Any]) -> dict[str, Any]:
        cfg = copy.deepcopy(TINY)
        for key, value in sections.items():
            if isinstance(value, dict):
                cfg[key].update(value)
            else:
                cfg[key] = value
        cfg["trainer"]["out_dir"] = str(tmp_path / name)
        return cfg

    return make
