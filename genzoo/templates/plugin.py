"""The plugin template: ``genzoo plugin new NAME [--backend torch|keras]``.

The generated package is a working model (a small variational autoencoder on images)
that already trains under ``genzoo train NAME``; its authors replace the network with
theirs. By default it has both backends side by side: the same network as a torch
``nn.Module`` (``torch_model.py``) and as a ``keras.Model`` (``keras_model.py``), with one
config, registered by one entry-point plugin as one ``ModelSpec`` per backend. Its tests
(``pip install -e './genzoo-NAME[test]'``, then ``python -m pytest``) run genzoo's
conformance kit on each backend it has.
"""

from __future__ import annotations

import contextlib
import errno
import re
import secrets
import shutil
from collections.abc import Iterable
from pathlib import Path
from string import Template

from genzoo.errors import GenzooError
from genzoo.templates.networks import KERAS_MODEL, TORCH_MODEL
from genzoo.version import __version__

BACKENDS = ("torch", "keras")  # the order a two-backend plugin lists them in

PYPROJECT = Template('''\
[build-system]
requires = ["setuptools>=69"]
build-backend = "setuptools.build_meta"

[project]
name = "genzoo-$name"
version = "0.1.0"
description = "A genzoo model plugin: $name"
requires-python = ">=3.10"
dependencies = ["genzoo[$extras]>=$genzoo_version"]  # genzoo and the $framework_note

[project.optional-dependencies]
test = ["pytest>=8"]  # pip install -e '.[test]', then python -m pytest

# This line is what makes genzoo find the plugin.
[project.entry-points.genzoo]
$name = "$package"

[tool.setuptools]
packages = ["$package"]

[tool.pytest.ini_options]
filterwarnings = [  # the frameworks' own deprecation noise
    "ignore::DeprecationWarning:tensorflow.*",
    "ignore::DeprecationWarning:keras.*",
]
''')

GITIGNORE = """\
runs/
__pycache__/
*.egg-info/
.pytest_cache/
"""

INIT = Template('''\
"""genzoo plugin: $name."""

from __future__ import annotations

from genzoo import hookimpl
from genzoo.registry import ModelSpec
from $package.config import PRESETS, Config

# One spec per backend, with the same name, config and presets: only the builder (an
# import path, imported when the model is built, so `genzoo list` imports no framework)
# differs.
BUILDERS = {
$builders}

SPECS = tuple(
    ModelSpec(
        name="$name",
        backend=backend,
        kind="image",
        config=Config,
        builder=builder,
        presets=PRESETS,
        default_preset="default",
        default_dataset="digits",
        summary="$name: describe your model in one line",
    )
    for backend, builder in BUILDERS.items()
)


@hookimpl
def register_models(register):
    for spec in SPECS:
        register(spec)
''')

CONFIG = Template('''\
"""Config and presets of $name, shared by its backends (no framework imports: `genzoo
list` reads this)."""

from __future__ import annotations

from dataclasses import dataclass

from genzoo.config import ModelConfig, require


@dataclass(frozen=True)
class Config(ModelConfig):
    latent_dim: int = 8  # dimensions of z
    hidden: int = 128  # width of the hidden layers

    def validate(self) -> None:
        require(self.latent_dim > 0, "latent_dim", "must be positive")
        require(self.hidden > 0, "hidden", "must be positive")


PRESETS = {
    "default": {"latent_dim": 8, "hidden": 128, "epochs": 20, "batch_size": 64, "lr": 1e-3},
    # The conformance kit trains this one for a few steps: keep it small.
    "tiny": {"latent_dim": 4, "hidden": 32, "steps": 30, "batch_size": 32, "lr": 3e-3,
             "log_every": 10, "checkpoint_every": 10},
}
''')

TEST = Template('''\
"""genzoo's conformance kit checks that $name honours the plugin contract on
$on_backends."""

import pytest

from genzoo.testing import check_model

BACKENDS = [$backend_list]


@pytest.mark.parametrize("backend", BACKENDS)
def test_conformance(backend, tmp_path):
    check_model("$name", backend, tmp_path)
''')

TEST_BOTH = Template('''\


def test_the_backends_build_the_same_network():
    """The torch and Keras networks are one model: as many parameters on each."""
    import genzoo

    sizes = {b: genzoo.create("$name", b, "tiny").num_parameters() for b in BACKENDS}
    assert len(set(sizes.values())) == 1, sizes
''')

README = Template('''\
# genzoo-$name

A genzoo model plugin$frameworks.

```bash
$commands```
''')

NAME = re.compile(r"^[a-z][a-z0-9_-]{0,39}$")
FRAMEWORKS = {"torch": "PyTorch", "keras": "Keras 3"}


def plugin_backends(backend: str | Iterable[str] | None) -> tuple[str, ...]:
    """The backends a plugin is written for: ``None`` is both, a name is that one."""
    if backend is None:
        wanted: tuple[str, ...] = BACKENDS
    else:
        wanted = (backend,) if isinstance(backend, str) else tuple(backend)
    unknown = [b for b in wanted if b not in BACKENDS]
    if unknown or not wanted:
        raise GenzooError(f"the backend must be one of {', '.join(BACKENDS)}, not "
                          f"{', '.join(map(repr, unknown)) or 'none'}")
    return tuple(b for b in BACKENDS if b in wanted)  # in a fixed order, once each


def plugin_files(name: str, backends: tuple[str, ...]) -> dict[str, str]:
    """The generated package's files, by path relative to its folder."""
    package = "genzoo_" + name.replace("-", "_")
    both = len(backends) > 1
    if both:
        frameworks = (" in PyTorch and Keras 3: the same network in `torch_model.py` and "
                      "`keras_model.py`, one config in `config.py`")
        train = [(f"genzoo train {name}", "the torch network, on the bundled digits"),
                 (f"genzoo train {name} --backend keras", "the Keras one")]
    else:
        frameworks = f" in {FRAMEWORKS[backends[0]]} (`{backends[0]}_model.py`)"
        train = [(f"genzoo train {name}", "on the bundled digits")]
    commands = [("pip install -e '.[test]'", "registers the entry point; [test] brings pytest"),
                ("genzoo list", f"{name} is listed"), *train,
                (f"genzoo sample runs/{name}-{backends[0]}-<time> --interpolate",
                 "a walk through the latent space"),
                ("python -m pytest", "genzoo's conformance kit" + (", on each backend"
                                                                  if both else ""))]
    width = max(len(c) for c, _ in commands)
    values = {
        "name": name, "package": package, "extras": ",".join(backends),
        "genzoo_version": __version__, "frameworks": frameworks,
        "commands": "".join(f"{c:<{width}}  # {note}\n" for c, note in commands),
        "framework_note": "frameworks" if both else "framework",
        "on_backends": ("each of its backends (`python -m pytest -k keras` runs one)"
                        if both else f"its backend, {backends[0]}"),
        "backend_list": ", ".join(f'"{b}"' for b in backends),
        "builders": "".join(f'    "{b}": "{package}.{b}_model:Model",\n' for b in backends),
    }
    networks = {"torch": TORCH_MODEL, "keras": KERAS_MODEL}
    templates: dict[str, Template | str] = {
        "pyproject.toml": PYPROJECT, "README.md": README, ".gitignore": GITIGNORE,
        f"{package}/__init__.py": INIT, f"{package}/config.py": CONFIG,
        **{f"{package}/{b}_model.py": networks[b] for b in backends},
    }
    files = {path: t if isinstance(t, str) else t.substitute(values)
             for path, t in templates.items()}
    files["tests/test_conformance.py"] = TEST.substitute(values) + (
        TEST_BOTH.substitute(values) if both else "")
    return files


def write_plugin(name: str, backend: str | Iterable[str] | None, directory: Path) -> Path:
    """Write the plugin package for ``name`` into ``directory/genzoo-NAME``, with the
    network for ``backend``: one name, several, or ``None`` for both."""
    if not NAME.match(name):
        raise GenzooError(f"plugin name '{name}' must be lower case letters, digits, - or _, "
                          "starting with a letter")
    root = Path(directory) / f"genzoo-{name}"
    if root.exists():
        raise GenzooError(f"{root} already exists")
    files = plugin_files(name, plugin_backends(backend))
    made = [d for d in (Path(directory), *Path(directory).parents) if not d.exists()]
    try:  # --dir may name a folder to create, like pip's --target
        Path(directory).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise GenzooError(f"cannot write the plugin into {directory}: "
                          f"{exc.strerror or exc}") from None
    # Written into a hidden sibling, then renamed: a failure (a full disk) leaves nothing.
    staging: Path | None = None
    try:
        staging = root.with_name(f".{root.name}.{secrets.token_hex(4)}.partial")
        staging.mkdir()  # (with the umask's permissions, as the package will have)
        for relative, text in files.items():
            path = staging / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        if root.exists():  # made meanwhile: never replaced
            raise FileExistsError(errno.EEXIST, "exists", str(root))
        staging.rename(root)
    except OSError as exc:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
        for folder in made:  # the folders --dir made, deepest first, if still empty
            with contextlib.suppress(OSError):
                folder.rmdir()
        if exc.errno in (errno.EEXIST, errno.ENOTEMPTY):
            raise GenzooError(f"{root} already exists") from None
        raise GenzooError(f"cannot write the plugin into {directory}: "
                          f"{exc.strerror or exc}") from None
    return root
