"""The plugin author's journey: template, hooks, conformance kit, broken plugins."""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from genzoo import hookspecs
from genzoo.testing import ConformanceError, check_model
from helpers import run_genzoo
from test_plugins import install

ROOT = Path(__file__).resolve().parents[1]
HOOKS = [name for name in dir(hookspecs) if name.startswith("register_")]


def make_venv(path: Path) -> Path:
    """A fresh virtual environment that sees this environment's packages (torch, keras,
    genzoo, and pip itself) through a .pth file, so nothing is downloaded. Without its own
    pip (ensurepip costs seconds per venv), ``python -m pip`` runs this environment's pip,
    which installs into the new venv's prefix."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True)
    python = path / "bin" / "python"
    site = subprocess.run([str(python), "-c", "import site; print(site.getsitepackages()[0])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    import site as here

    Path(site, "genzoo-dev.pth").write_text(
        f"import site; site.addsitedir({here.getsitepackages()[0]!r})\n")
    return python


def pip_install(python: Path, project: Path) -> None:
    result = subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps",
                             "--no-build-isolation", "-e", str(project)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]


def test_the_template_installs_lists_trains_and_passes_its_own_test(tmp_path):
    """`genzoo plugin new` writes torch and Keras side by side: both are listed under one
    plugin, train, interpolate, and pass the generated tests (the kit on each backend)."""
    made = run_genzoo("plugin", "new", "two-nets", "--dir", str(tmp_path))
    assert made.returncode == 0, made.stderr
    assert "(torch, keras)" in made.stdout and "[test]" in made.stdout
    project = tmp_path / "genzoo-two-nets"  # package genzoo_two_nets
    python = make_venv(tmp_path / "venv")
    pip_install(python, project)
    env = {**os.environ, "PYTHONPATH": ""}

    def genzoo(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(python), "-m", "genzoo", *args], capture_output=True,
                              text=True, env=env, timeout=300)

    listed = json.loads(genzoo("list", "--json").stdout)
    mine = next(m for m in listed if m["name"] == "two-nets")
    assert mine["backends"] == ["torch", "keras"] and mine["plugin"] == "two-nets"
    trained = genzoo("train", "two-nets", "--preset", "tiny", "--out", str(tmp_path / "run"))
    assert trained.returncode == 0, trained.stderr[-2000:]
    strip = genzoo("sample", str(tmp_path / "run"), "--interpolate", "--n", "5")
    assert strip.returncode == 0 and (tmp_path / "run" / "interpolate-0-1.png").is_file(), \
        strip.stderr[-2000:]
    # The Keras network also trains on Keras's torch backend (the kit, below, trains it
    # on TensorFlow).
    env["KERAS_BACKEND"] = "torch"
    on_torch = genzoo("train", "two-nets", "--backend", "keras", "--preset", "tiny", "--steps",
                      "5", "--out", str(tmp_path / "run-keras-torch"))
    assert on_torch.returncode == 0, on_torch.stderr[-2000:]
    del env["KERAS_BACKEND"]
    assert (project / ".gitignore").read_text().startswith("runs/")
    tested = subprocess.run([str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider"],
                            capture_output=True, text=True, env=env, cwd=project,
                            timeout=600)
    assert tested.returncode == 0, tested.stdout[-3000:]
    assert "3 passed" in tested.stdout, tested.stdout[-3000:]  # the kit twice, the sizes


def test_a_bad_plugin_name_is_refused(tmp_path):
    result = run_genzoo("plugin", "new", "Bad Name", "--dir", str(tmp_path))
    assert result.returncode == 2 and "must be lower case" in result.stderr


def test_a_plugin_that_cannot_be_written_leaves_nothing(tmp_path, monkeypatch):
    import errno

    from genzoo.errors import GenzooError
    from genzoo.templates.plugin import write_plugin

    written = []
    real = Path.write_text

    def fills_the_disk(self, text, *args, **kwargs):
        if len(written) == 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        written.append(self)
        return real(self, text, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", fills_the_disk)
    with pytest.raises(GenzooError, match="cannot write the plugin into .*No space left"):
        write_plugin("thing", "torch", tmp_path)
    assert list(tmp_path.iterdir()) == []  # no half-written package to trip a retry
    written.clear()
    with pytest.raises(GenzooError, match="No space left"):
        write_plugin("thing", "torch", tmp_path / "made" / "here")  # --dir made for it...
    assert list(tmp_path.iterdir()) == []  # ...and removed again

    def another_writer(self, text, *args, **kwargs):  # `plugin new thing` in another shell
        (tmp_path / "genzoo-thing").mkdir(exist_ok=True)
        return real(self, text, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", another_writer)
    with pytest.raises(GenzooError, match="genzoo-thing already exists"):
        write_plugin("thing", "torch", tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["genzoo-thing"]  # theirs, untouched
    assert list((tmp_path / "genzoo-thing").iterdir()) == []
    (tmp_path / "genzoo-thing").rmdir()
    monkeypatch.setattr(Path, "write_text", real)
    root = write_plugin("thing", "torch", tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["genzoo-thing"]
    assert write_plugin("other", "keras", tmp_path / "new" / "dir").is_dir()  # --dir is made
    assert (root / "genzoo_thing" / "torch_model.py").is_file()
    assert (root / ".gitignore").is_file()


DATASET_AND_COMMAND = """
import click
import numpy as np
from genzoo import hookimpl
from genzoo.registry import DatasetSpec
from genzoo.data import ImageData

def load(spec):
    rng = np.random.default_rng(0)
    x = (rng.random((300, 4, 4, 1)) < 0.3).astype("float32")
    return ImageData("speckle", x[:200], x[200:250], x[250:], source="generated")

@hookimpl
def register_datasets(register):
    register(DatasetSpec(name="speckle", kind="image", loader="extras_plugin:load",
                         summary="random speckles", shape=(4, 4, 1), offline=True,
                         source="generated", license="CC0"))

@hookimpl
def register_commands(cli):
    @cli.command()
    @click.argument("who")
    def hello(who):
        '''Say hello.'''
        click.echo(f"hello {who}")

    @cli.command("list")
    def hijack():
        '''Replace a core command (refused).'''
        click.echo("hijacked")
"""

SLOW = "import time\ntime.sleep(3)\n"


def _env(site: Path) -> dict[str, str]:
    return {"PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}


def test_register_datasets_and_register_commands(tmp_path):
    install(tmp_path / "site", "extras_plugin", DATASET_AND_COMMAND, "extras")
    env = _env(tmp_path / "site")
    datasets = json.loads(run_genzoo("datasets", "--json", env=env).stdout)
    speckle = next(d for d in datasets if d["name"] == "speckle")
    assert (speckle["plugin"], speckle["source"], speckle["license"]) == ("extras", "generated",
                                                                         "CC0")
    trained = run_genzoo("train", "vae", "--preset", "tiny", "--data", "speckle", "--set",
                         "batch_size=16", "--out", str(tmp_path / "run"), env=env)
    assert trained.returncode == 0, trained.stderr
    hello = run_genzoo("hello", "world", env=env)
    assert hello.returncode == 0 and hello.stdout == "hello world\n"
    listed = run_genzoo("plugins", "--json", env=env)
    extras = next(p for p in json.loads(listed.stdout) if p["name"] == "extras")
    assert extras["commands"] == ["hello"] and extras["datasets"] == ["speckle"]
    assert "tried to replace the command 'genzoo list'" in extras["error"]
    assert "hijacked" not in run_genzoo("list", env=env).stdout


def test_a_slow_plugin_does_not_slow_help(tmp_path):
    install(tmp_path / "site", "slow_plugin", SLOW, "slow")
    env = _env(tmp_path / "site")
    start = time.monotonic()
    assert run_genzoo("--help", env=env).returncode == 0
    assert time.monotonic() - start < 2.5  # the plugin alone sleeps 3 s on import
    start = time.monotonic()
    assert run_genzoo("list", env=env).returncode == 0
    assert time.monotonic() - start > 3  # listing models does import it


WRONG_SHAPE = """
from genzoo import hookimpl
from genzoo.registry import ModelSpec
from genzoo_vae.config import PRESETS, VAEConfig

@hookimpl
def register_models(register):
    register(ModelSpec(name="wrong", backend="torch", kind="image", config=VAEConfig,
                       builder="wrong_model:Wrong", presets=PRESETS, default_preset="tiny",
                       default_dataset="digits", summary="samples the wrong shape"))
"""
WRONG_MODEL = """
from genzoo_vae.torch_vae import VAE

class Wrong(VAE):
    def sample(self, n, generator):
        return super().sample(n, generator)[:, :4]  # crops the images: the wrong shape
"""


@pytest.mark.parametrize(("change", "message"), [
    ({}, r"^samples: shape \(5, 4, 8, 1\), expected \(5, 8, 8, 1\)"),
    # A plugin's own mistakes that make genzoo raise are reported under the check's name.
    ({'builder="wrong_model:Wrong"': 'builder="wrong_model:Wromg"'},
     r"^builds: PluginError: cannot import the builder of model 'wrong' "
     r"\(wrong_model:Wromg\): 'wrong_model' has no attribute 'Wromg'. Did you mean 'Wrong'\?"),
    ({'default_dataset="digits"': 'default_dataset="tiny-shakespeare"'},  # a template's
     r"^builds: the spec names default dataset 'tiny-shakespeare', which holds texts, but "
     r"the model's kind is 'image'"),  # kind or dataset left behind: `genzoo train` fails
    ({'summary=': 'monitor="recon_loss", summary='},
     r"^learns: the model reports no metric 'recon_loss' \(the spec's monitor\); it reports: "
     r"loss, kl, recon"),
])
@pytest.mark.filterwarnings("ignore:.*names default dataset")  # (the registry's warning)
def test_the_kit_names_the_failing_check(tmp_path, monkeypatch, fresh_registry, change,
                                         message):
    code = WRONG_SHAPE
    for old, new in change.items():
        code = code.replace(old, new)
    module = f"wrong_plugin_{len(change)}_{len(code)}"  # a fresh module for each case
    install(tmp_path / "site", module, code, "wrong")
    (tmp_path / "site" / "wrong_model.py").write_text(WRONG_MODEL)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    fresh_registry.reset()
    with pytest.raises(ConformanceError, match=message):
        check_model("wrong", "torch", tmp_path / "kit")


def test_the_kit_catches_a_cache_that_changes_the_text(tmp_path):
    """An ``extend`` that ignores its cache passes every other check; the kit compares
    its logits with those of ``prefill`` on the whole prefix."""
    import genzoo
    from genzoo.testing import Context, check_samples

    ctx = Context("transformer", "torch", tmp_path)
    ctx.run = genzoo.train("transformer", "torch", "tiny", steps=2, out=tmp_path / "run")
    check_samples(ctx)  # the GPT's cache is faithful
    module = ctx.run.generator.module

    def forgetful(token, cache, position):  # as if the cache were not read
        logits, _ = module.prefill([token])
        return logits, cache

    module.extend = forgetful
    with pytest.raises(ConformanceError, match=r"samples: at position 1, extend's logits "
                                               r"\(with the cache\) differ from prefill's"):
        check_samples(ctx)


# -- meta-tests, as datasette does: every hook is documented and tested ---------------------

def test_every_hook_has_a_reference_docstring():
    for name in HOOKS:
        doc = getattr(hookspecs, name).__doc__ or ""
        assert "Args:" in doc and "Called" in doc, name


def test_every_hook_has_a_docs_section_with_an_example():
    page = (ROOT / "docs" / "plugins" / "hooks.md").read_text()
    for name in HOOKS:
        section = page.split(f"## {name}", 1)
        assert len(section) == 2, f"docs/plugins/hooks.md has no '## {name}' section"
        assert "```python" in section[1].split("\n## ", 1)[0], f"{name} has no example"


def test_every_hook_is_implemented_by_a_test_plugin():
    implemented = set()
    for path in (ROOT / "tests").glob("test_*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                implemented |= {h for h in HOOKS if f"def {h}(" in node.value}
    assert implemented == set(HOOKS)


def test_the_tutorials_pyproject_is_the_templates():
    """Step 2 of the tutorial shows the example's pyproject.toml: it must be what
    `genzoo plugin new pixelcnn --backend torch` writes (its description aside), test
    extra and settings included."""
    from genzoo.templates.plugin import plugin_files

    shown = (ROOT / "docs" / "examples" / "genzoo-pixelcnn" / "pyproject.toml").read_text()
    written = plugin_files("pixelcnn", ("torch",))["pyproject.toml"]
    description = next(line for line in shown.splitlines() if line.startswith("description"))
    assert shown == re.sub(r"(?m)^description = .*$", description, written)


def test_the_example_plugin_from_the_tutorial_installs_and_trains(tmp_path):
    """docs/examples/genzoo-pixelcnn, installed as its own distribution, trains via the CLI."""
    project = ROOT / "docs" / "examples" / "genzoo-pixelcnn"
    python = make_venv(tmp_path / "venv")
    pip_install(python, project)
    env = {**os.environ, "PYTHONPATH": ""}
    run = tmp_path / "run"
    trained = subprocess.run([str(python), "-m", "genzoo", "train", "pixelcnn", "--steps", "60",
                              "--out", str(run)], capture_output=True, text=True, env=env,
                             timeout=300)
    assert trained.returncode == 0, trained.stderr[-2000:]
    meta = json.loads((run / "meta.json").read_text())
    assert meta["plugin"] == {"name": "pixelcnn", "distribution": "genzoo-pixelcnn",
                              "version": "0.1.0"}
    events = [json.loads(line) for line in (run / "metrics.jsonl").open()]
    losses = [e["loss"] for e in events if e["event"] == "train"]
    assert losses[-1] < losses[0]
    evaluated = subprocess.run([str(python), "-m", "genzoo", "eval", str(run), "--samples",
                                "100"], capture_output=True, text=True, env=env, timeout=300)
    assert evaluated.returncode == 0, evaluated.stderr[-2000:]
    metrics = json.loads((run / "eval.json").read_text())["metrics"]
    assert metrics["test_nll"] > 0 and "fd" in metrics  # its own metric and genzoo's
    tested = subprocess.run([str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider",
                             str(project / "tests")], capture_output=True, text=True,
                            env=env, cwd=tmp_path, timeout=600)
    assert tested.returncode == 0, tested.stdout[-3000:]
