"""Plugin discovery through real entry points: good, broken, raising and duplicate plugins."""

from __future__ import annotations

import json
import os
import textwrap
from pathlib import Path

import pytest

from helpers import run_genzoo
from genzoo.plugins import PluginWarning

GOOD = """
from genzoo import hookimpl
from genzoo.registry import ModelSpec
from genzoo_vae.config import PRESETS, VAEConfig

@hookimpl
def register_models(register):
    register(ModelSpec(name="toy", backend="torch", kind="image", config=VAEConfig,
                       builder="genzoo_vae.torch_vae:VAE", presets=PRESETS,
                       default_preset="tiny", default_dataset="digits",
                       summary="a third-party model"))
"""
BROKEN = "raise RuntimeError('boom at import')\n"
RAISING = """
from genzoo import hookimpl

@hookimpl
def register_models(register):
    raise ValueError('boom in the hook')
"""
DUPLICATE = """
from genzoo import hookimpl
from genzoo_vae import SPECS

@hookimpl
def register_models(register):
    register(SPECS[0])
"""


def install(root: Path, module: str, code: str, entry_point: str | None = None) -> None:
    """Install a one-module distribution with a ``genzoo`` entry point into ``root``."""
    dist = module.replace("_", "-")
    root.mkdir(parents=True, exist_ok=True)
    (root / f"{module}.py").write_text(textwrap.dedent(code))
    info = root / f"{module}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[genzoo]\n{entry_point or module} = {module}\n")


@pytest.fixture
def site(tmp_path, monkeypatch, fresh_registry):
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def _infos(registry):
    return {i.name: i for i in registry.get_registry().plugins}


def test_a_third_party_plugin_is_discovered_through_its_entry_point(site, fresh_registry):
    install(site, "toy_plugin", GOOD, "toy")
    registry = fresh_registry.get_registry()
    assert registry.model("toy").plugin == "toy"
    info = _infos(fresh_registry)["toy"]
    assert (info.distribution, info.version, info.hooks) == ("toy-plugin", "1.0", ["register_models"])
    assert info.models == ["toy/torch"] and info.error is None


def test_a_plugin_that_fails_to_import_is_reported_not_fatal(site, fresh_registry):
    install(site, "broken_plugin", BROKEN, "broken")
    with pytest.warns(PluginWarning, match="plugin 'broken' failed to load: RuntimeError"):
        registry = fresh_registry.get_registry()
    assert "boom at import" in _infos(fresh_registry)["broken"].error
    assert registry.model("vae")  # the built-ins still load


def test_a_plugin_that_raises_while_registering_is_isolated(site, fresh_registry):
    install(site, "raising_plugin", RAISING, "raising")
    with pytest.warns(PluginWarning, match="raised in register_models"):
        registry = fresh_registry.get_registry()
    assert registry.model("vae", "keras")
    assert "ValueError: boom in the hook" in _infos(fresh_registry)["raising"].error


def test_a_duplicate_registration_names_both_plugins_and_keeps_the_first(site, fresh_registry):
    install(site, "dupe_plugin", DUPLICATE, "dupe")
    with pytest.warns(PluginWarning, match="registered by both plugin 'vae' and plugin 'dupe'"):
        registry = fresh_registry.get_registry()
    assert registry.model("vae").plugin == "vae"


@pytest.mark.parametrize(("selection", "models"), [("", []), ("vae", ["vae"]),
                                                   ("toy", ["toy"])])
def test_genzoo_load_plugins_restricts_loading(site, fresh_registry, monkeypatch,
                                               selection, models):
    install(site, "toy_plugin", GOOD, "toy")
    monkeypatch.setenv("GENZOO_LOAD_PLUGINS", selection)
    registry = fresh_registry.get_registry()
    assert registry.model_names() == models
    assert "digits" in registry.datasets  # the core's datasets are always there


def test_cli_reports_a_broken_plugin_and_still_works(tmp_path):
    install(tmp_path, "broken_plugin", BROKEN, "broken")
    env = {"PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}
    listed = run_genzoo("list", "--json", env=env)
    assert listed.returncode == 0
    assert "genzoo: warning: plugin 'broken' failed to load: RuntimeError: boom at import" \
        in listed.stderr
    assert {"vae", "gan", "transformer"} <= {m["name"] for m in json.loads(listed.stdout)}
    plugins = run_genzoo("plugins", "--json", "--verbose", env=env)
    broken = next(p for p in json.loads(plugins.stdout) if p["name"] == "broken")
    assert broken["error"].startswith("failed to load: RuntimeError")
    assert "Traceback" in broken["traceback"]


def test_a_third_party_model_trains_through_the_cli(tmp_path):
    install(tmp_path / "site", "toy_plugin", GOOD, "toy")
    env = {"PYTHONPATH": os.pathsep.join([str(tmp_path / "site"),
                                          os.environ.get("PYTHONPATH", "")])}
    result = run_genzoo("train", "toy", "--out", str(tmp_path / "run"), env=env)
    assert result.returncode == 0, result.stderr
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert (config["model"], config["preset"]) == ("toy", "tiny")


MISNAMED_HOOK = """
from genzoo import hookimpl

@hookimpl
def register_model(register):  # one letter short of register_models
    raise AssertionError("never called")
"""
NO_HOOKIMPL = """
def register_models(register):  # no @hookimpl: pluggy does not see it
    raise AssertionError("never called")
"""
UNKNOWN_DEFAULT_DATA = GOOD.replace('default_dataset="digits"', 'default_dataset="digitz"')


@pytest.mark.parametrize(("code", "message"), [
    (MISNAMED_HOOK, "implements 'register_model', which is not a genzoo hook. "
                    "Did you mean 'register_models'?"),
    (NO_HOOKIMPL, r"implements no genzoo hook \(decorate its functions with "
                  r"@genzoo.hookimpl\)"),
])
def test_a_plugin_whose_hooks_genzoo_cannot_call_is_reported(site, fresh_registry, code,
                                                              message):
    install(site, f"quiet_plugin_{len(code)}", code, "quiet")  # a fresh module per case
    with pytest.warns(PluginWarning, match=message):
        registry = fresh_registry.get_registry()
    info = _infos(fresh_registry)["quiet"]
    assert info.hooks == [] and info.models == [] and info.error
    assert registry.model("vae")


def test_an_unknown_default_dataset_is_a_warning_not_a_refusal(site, fresh_registry):
    install(site, "toy_digitz_plugin", UNKNOWN_DEFAULT_DATA, "toy")
    with pytest.warns(PluginWarning, match="names default dataset 'digitz', which is not "
                                           "registered. Did you mean 'digits'?"):
        registry = fresh_registry.get_registry()
    assert registry.model("toy").default_dataset == "digitz"  # --data still works


def test_a_default_dataset_of_the_other_kind_is_a_warning(site, fresh_registry):
    install(site, "toy_text_data_plugin",
            GOOD.replace('default_dataset="digits"', 'default_dataset="tiny-shakespeare"'), "toy")
    with pytest.warns(PluginWarning, match="names default dataset 'tiny-shakespeare', which "
                                           "holds texts, but the model's kind is 'image'"):
        fresh_registry.get_registry()


def test_genzoo_load_plugins_warns_about_a_name_it_cannot_find(site, fresh_registry,
                                                              monkeypatch):
    install(site, "toy_plugin", GOOD, "toy")
    monkeypatch.setenv("GENZOO_LOAD_PLUGINS", "vae,toy-plugin")  # the distribution's name
    with pytest.warns(PluginWarning, match="GENZOO_LOAD_PLUGINS names 'toy-plugin', which is "
                                           "not an installed plugin .* Did you mean 'toy' "
                                           r"\(the entry point of distribution toy-plugin\)"):
        registry = fresh_registry.get_registry()
    assert registry.model_names() == ["vae"]


OPTIONAL_HOOK = """
from genzoo import hookimpl
from genzoo.registry import ModelSpec
from genzoo_vae.config import PRESETS, VAEConfig

@hookimpl(optionalhook=True)
def register_metrics(register):  # a hook a newer genzoo may define: not an error
    raise AssertionError("never called")

@hookimpl
def register_models(register):
    register(ModelSpec(name="toy", backend="torch", kind="image", config=VAEConfig,
                       builder="genzoo_vae.torch_vae:VAE", presets=PRESETS,
                       default_preset="tiny", default_dataset="digits", summary="optional"))
"""


def test_an_optional_hook_genzoo_does_not_know_is_not_an_error(site, fresh_registry, recwarn):
    install(site, "optional_plugin", OPTIONAL_HOOK, "optional")
    registry = fresh_registry.get_registry()
    assert registry.model("toy").plugin == "optional"
    assert _infos(fresh_registry)["optional"].error is None
    assert not [w for w in recwarn if issubclass(w.category, PluginWarning)]


BARE = """
import torch
from genzoo import hookimpl
from genzoo.registry import ModelSpec
from genzoo_vae.config import PRESETS, VAEConfig

class Bare(torch.nn.Module):  # forgot both loss(x) and train_step(x, trainer)
    def __init__(self, config, info):
        super().__init__()
        self.layer = torch.nn.Linear(2, 2)

@hookimpl
def register_models(register):
    register(ModelSpec(name="bare", backend="torch", kind="image", config=VAEConfig,
                       builder="genzoo_bare:Bare", presets=PRESETS, default_preset="tiny",
                       default_dataset="digits", summary="a model that cannot train"))
"""


def test_a_torch_module_with_nothing_to_train_is_a_plugin_error(site, fresh_registry, tmp_path):
    import genzoo
    from genzoo.errors import PluginError

    install(site, "genzoo_bare", BARE)
    with pytest.raises(PluginError, match="model 'bare' \\(torch\\): its module has neither "
                                          "loss\\(x\\) nor train_step"):
        genzoo.train("bare", out=tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_two_distributions_with_one_entry_point_name_both_load(site, fresh_registry):
    """A third-party plugin that happens to call its entry point ``vae`` was once dropped
    without a word; it loads beside the built-in one, told apart by its distribution."""
    install(site, "toy_plugin", GOOD, "vae")
    registry = fresh_registry.get_registry()
    assert registry.model("toy").plugin == "vae (toy-plugin)"
    assert registry.model("vae").plugin == "vae"
    infos = _infos(fresh_registry)
    assert infos["vae (toy-plugin)"].models == ["toy/torch"]
    assert infos["vae (toy-plugin)"].error is None and infos["vae"].distribution == "genzoo"


HIJACK = """
import click
from genzoo import hookimpl

@hookimpl
def register_commands(cli):
    @cli.command()
    def hello():
        click.echo("hello")

    @cli.command("train")
    def hijack():
        click.echo("hijacked")
"""


def test_a_plugin_command_never_replaces_a_core_one(site, fresh_registry):
    import click

    install(site, "hijack_plugin", HIJACK, "hijack")
    group = click.Group()
    core = click.Command("train", callback=lambda: None)
    group.add_command(core)
    with pytest.warns(PluginWarning, match="tried to replace the command 'genzoo train'"):
        fresh_registry.register_commands(group)
    assert group.commands["train"] is core and "hello" in group.commands
    info = _infos(fresh_registry)["hijack"]
    assert info.commands == ["hello"]
    assert "tried to replace the command 'genzoo train'" in info.error


EXITING_HOOKS = {
    "register_models": """
from genzoo import hookimpl
import sys

@hookimpl
def register_models(register):
    sys.exit({code})
""",
    "register_datasets": """
from genzoo import hookimpl
import sys

@hookimpl
def register_datasets(register):
    sys.exit({code})
""",
    "register_commands": """
from genzoo import hookimpl
import sys

@hookimpl
def register_commands(cli):
    sys.exit({code})
""",
    "import": "import sys\nsys.exit({code})\n",
}
CUSTOM_BASE_EXCEPTION = """
from genzoo import hookimpl

class Meltdown(BaseException):
    pass

@hookimpl
def register_models(register):
    raise Meltdown("the core is melting")
"""
GENERATOR_EXIT = """
from genzoo import hookimpl

@hookimpl
def register_datasets(register):
    raise GeneratorExit()
"""


def _cli_with(tmp_path: Path, code: str) -> dict[str, str]:
    """Install ``code`` as plugin 'rogue' beside the good 'toy' plugin; the CLI's env."""
    site = tmp_path / "site"
    install(site, "rogue_plugin", code, "rogue")
    install(site, "toy_plugin", GOOD, "toy")
    return {"PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}


def _warnings(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.strip()]


@pytest.mark.parametrize(("where", "code", "message"), [
    ("register_models", "", "raised in register_models: SystemExit: it called sys.exit(None)"),
    ("register_datasets", "3", "raised in register_datasets: SystemExit: it called sys.exit(3)"),
    ("register_commands", "'bye'",
     "raised in register_commands: SystemExit: it called sys.exit('bye')"),
    ("import", "0", "failed to load: SystemExit: it called sys.exit(0)"),
], ids=["register_models", "register_datasets", "register_commands", "import"])
def test_a_plugin_that_calls_sys_exit_is_a_warning_not_an_exit(tmp_path, where, code, message):
    env = _cli_with(tmp_path, EXITING_HOOKS[where].format(code=code))
    if where != "register_commands":  # `list` never asks plugins for commands
        listed = run_genzoo("list", "--json", env=env)
        assert listed.returncode == 0, listed.stderr
        assert _warnings(listed.stderr) == [f"genzoo: warning: plugin 'rogue' {message}"]
        names = {m["name"] for m in json.loads(listed.stdout)}
        assert {"toy", "vae", "gan", "transformer"} <= names  # the others still load
    plugins = run_genzoo("plugins", "--json", env=env)
    assert plugins.returncode == 0, plugins.stderr
    assert _warnings(plugins.stderr) == [f"genzoo: warning: plugin 'rogue' {message}"]
    infos = {p["name"]: p for p in json.loads(plugins.stdout)}
    assert infos["rogue"]["error"] == message
    assert infos["toy"]["error"] is None and infos["toy"]["models"] == ["toy/torch"]


@pytest.mark.parametrize(("code", "message"), [
    (CUSTOM_BASE_EXCEPTION, "raised in register_models: Meltdown: the core is melting"),
    (GENERATOR_EXIT, "raised in register_datasets: GeneratorExit"),
], ids=["custom-base-exception", "generator-exit"])
def test_a_plugin_that_raises_a_base_exception_is_a_warning(tmp_path, code, message):
    env = _cli_with(tmp_path, code)
    listed = run_genzoo("list", "--json", env=env)
    assert listed.returncode == 0, listed.stderr
    assert _warnings(listed.stderr) == [f"genzoo: warning: plugin 'rogue' {message}"]
    assert "toy" in {m["name"] for m in json.loads(listed.stdout)}
    plugins = run_genzoo("plugins", "--json", env=env)
    assert plugins.returncode == 0 and "Traceback" not in plugins.stderr
    assert {p["name"]: p["error"] for p in json.loads(plugins.stdout)}["rogue"] == message


def test_an_unknown_command_still_runs_after_a_plugin_exits_in_register_commands(tmp_path):
    env = _cli_with(tmp_path, EXITING_HOOKS["register_commands"].format(code="1"))
    result = run_genzoo("nonsense", env=env)  # loads plugin commands, then fails as usual
    assert result.returncode == 2
    lines = _warnings(result.stderr)
    assert lines[0] == ("genzoo: warning: plugin 'rogue' raised in register_commands: "
                        "SystemExit: it called sys.exit(1)")
    assert "No such command 'nonsense'" in result.stderr and "Traceback" not in result.stderr


def test_ctrl_c_in_a_plugin_hook_still_stops_genzoo(site, fresh_registry):
    install(site, "interrupting_plugin", """
from genzoo import hookimpl

@hookimpl
def register_models(register):
    raise KeyboardInterrupt
""", "interrupting")
    with pytest.raises(KeyboardInterrupt):
        fresh_registry.get_registry()
