"""Shared fixtures: where ../shared/data is, and small AIGs written here."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture
def shared_data() -> Path:
    """``../shared/data`` beside the repository; skips the test when it is absent."""
    if not SHARED.is_dir():
        pytest.skip(f"real data not present at {SHARED} (tests on real benchmarks need ../shared/data)")
    return SHARED
