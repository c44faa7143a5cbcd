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
@click.option("--backend", type=click.Choice(BACKEND_CHOICES), default="torch",
              show_default=True,
              help="The framework of the template's network.")
@click.option("--dir", "directory", type=PathParam(path_type=Path), default=Path("."),
              show_default=True,
              help="Where to create the genzoo-NAME folder (made if missing).")
def plugin_new(name: str, backend: str, directory: Path) -> None:
    """Write a ready-to-install plugin package for a new model NAME.

    Then:

    \b
        cd genzoo-NAME && pip install -e . && genzoo train NAME && python -m pytest
    """
    from genzoo.registry import get_registry
    from genzoo.templates.plugin import write_plugin

    taken = get_registry().models.get((name, backend))
    if taken is not None:
        raise GenzooError(f"model '{name}' ({backend}) is already registered by plugin "
                          f"'{taken.plugin}'; choose another name")
    root = write_plugin(name, backend, directory)
    click.echo(f"wrote {root}")
    click.echo(f"next: pip install -e {root} && genzoo train {name} && "
               f"python -m pytest {root}")
