"""The registry of models and datasets, filled by plugin hooks.

This module is the only caller of the plugin hooks. Each plugin's hook implementation
is called on its own, so one plugin that raises cannot hide the others' models.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from genzoo.errors import LookupFailed, PluginError, did_you_mean
from genzoo.plugins import PluginInfo, PluginWarning, get_plugin_manager, isolated
from genzoo.specs import (BACKENDS, IMPORT_PATH, KINDS, NAME, DatasetSpec, ModelSpec,
                          check_import_path, check_name_and_kind, import_object)

__all__ = ["BACKENDS", "IMPORT_PATH", "KINDS", "NAME", "DatasetSpec", "ModelSpec", "Registry",
           "check_import_path", "check_name_and_kind", "default_dataset_problem",
           "get_registry", "import_object", "register_commands", "reset"]

@dataclass
class Registry:
    """Every registered model and dataset, and what went wrong while registering."""

    models: dict[tuple[str, str], ModelSpec] = field(default_factory=dict)
    datasets: dict[str, DatasetSpec] = field(default_factory=dict)
    plugins: tuple[PluginInfo, ...] = ()

    # -- lookups ---------------------------------------------------------------------------
    def model_names(self) -> list[str]:
        return sorted({name for name, _ in self.models})

    def backends_of(self, name: str) -> list[str]:
        return [b for b in BACKENDS if (name, b) in self.models]

    def model(self, name: str, backend: str = "torch") -> ModelSpec:
        """Look up a model, with a did-you-mean for unknown names and backends."""
        if name not in self.model_names():
            raise LookupFailed(f"unknown model '{name}'.{did_you_mean(name, self.model_names())}")
        if (name, backend) not in self.models:
            raise LookupFailed(
                f"model '{name}' has no backend '{backend}'."
                f"{did_you_mean(backend, self.backends_of(name))}"
            )
        return self.models[(name, backend)]

    def dataset(self, name: str) -> DatasetSpec:
        if name not in self.datasets:
            raise LookupFailed(f"unknown dataset '{name}'.{did_you_mean(name, self.datasets)}")
        return self.datasets[name]

    # -- filling ---------------------------------------------------------------------------
    def _add_model(self, spec: ModelSpec, info: PluginInfo) -> None:
        label = f"model '{getattr(spec, 'name', '?')}' ({getattr(spec, 'backend', '?')})"
        key = _add(self.models, ModelSpec, lambda s: s.key, spec, info, label)
        info.models.append("/".join(key))
        problem = default_dataset_problem(spec, self.datasets)
        if problem:  # still usable with --data
            warnings.warn(f"plugin '{info.name}': {label} {problem}", PluginWarning,
                          stacklevel=2)

    def _add_dataset(self, spec: DatasetSpec, info: PluginInfo) -> None:
        label = f"dataset '{getattr(spec, 'name', '?')}'"
        info.datasets.append(_add(self.datasets, DatasetSpec, lambda s: s.name, spec, info, label))


def default_dataset_problem(spec: ModelSpec, datasets: Mapping[str, DatasetSpec]) -> str:
    """What is wrong with a model's default dataset ("" if nothing): it must be
    registered, and hold what the model makes (images or text)."""
    found = datasets.get(spec.default_dataset)
    if found is None:
        return (f"names default dataset '{spec.default_dataset}', which is not registered."
                f"{did_you_mean(spec.default_dataset, datasets)}")
    if found.kind != spec.kind:
        return (f"names default dataset '{found.name}', which holds {found.kind}s, but the "
                f"model's kind is '{spec.kind}'")
    return ""


def _add(table: dict[Any, Any], cls: type, key_of: Callable[[Any], Any], spec: Any,
         info: PluginInfo, label: str) -> Any:
    """Add a spec under its key; a second plugin claiming the key is refused, naming both."""
    if not isinstance(spec, cls):
        raise PluginError(f"register() expects a {cls.__name__}, got {type(spec).__name__}")
    key = key_of(spec)
    existing = table.get(key)
    if existing is not None:
        raise PluginError(f"{label} is registered by both plugin '{existing.plugin}' and "
                          f"plugin '{info.name}'; keeping '{existing.plugin}'")
    table[key] = _with_plugin(spec, info.name)
    return key


def _with_plugin(spec: Any, plugin: str) -> Any:
    from dataclasses import replace

    return replace(spec, plugin=plugin)


def _call_each(hook_name: str, make_register: Callable[[PluginInfo], Callable[[Any], None]],
               infos: Iterable[PluginInfo]) -> None:
    pm, _ = get_plugin_manager()
    by_name = {info.name: info for info in infos}
    caller = getattr(pm.hook, hook_name)
    # get_hookimpls() lists implementations in load order: built-ins before third parties.
    for impl in caller.get_hookimpls():
        info = by_name[impl.plugin_name]
        register = make_register(info)
        try:
            impl.function(register=register)
        except BaseException as exc:  # one plugin's bug (a sys.exit too) must not hide
            if not isolated(exc):  # the others or stop genzoo; Ctrl-C still does
                raise
            info.fail(exc, f"raised in {hook_name}")


def _safe(add: Callable[[Any, PluginInfo], None], info: PluginInfo) -> Callable[[Any], None]:
    def register(spec: Any) -> None:
        try:
            add(spec, info)
        except (PluginError, ValueError, TypeError) as exc:
            info.fail(exc, "registration refused")

    return register


@lru_cache(maxsize=1)
def get_registry() -> Registry:
    """Load plugins (once per process) and collect their models and datasets."""
    _, infos = get_plugin_manager()
    registry = Registry(plugins=infos)
    _call_each("register_datasets", lambda info: _safe(registry._add_dataset, info), infos)
    _call_each("register_models", lambda info: _safe(registry._add_model, info), infos)
    return registry


def register_commands(cli: Any) -> None:
    """Let every plugin add its CLI commands (isolating failures)."""
    pm, infos = get_plugin_manager()
    by_name = {info.name: info for info in infos}
    for impl in pm.hook.register_commands.get_hookimpls():
        info = by_name[impl.plugin_name]
        before = dict(cli.commands)
        try:
            impl.function(cli=cli)
        except BaseException as exc:
            if not isolated(exc):
                raise
            info.fail(exc, "raised in register_commands")
        for name, command in before.items():  # a plugin adds commands, never replaces one
            if cli.commands.get(name) is not command:
                cli.commands[name] = command
                info.fail(PluginError(f"tried to replace the command 'genzoo {name}'; a "
                                      "plugin's commands need names of their own"),
                          "broke the contract")
        info.commands = sorted(set(cli.commands) - set(before))


def reset() -> None:
    """Forget the loaded plugins and registry (tests use this after changing sys.path)."""
    get_registry.cache_clear()
    get_plugin_manager.cache_clear()
