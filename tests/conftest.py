"""Shared fixtures. The reference data lives in ../shared/data (override with CYTOPHEN_SHARED_DATA);
tests that need it skip with a message saying so when it is absent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("CYTOPHEN_SHARED_DATA", ROOT.parent / "shared" / "data")).resolve()


def shared_path(*parts: str) -> Path:
    """A path under the shared data folder, or skip the test if the folder is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared test data not found at {SHARED_DATA} (set CYTOPHEN_SHARED_DATA)")
    p = SHARED_DATA.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"{p} is absent from the shared test data")
    return p


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared test data not found at {SHARED_DATA} (set CYTOPHEN_SHARED_DATA)")
    return SHARED_DATA
