"""``genzoo plugin new``: a ready-to-install plugin package."""

from __future__ import annotations

from pathlib import Path

import click

from genzoo.cli.group import BACKEND_CHOICES, PathParam, cli
from genzoo.errors import GenzooError


@cli.group("plugin")
def plugin_group() -> None:
    """Write a new model plugin (`genzoo plugins` lists the installed ones)."""


@plugin_group.command("new")
@click.argument("name")
@click.option("--backend", type=click.Choice(BACKEND_CHOICES), default=None,
              help="Write the network in this framework only [both: the same network "
                   "in torch and Keras, side by side].")
@click.option("--dir", "directory", type=PathParam(path_type=Path), default=Path("."),
              show_default=True,
              help="Where to create the genzoo-NAME folder (made if missing).")
def plugin_new(name: str, backend: str | None, directory: Path) -> None:
    """Write a ready-to-install plugin package for a new model NAME.

    Then:

    \b
        pip install -e './genzoo-NAME[test]'   # [test] brings pytest
        genzoo train NAME
        cd genzoo-NAME && python -m pytest     # the conformance kit, on each backend
    """
    from genzoo.registry import get_registry
    from genzoo.templates.plugin import plugin_backends, write_plugin

    backends = plugin_backends(backend)
    for b in backends:
        taken = get_registry().models.get((name, b))
        if taken is not None:
            raise GenzooError(f"model '{name}' ({b}) is already registered by plugin "
                              f"'{taken.plugin}'; choose another name")
    root = write_plugin(name, backends, directory)
    click.echo(f"wrote {root} ({', '.join(backends)})")
    shown = root if root.is_absolute() else f"./{root}"  # pip reads a bare name as a package
    click.echo(f"next: pip install -e '{shown}[test]' && genzoo train {name} && "
               f"cd {shown} && python -m pytest")
