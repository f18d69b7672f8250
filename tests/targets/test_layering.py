"""targets and losses sit below nn, datasets, methods and train: importing them loads none of those."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import geomask

CODE = """
import sys
import geomask.losses, geomask.targets
high = ("geomask.nn", "geomask.datasets", "geomask.methods", "geomask.train", "geomask.eval", "geomask.cli")
print(sorted(m for m in sys.modules if m.startswith(high)))
"""


def test_losses_and_targets_import_nothing_above_them():
    env = dict(os.environ)
    env["PYTHONPATH"] = str(Path(geomask.__file__).resolve().parents[1]) + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"
