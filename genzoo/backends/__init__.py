"""The registry of backend adapters: the only code in the core that touches a framework.

Each adapter is a module that provides ``genzoo.protocols.Backend``: ``build(spec, config,
info, *, seed, device) -> Generator``, ``make_trainer(generator, train_config) -> Trainer``
and ``versions() -> dict[str, str]`` (for ``meta.json``). ``ADAPTERS`` maps a backend's
name to its module; the architecture page says how a third one would be added.
"""

from __future__ import annotations

from importlib import import_module
from typing import cast

from genzoo.errors import GenzooError
from genzoo.protocols import Backend

ADAPTERS = {"torch": "genzoo.backends.torch", "keras": "genzoo.backends.keras"}
INSTALL_HINT = {"torch": "pip install 'genzoo[torch]'", "keras": "pip install 'genzoo[keras]'"}


KERAS_BACKENDS = ("tensorflow", "torch")  # what genzoo's Keras adapter supports and tests
KERAS_MULTIPROCESS = ("multi-process Keras training needs KERAS_BACKEND=torch; on TensorFlow "
                      "run one process, which trains on every local GPU through "
                      "MirroredStrategy")


def keras_backend_name() -> str:
    """The backend Keras will choose (``KERAS_BACKEND``, else ``keras.json``), unimported."""
    import json
    import os
    from pathlib import Path

    if os.environ.get("KERAS_BACKEND"):
        return os.environ["KERAS_BACKEND"]
    home = Path(os.environ.get("KERAS_HOME") or Path.home() / ".keras")
    try:
        return str(json.loads((home / "keras.json").read_text()).get("backend", "tensorflow"))
    except (OSError, ValueError, AttributeError):
        return "tensorflow"


def get_backend(name: str) -> Backend:
    """Import and return a backend adapter; a missing framework is a clear error."""
    chosen = keras_backend_name() if name == "keras" else None
    if chosen is not None and chosen not in KERAS_BACKENDS:
        raise GenzooError(f"Keras's backend is '{chosen}' (KERAS_BACKEND or keras.json); "
                          f"genzoo's Keras models run on {' or '.join(KERAS_BACKENDS)}")
    try:
        return cast(Backend, import_module(ADAPTERS[name]))
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.split(".")[0] in ("torch", "keras", "tensorflow"):
            raise GenzooError(
                f"the {name} backend needs {exc.name}, which is not installed: {INSTALL_HINT[name]}"
            ) from None
        raise
