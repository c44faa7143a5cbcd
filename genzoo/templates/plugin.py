"""The plugin template: ``genzoo plugin new NAME --backend torch|keras``.

The generated package is a working model (a small VAE-style autoencoder on images) that
already trains under ``genzoo train NAME``; replace its network with yours. Its test runs
genzoo's conformance kit.
"""

from __future__ import annotations

import contextlib
import errno
import re
import secrets
import shutil
from pathlib import Path
from string import Template

from genzoo.version import __version__
from genzoo.errors import GenzooError

PYPROJECT = Template('''\
[build-system]
requires = ["setuptools>=69"]
build-backend = "setuptools.build_meta"

[project]
name = "genzoo-$name"
version = "0.1.0"
description = "A genzoo model plugin: $name"
requires-python = ">=3.10"
dependencies = ["genzoo[$backend]>=$genzoo_version"]  # genzoo and the framework

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

SPEC = ModelSpec(
    name="$name",
    backend="$backend",
    kind="image",
    config=Config,
    builder="$package.model:Model",  # imported only when the model is built
    presets=PRESETS,
    default_preset="default",
    default_dataset="digits",
    summary="$name: describe your model in one line",
)


@hookimpl
def register_models(register):
    register(SPEC)
''')

CONFIG = Template('''\
"""Config and presets of $name (no framework imports: `genzoo list` reads this)."""

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

TORCH_MODEL = Template('''\
"""$name in PyTorch. Replace the network; keep the three methods genzoo calls."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class Model(nn.Module):
    def __init__(self, config, info):
        super().__init__()
        self.config = config
        self.shape = info.shape  # (H, W, C)
        d = info.shape[0] * info.shape[1] * info.shape[2]
        self.encoder = nn.Sequential(nn.Flatten(), nn.Linear(d, config.hidden), nn.ReLU(),
                                     nn.Linear(config.hidden, 2 * config.latent_dim))
        self.decoder = nn.Sequential(nn.Linear(config.latent_dim, config.hidden), nn.ReLU(),
                                     nn.Linear(config.hidden, d))

    def loss(self, x):
        """x: a batch of images, NHWC in [0, 1]. Returns (loss, {name: metric})."""
        mu, logvar = self.encoder(x).chunk(2, dim=-1)
        z = mu + (0.5 * logvar).exp() * torch.randn_like(mu)
        logits = self.decoder(z)
        recon = F.binary_cross_entropy_with_logits(logits, x.flatten(1), reduction="none").sum(1).mean()
        kl = 0.5 * (mu.square() + logvar.exp() - 1 - logvar).sum(1).mean()
        return recon + kl, {"recon": recon, "kl": kl}

    def noise(self, n, rng):
        return torch.randn(n, self.config.latent_dim, generator=rng, device=rng.device)

    def render(self, z):
        """Images NHWC in [0, 1] from latents."""
        return torch.sigmoid(self.decoder(z)).reshape(-1, *self.shape)

    def sample(self, n, rng):
        """n images, NHWC in [0, 1]; all randomness from ``rng`` (a torch.Generator)."""
        return self.render(self.noise(n, rng))
''')

KERAS_MODEL = Template('''\
"""$name in Keras 3. Replace the network; keep the methods genzoo calls."""

from __future__ import annotations

import keras
from keras import layers, ops


class Model(keras.Model):
    def __init__(self, config, info, **kwargs):
        super().__init__(name="$package", **kwargs)
        self.config = config
        h, w, c = info.shape
        # Name every layer: weight names must be the same in every process.
        self.encoder = keras.Sequential([
            keras.Input(info.shape), layers.Flatten(name="enc_flat"),
            layers.Dense(config.hidden, activation="relu", name="enc_hidden"),
            layers.Dense(2 * config.latent_dim, name="enc_stats")], name="encoder")
        self.decoder = keras.Sequential([
            keras.Input((config.latent_dim,)),
            layers.Dense(config.hidden, activation="relu", name="dec_hidden"),
            layers.Dense(h * w * c, name="dec_logits"), layers.Reshape(info.shape)],
            name="decoder")
        self.seeds = keras.random.SeedGenerator(name="seeds")  # all training randomness
        self.kl_tracker = keras.metrics.Mean(name="kl")

    def call(self, x, training=False):
        mu, logvar = ops.split(self.encoder(x), 2, axis=-1)
        z = mu + ops.exp(0.5 * logvar) * keras.random.normal(ops.shape(mu), seed=self.seeds)
        return mu, logvar, self.decoder(z)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        """Keras computes the gradients of this on every backend."""
        mu, logvar, logits = y_pred
        x = ops.convert_to_tensor(x, dtype=logits.dtype)  # a NumPy batch on some backends
        recon = ops.mean(ops.sum(ops.reshape(ops.softplus(logits) - x * logits,
                                             (ops.shape(x)[0], -1)), axis=1))
        kl = ops.mean(ops.sum(0.5 * (ops.square(mu) + ops.exp(logvar) - 1 - logvar), axis=1))
        self.kl_tracker.update_state(kl)
        return recon + kl

    def noise(self, n, seed):
        return keras.random.normal((n, self.config.latent_dim), seed=seed)

    def render(self, z):
        return ops.sigmoid(self.decoder(z))

    def sample(self, n, seed_generator):
        """n images, NHWC in [0, 1]; all randomness from ``seed_generator``."""
        return self.render(self.noise(n, seed_generator))
''')

TEST = Template('''\
"""genzoo's conformance kit checks that $name honours the plugin contract."""

from genzoo.testing import check_model


def test_conformance(tmp_path):
    check_model("$name", "$backend", tmp_path)
''')

README = Template('''\
# genzoo-$name

A genzoo model plugin.

```bash
pip install -e .              # registers the entry point
genzoo list                   # $name is listed
genzoo train $name            # trains on the bundled digits
python -m pytest              # runs genzoo's conformance kit
```
''')

NAME = re.compile(r"^[a-z][a-z0-9_-]{0,39}$")


def write_plugin(name: str, backend: str, directory: Path) -> Path:
    """Write the plugin package for ``name`` into ``directory/genzoo-NAME``."""
    if not NAME.match(name):
        raise GenzooError(f"plugin name '{name}' must be lower case letters, digits, - or _, "
                          "starting with a letter")
    package = "genzoo_" + name.replace("-", "_")
    root = Path(directory) / f"genzoo-{name}"
    if root.exists():
        raise GenzooError(f"{root} already exists")
    values = {"name": name, "package": package, "backend": backend,
              "genzoo_version": __version__}
    files: dict[str, Template | str] = {
        "pyproject.toml": PYPROJECT, "README.md": README,
        f"{package}/__init__.py": INIT, f"{package}/config.py": CONFIG,
        f"{package}/model.py": TORCH_MODEL if backend == "torch" else KERAS_MODEL,
        "tests/test_conformance.py": TEST, ".gitignore": GITIGNORE,
    }
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
        for relative, template in files.items():
            path = staging / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(template if isinstance(template, str)
                            else template.substitute(values))
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
