"""Fixtures shared by the tests (the environment is set in the root conftest.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture
def shared_data() -> Path:
    """The checksummed real datasets: ``GENZOO_DATA_DIR`` (the root conftest points it at
    ``../shared/data`` when that is there; CI always has it beside the clone)."""
    folder = Path(os.environ.get("GENZOO_DATA_DIR") or SHARED_DATA)
    if not (folder / "mnist").is_dir():
        pytest.fail(f"the real datasets are not at {folder}: the tests need mnist/, "
                    "fashion-mnist/ and tinyshakespeare/ there (see ../shared/data/README.md), "
                    "or GENZOO_DATA_DIR pointing at a copy")
    return folder


@pytest.fixture
def fresh_registry():
    """Reload plugins before and after a test that changes sys.path or the environment."""
    from genzoo import registry

    registry.reset()
    yield registry
    registry.reset()
