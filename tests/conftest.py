"""Fixtures shared by the tests (the environment is set in the root conftest.py)."""

from __future__ import annotations

import os
from pathlib import Path

# The tests only (set before anything imports torch): OpenMP threads that sleep instead of
# spinning when idle. On a shared or busy 2-core runner spinning threads make every tiny
# torch step wait for a core (5-15x slower); the same two threads and code paths run, and
# subprocesses inherit it. Not for the benchmarks: on an idle machine it makes torch's
# small steps up to 1.7x slower (the Transformer's 37.6 against 62.7 ms), so they measure
# the default.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

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
