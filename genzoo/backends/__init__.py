"""Backend adapters: the only code in the core that touches a framework.

Each adapter module exposes the same functions:

- ``build(spec, config, info, *, seed, device) -> Generator``
- ``make_trainer(generator, train_config) -> Trainer``
- ``versions() -> dict[str, str]``: framework versions for ``meta.json``
"""

from __future__ import annotations

from importlib import import_module
from types import ModuleType

from genzoo.errors import GenzooError

ADAPTERS = {"torch": "genzoo.backends.torch", "keras": "genzoo.backends.keras"}
INSTALL_HINT = {"torch": "pip install 'genzoo[torch]'", "keras": "pip install 'genzoo[keras]'"}


def get_backend(name: str) -> ModuleType:
    """Import and return a backend adapter; a missing framework is a clear error."""
    try:
        return import_module(ADAPTERS[name])
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.split(".")[0] in ("torch", "keras", "tensorflow"):
            raise GenzooError(
                f"the {name} backend needs {exc.name}, which is not installed: {INSTALL_HINT[name]}"
            ) from None
        raise
