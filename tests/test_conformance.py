"""Every registered (model, backend) passes the conformance kit, with no per-model code."""

from __future__ import annotations

import os

import pytest

from genzoo.registry import get_registry
from genzoo.testing import check_model

PAIRS = sorted(get_registry().models)


@pytest.mark.parametrize(("name", "backend"), PAIRS, ids=[f"{n}-{b}" for n, b in PAIRS])
def test_conformance(name: str, backend: str, tmp_path) -> None:
    check_model(name, backend, tmp_path)


def test_registry_has_builtin_families() -> None:
    for family in ("vae", "gan", "transformer"):
        assert (family, "torch") in PAIRS and (family, "keras") in PAIRS


@pytest.mark.skipif(os.environ.get("KERAS_BACKEND") == "torch",
                    reason="this run already uses Keras's torch backend")
def test_keras_models_conform_on_the_torch_keras_backend(tmp_path) -> None:
    """The same kit, in a subprocess where Keras runs on PyTorch instead of TensorFlow."""
    import subprocess
    import sys

    env = {**os.environ, "KERAS_BACKEND": "torch"}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", __file__,
         "-k", "keras and test_conformance", "--basetemp", str(tmp_path / "t")],
        capture_output=True, text=True, env=env, timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "passed" in result.stdout
