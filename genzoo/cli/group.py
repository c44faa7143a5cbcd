"""The ``genzoo`` command group and what its commands share: option types, tables,
JSON output. Plugin commands are loaded only when one is asked for."""

from __future__ import annotations

import json
from typing import Any

import click

from genzoo.version import __version__

BACKEND_CHOICES = ("torch", "keras")


class PathParam(click.Path):
    """A path that may not be empty: ``""`` would silently mean the current folder."""

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> Any:
        if value == "":
            self.fail("an empty path; name a file or folder ('.' for this one)", param, ctx)
        return super().convert(value, param, ctx)


def given(name: str) -> bool:
    """Whether the current command's option ``name`` was given, not left at its default."""
    source = click.get_current_context().get_parameter_source(name)
    return source is not None and source != click.core.ParameterSource.DEFAULT


def load_registry() -> Any:
    from genzoo.registry import get_registry

    return get_registry()


def table(columns: list[str], rows: list[list[str]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(*columns, box=None, header_style="bold", pad_edge=False)
    for row in rows:
        table.add_row(*row)
    console = Console()
    if not console.is_terminal:  # pipes and files get whole lines, not wrapped cells
        console = Console(width=1000)
    console.print(table)


def echo_json(obj: Any) -> None:
    click.echo(json.dumps(obj, indent=2))


class PluginGroup(click.Group):
    """The top-level group: plugin commands are loaded only when one is asked for.

    ``genzoo --help`` and the core commands never import a plugin, so a slow plugin
    cannot slow them; an unknown command name loads the plugins and looks again.
    """

    plugins_loaded = False

    def load_plugin_commands(self) -> None:
        if not self.plugins_loaded:
            self.plugins_loaded = True
            from genzoo.registry import register_commands

            register_commands(self)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        found = super().get_command(ctx, cmd_name)
        if found is None:
            self.load_plugin_commands()
            found = super().get_command(ctx, cmd_name)
        return found


@click.group(cls=PluginGroup, context_settings={"help_option_names": ["-h", "--help"]},
             epilog="Plugins may add commands: `genzoo plugins` lists what is installed.")
@click.version_option(__version__, prog_name="genzoo")
def cli() -> None:
    """genzoo: a zoo of generative models (VAE, GAN, Transformer) in PyTorch and Keras.

    Start with:

    \b
        genzoo list                 the models and their presets
        genzoo train vae            train a VAE on the bundled digits (seconds)
        genzoo sample RUN --n 64    draw samples from a trained run
    """
