"""Shared fixtures: where ../shared/data is, one torch thread, and small AIGs written here."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture
def shared_data() -> Path:
    """``../shared/data`` beside the repository; skips the test when it is absent."""
    if not SHARED.is_dir():
        pytest.skip(f"real data not present at {SHARED} (tests on real benchmarks need ../shared/data)")
    return SHARED


@pytest.fixture
def one_thread():
    """One intra-op torch thread for the test, the previous count restored after."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
