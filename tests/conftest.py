"""Fixtures shared by the tests (the environment is set in the root conftest.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture
def shared_data() -> Path:
    """The checksummed real datasets; CI always has them beside the clone."""
    if not (SHARED_DATA / "mnist").is_dir():
        pytest.fail(f"real datasets not found at {SHARED_DATA}; see ../shared/data/README.md")
    return SHARED_DATA


@pytest.fixture
def fresh_registry():
    """Reload plugins before and after a test that changes sys.path or the environment."""
    from genzoo import registry

    registry.reset()
    yield registry
    registry.reset()
