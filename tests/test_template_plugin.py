"""The plugin template's layouts (one backend or both) and what its tutorial shows, and
the conformance kit's checks of a latent space (``noise`` and ``render``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from genzoo.testing import ConformanceError, check_model
from helpers import run_genzoo
from test_plugins import install

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("backend", ["torch", "keras"])
def test_backend_writes_one_framework(backend, tmp_path):
    """`--backend torch|keras` writes that network alone, registered, depended on and
    tested alone; the files keep the names of the two-backend layout."""
    from genzoo.templates.plugin import BACKENDS

    made = run_genzoo("plugin", "new", "solo", "--backend", backend, "--dir", str(tmp_path))
    assert made.returncode == 0, made.stderr
    package = tmp_path / "genzoo-solo" / "genzoo_solo"
    other = next(b for b in BACKENDS if b != backend)
    assert (package / f"{backend}_model.py").is_file()
    assert not (package / f"{other}_model.py").exists()
    init = (package / "__init__.py").read_text()
    assert f'"{backend}": "genzoo_solo.{backend}_model:Model"' in init and other not in init
    pyproject = (tmp_path / "genzoo-solo" / "pyproject.toml").read_text()
    assert f'"genzoo[{backend}]>=' in pyproject and 'test = ["pytest' in pyproject
    test = (tmp_path / "genzoo-solo" / "tests" / "test_conformance.py").read_text()
    assert f'BACKENDS = ["{backend}"]' in test and "same_network" not in test
    for path in (tmp_path / "genzoo-solo").rglob("*.py"):
        compile(path.read_text(), str(path), "exec")  # (a template that does not parse)


def _install_package(site: Path, package: Path, name: str) -> None:
    """The generated ``package`` folder as an installed distribution in ``site``."""
    import shutil

    shutil.copytree(package, site / package.name)
    info = site / f"{package.name}-0.1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: genzoo-{name}\n"
                                   "Version: 0.1.0\n")
    (info / "entry_points.txt").write_text(f"[genzoo]\n{name} = {package.name}\n")


def test_the_tutorials_train_step_is_the_default_step(tmp_path, monkeypatch, fresh_registry):
    """The tutorial's `configure_optimizers` and `train_step`, added to the template's
    torch network, train bitwise as the trainer's default step does."""
    import genzoo
    from genzoo.templates.plugin import write_plugin

    page = (ROOT / "docs" / "plugins" / "tutorial.md").read_text()
    block = page.split("<!-- the default step, written out -->", 1)[1]
    code = block.split("```python\n", 1)[1].split("```", 1)[0]
    methods = code.split("\n    ...", 1)[1].split("\n", 1)[1]  # after the class's "..."
    for name in ("plain", "custom"):
        root = write_plugin(name, "torch", tmp_path / name)
        if name == "custom":
            network = root / "genzoo_custom" / "torch_model.py"
            network.write_text(network.read_text() + "\n" + methods)
        _install_package(tmp_path / "site", root / f"genzoo_{name}", name)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    fresh_registry.reset()
    runs = {name: genzoo.train(name, "torch", "tiny", steps=6, data="digits",
                               out=tmp_path / f"run-{name}", log_every=1, grad_clip=1.0,
                               lr_schedule="cosine", warmup_steps=2)
            for name in ("plain", "custom")}
    assert hasattr(runs["custom"].generator.module, "train_step")
    plain, custom = (runs[n].generator.state() for n in ("plain", "custom"))
    assert plain.keys() == custom.keys()
    assert all(np.array_equal(plain[k], custom[k]) for k in plain)
    assert [r["loss"] for r in runs["plain"].history.train] == \
        [r["loss"] for r in runs["custom"].history.train]


LATENT_PLUGIN = """
from genzoo import hookimpl
from genzoo.registry import ModelSpec
from genzoo_vae.config import PRESETS, VAEConfig

@hookimpl
def register_models(register):
    register(ModelSpec(name="latent", backend="torch", kind="image", config=VAEConfig,
                       builder="BUILDER", presets=PRESETS, default_preset="tiny",
                       default_dataset="digits", summary="a broken latent space"))
"""
LATENT_MODELS = """
from genzoo_vae.torch_vae import VAE

class OneLatent(VAE):
    def noise(self, n, rng):
        return super().noise(1, rng)  # one latent, whatever n

    def sample(self, n, rng):  # samples stay right: only the latent space is wrong
        return self.render(VAE.noise(self, n, rng))

class RenderOnly(VAE):
    @property
    def noise(self):  # as if the network had no noise()
        raise AttributeError("noise")

    def sample(self, n, rng):
        return self.render(VAE.noise(self, n, rng))
"""


@pytest.mark.parametrize(("model", "message"), [
    ("OneLatent", r"^latent space: noise\(3, rng\) gave 1 latents"),
    ("RenderOnly", r"^latent space: the network has render\(\) but not noise\(\): define "
                   r"both"),
])
def test_the_kit_checks_noise_and_render(model, message, tmp_path, monkeypatch,
                                         fresh_registry):
    module = f"latent_plugin_{model.lower()}"
    install(tmp_path / "site", module, LATENT_PLUGIN.replace(
        "BUILDER", f"latent_models_{model.lower()}:{model}"), "latent")
    (tmp_path / "site" / f"latent_models_{model.lower()}.py").write_text(LATENT_MODELS)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    fresh_registry.reset()
    with pytest.raises(ConformanceError, match=message):
        check_model("latent", "torch", tmp_path / "kit")


def test_the_tutorials_template_excerpts_are_the_templates(tmp_path):
    """The code the tutorial shows as the template's is what `genzoo plugin new` writes."""
    from genzoo.templates.plugin import plugin_files

    page = (ROOT / "docs" / "plugins" / "tutorial.md").read_text()
    files = plugin_files("demo", ("torch", "keras"))
    excerpts = page.split("<!-- template: ")[1:]
    assert len(excerpts) >= 2
    for excerpt in excerpts:
        name, rest = excerpt.split(" -->", 1)
        code = rest.split("```python\n", 1)[1].split("```", 1)[0]
        assert code in files[f"genzoo_demo/{name}"], code
