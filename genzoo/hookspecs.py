"""The hooks a genzoo plugin can implement.

Each hook receives a callable or object from genzoo rather than returning a value, so
genzoo keeps control of the collection and a hook can gain arguments without breaking
older plugins. Implement a hook by decorating a function of the same name with
``genzoo.hookimpl``:

```python
from genzoo import hookimpl

@hookimpl
def register_models(register):
    register(MY_SPEC)
```
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:  # pragma: no cover - typing only
    import click

    from genzoo.specs import DatasetSpec, ModelSpec

hookspec = pluggy.HookspecMarker("genzoo")
hookimpl = pluggy.HookimplMarker("genzoo")


@hookspec
def register_models(register: Callable[[ModelSpec], None]) -> None:
    """Register model implementations.

    Called once, the first time genzoo needs its registry (for `genzoo list`, `train`,
    `sample`, `genzoo.create` and so on).

    Args:
        register: call it once per (model name, backend) with a
            [`ModelSpec`][genzoo.registry.ModelSpec]. A spec names its builder by import
            path (``"package.module:Class"``), so registering imports no framework. A spec
            with a bad field (an unknown preset key, a config that is not a dataclass) is
            refused with a warning saying why. So is a (name, backend) that another plugin
            already registered: the warning names both plugins, and the first registration
            stays (built-ins load first, then third-party plugins in the order of their
            entry-point names).
    """


@hookspec
def register_datasets(register: Callable[[DatasetSpec], None]) -> None:
    """Register datasets that models can train on with ``--data NAME``.

    Called once, with the models. genzoo's own datasets (``digits``, ``mnist`` and so on)
    are registered through this hook too.

    Args:
        register: call it once per dataset with a
            [`DatasetSpec`][genzoo.registry.DatasetSpec].
            Its loader is an import path, imported only when the dataset is used.
    """


@hookspec
def register_commands(cli: click.Group) -> None:
    """Add subcommands to the ``genzoo`` command line.

    Called the first time the CLI is asked for a command it does not know, and by
    ``genzoo plugins`` (which lists the commands each plugin added); never for ``--help``
    or the other core commands, so a slow plugin cannot slow those down. Keep it cheap all
    the same: define the commands here and import heavy modules inside them. A command
    whose name is taken is undone and reported as the plugin's error.

    Args:
        cli: the top-level click group; add commands with ``@cli.command()``.
    """
