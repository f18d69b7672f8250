"""The README's torchrun example: two CPU processes launched by torchrun train the shipped MGM config over gloo
(Lightning sees torchrun's environment and starts no ranks of its own) and rank 0 writes one checkpoint."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow  # two ranks importing torch + Lightning and training 2 steps: ~38 s on the loaded machine
def test_torchrun_two_cpu_processes(tmp_path):
    torchrun = Path(sys.executable).with_name("torchrun")
    geomask = shutil.which("geomask", path=str(Path(sys.executable).parent)) or shutil.which("geomask")
    if not torchrun.exists() or geomask is None:
        pytest.skip("torchrun or the geomask command is not installed beside this Python")
    out, logs = tmp_path / "run", tmp_path / "logs"
    argv = [str(torchrun), "--standalone", "--nproc_per_node", "2", "--log-dir", str(logs), "--redirects", "3"]
    argv += ["--no-python", geomask, "pretrain", str(REPO / "configs" / "mgm_cpu.yaml"), "--set"]
    # random AIGs (data.kind: synthetic) instead of the corpus the config builds on first use: same model, no build
    argv += ["trainer.max_steps=2", "trainer.devices=2", "trainer.strategy=ddp", f"trainer.out_dir={out}"]
    argv += ["trainer.progress_bar=false", "trainer.threads=1", "data.kind=synthetic"]
    drop = ("LOCAL_RANK", "RANK", "WORLD_SIZE", "NODE_RANK", "MASTER_ADDR", "MASTER_PORT", "GROUP_RANK")
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env["OMP_NUM_THREADS"] = "1"
    proc = subprocess.Popen(
        argv, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )  # torchrun and both ranks share a process group: ended together
    try:
        text, _ = proc.communicate(timeout=240)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail("torchrun's two processes did not finish in 240 s")
    assert proc.returncode == 0, text[-3000:]

    def log(rank: int, stream: str) -> str:
        (path,) = logs.glob(f"*/attempt_0/{rank}/{stream}.log")
        return path.read_text()

    for rank in (0, 1):  # each rank joined the gloo group under torchrun's rank
        assert f"Initializing distributed: GLOBAL_RANK: {rank}, MEMBER: {rank + 1}/2" in log(rank, "stderr")
    assert "trained 2 steps on 2 process(es)" in log(0, "stdout")
    assert "trained" not in log(1, "stdout")  # only rank 0 reports and writes
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["last.ckpt"]
    ckpt = torch.load(out / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert ckpt["global_step"] == 2
    assert torch.load(out / "encoder.pt", weights_only=True)
