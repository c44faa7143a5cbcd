"""The plugin manager: genzoo's own hooks plus every ``genzoo`` entry point.

Entry points are loaded one at a time. A plugin that fails to import is recorded with
its error and reported as a warning; it never takes the CLI down, not even by calling
``sys.exit`` or raising a ``BaseException`` (only Ctrl-C is let through). Set
``GENZOO_LOAD_PLUGINS=a,b`` to load only the named entry points (empty: none, so only
genzoo's core datasets remain).
"""

from __future__ import annotations

import os
import traceback
import warnings
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import metadata

import pluggy

from genzoo import hookspecs
from genzoo.errors import PluginError, did_you_mean

ENTRY_POINT_GROUP = "genzoo"
CORE_PLUGINS = ("genzoo.data.catalog",)


class PluginWarning(UserWarning):
    """A plugin failed to load or broke the plugin contract."""


@dataclass
class PluginInfo:
    """What genzoo knows about one loaded (or failed) plugin."""

    name: str
    module: str
    distribution: str
    version: str
    hooks: list[str] = field(default_factory=list)
    models: list[str] = field(default_factory=list)
    datasets: list[str] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)  # CLI commands it added
    error: str | None = None
    traceback: str | None = None

    def fail(self, exc: BaseException, context: str) -> None:
        """Record an error (keeping the first one) and warn about it once."""
        message = f"{context}: {describe(exc)}"
        if self.error is None:
            self.error = message
            self.traceback = "".join(traceback.format_exception(exc))
        warnings.warn(f"plugin '{self.name}' {message}", PluginWarning, stacklevel=3)


def describe(exc: BaseException) -> str:
    """``exc`` as ``Type: message``; a ``sys.exit`` says so, with its status."""
    if isinstance(exc, SystemExit):
        return f"SystemExit: it called sys.exit({exc.code!r})"
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def isolated(exc: BaseException) -> bool:
    """Whether a plugin's ``exc`` is recorded as its failure rather than raised: anything
    it raises, ``SystemExit``, ``GeneratorExit`` and its own ``BaseException`` subclasses
    included. Only a ``KeyboardInterrupt`` (Ctrl-C, SIGTERM) still stops genzoo."""
    return not isinstance(exc, KeyboardInterrupt)


def _selected() -> set[str] | None:
    raw = os.environ.get("GENZOO_LOAD_PLUGINS")
    if raw is None:
        return None
    return {part.strip() for part in raw.split(",") if part.strip()}


def _entry_points() -> list[metadata.EntryPoint]:
    eps = metadata.entry_points(group=ENTRY_POINT_GROUP)
    # genzoo's own families first, so a third-party duplicate never shadows a built-in.
    def order(ep: metadata.EntryPoint) -> tuple[bool, str]:
        dist = ep.dist.name if ep.dist is not None else ""
        return (dist != "genzoo", ep.name)

    seen: set[tuple[str, str, str]] = set()
    unique = []
    for ep in sorted(eps, key=order):
        # The same dist on sys.path twice lists its points twice: load them once. Two
        # distributions that chose the same entry-point name are two plugins: load both.
        key = (ep.name, ep.value, ep.dist.name if ep.dist is not None else "")
        if key not in seen:
            seen.add(key)
            unique.append(ep)
    return unique


def _hooks_of(pm: pluggy.PluginManager, plugin: object) -> list[str]:
    return sorted(caller.name for caller in pm.get_hookcallers(plugin) or []
                  if caller.has_spec())


def _check_hooks(pm: pluggy.PluginManager, plugin: object, info: PluginInfo) -> None:
    """Warn about a plugin that implements no hook, or a hook genzoo does not define."""
    known = [name for name in dir(hookspecs) if name.startswith("register_")]
    for caller in pm.get_hookcallers(plugin) or []:
        optional = all(impl.optionalhook for impl in caller.get_hookimpls()
                       if impl.plugin is plugin)  # a hook of a newer genzoo: fine
        if not caller.has_spec() and not optional:
            info.fail(PluginError(f"implements '{caller.name}', which is not a genzoo hook."
                                  f"{did_you_mean(caller.name, known)}"), "broke the contract")
    if not info.hooks and info.error is None:
        info.fail(PluginError("implements no genzoo hook (decorate its functions with "
                              "@genzoo.hookimpl)"), "broke the contract")


@lru_cache(maxsize=1)
def get_plugin_manager() -> tuple[pluggy.PluginManager, tuple[PluginInfo, ...]]:
    """Build the plugin manager once per process and return it with load records."""
    pm = pluggy.PluginManager(ENTRY_POINT_GROUP)
    pm.add_hookspecs(hookspecs)
    infos: list[PluginInfo] = []
    from importlib import import_module

    from genzoo.version import __version__

    for module_name in CORE_PLUGINS:
        module = import_module(module_name)
        pm.register(module, name=module_name)
        infos.append(PluginInfo(module_name, module_name, "genzoo", __version__,
                                _hooks_of(pm, module)))

    selected = _selected()
    for ep in _entry_points():
        if selected is not None and not selected & set(_listed_names(ep)):
            continue
        dist = ep.dist
        info = PluginInfo(
            name=ep.name,
            module=ep.value,
            distribution=dist.name if dist is not None else "?",
            version=dist.version if dist is not None else "?",
        )
        infos.append(info)
        try:
            plugin = ep.load()
            # pluggy needs unique names; a second plugin under one entry-point name is
            # told apart by its distribution.
            if pm.get_plugin(ep.name) is not None:
                info.name = f"{ep.name} ({info.distribution})"
            pm.register(plugin, name=info.name)
        except BaseException as exc:  # a broken plugin must not break genzoo, even
            if not isolated(exc):  # by sys.exit at import; Ctrl-C still stops it
                raise
            info.fail(exc, "failed to load")
            continue
        info.hooks = _hooks_of(pm, plugin)
        _check_hooks(pm, plugin, info)
    if selected:
        _check_selected(selected, _entry_points())
    return pm, tuple(infos)


def _check_selected(selected: set[str], available: list[metadata.EntryPoint]) -> None:
    """Warn about names in GENZOO_LOAD_PLUGINS that are not installed entry points."""
    names = [name for ep in available for name in _listed_names(ep)]
    by_dist = {_normalise(ep.dist.name): ep for ep in available if ep.dist is not None}
    for name in sorted(selected - set(names)):
        ep = by_dist.get(_normalise(name))
        hint = (f" Did you mean '{ep.name}' (the entry point of distribution {ep.dist.name})?"
                if ep is not None and ep.dist is not None else did_you_mean(name, names))
        warnings.warn(f"GENZOO_LOAD_PLUGINS names '{name}', which is not an installed plugin "
                      f"(it takes entry-point names, as `genzoo plugins` lists them).{hint}",
                      PluginWarning, stacklevel=3)


def _listed_names(ep: metadata.EntryPoint) -> list[str]:
    """The names GENZOO_LOAD_PLUGINS takes for ``ep``: its entry-point name, and the
    ``name (distribution)`` form `genzoo plugins` shows when two share a name."""
    return [ep.name] + ([f"{ep.name} ({ep.dist.name})"] if ep.dist is not None else [])


def _normalise(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")
