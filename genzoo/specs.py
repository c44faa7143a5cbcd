"""What a plugin registers: ``ModelSpec`` and ``DatasetSpec``, and the rules their fields
follow. Part of the contract with plugin authors (``genzoo.registry`` re-exports them):
nothing here loads a plugin or a framework."""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import import_module
from types import MappingProxyType
from typing import Any

from genzoo.errors import LookupFailed, PluginError, did_you_mean

BACKENDS: tuple[str, ...] = ("torch", "keras")
KINDS: tuple[str, ...] = ("image", "text")


_IDENT = r"[A-Za-z_]\w*"
IMPORT_PATH = re.compile(rf"^{_IDENT}(\.{_IDENT})*:{_IDENT}(\.{_IDENT})*$")
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def check_name_and_kind(what: str, name: str, kind: str) -> None:
    """Refuse a model or dataset name users could not type, or an unknown kind."""
    if not isinstance(name, str) or not NAME.match(name):
        raise ValueError(f"{what} name {name!r} must be letters, digits, '.', '-' or '_', "
                         "starting with a letter or digit")
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")


def check_import_path(path: str, what: str) -> None:
    """Refuse an import path that is not of the form ``"package.module:attr"``."""
    if not isinstance(path, str) or not IMPORT_PATH.match(path):
        raise ValueError(f"{what} must be an import path 'package.module:attr', got {path!r}")


def import_object(path: str, what: str = "") -> Any:
    """Import ``"package.module:attr"`` and return the attribute.

    A path that does not resolve (no such module or attribute, or a module that needs a
    package that is not installed) raises ``genzoo.errors.PluginError`` naming
    ``what`` and the path; any other error raised while importing the module is a bug in
    that module and keeps its traceback.
    """
    module_name, _, attr = path.partition(":")
    label = f"the {what} ({path})" if what else f"'{path}'"
    try:
        obj: Any = import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if module_name == missing or module_name.startswith(missing + "."):
            raise PluginError(f"cannot import {label}: there is no module '{missing}'") from None
        raise PluginError(f"cannot import {label}: it needs '{missing}', which is not "
                          "installed") from None
    for i, part in enumerate(attr.split(".") if attr else []):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            where = ".".join([module_name] + attr.split(".")[:i])
            close = difflib.get_close_matches(part, dir(obj), n=1, cutoff=0.6)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            raise PluginError(f"cannot import {label}: '{where}' has no attribute "
                              f"'{part}'.{hint}") from None
    return obj


@dataclass(frozen=True)
class ModelSpec:
    """One model implementation: a family name in one backend.

    Attributes:
        name: the family name users type (``vae``, ``gan``, ``transformer``).
        backend: ``"torch"`` or ``"keras"``.
        kind: ``"image"`` or ``"text"``: what the model consumes and generates.
        config: the family's config dataclass (a [`ModelConfig`][genzoo.config.ModelConfig]).
        builder: import path of the network class, ``"package.module:Class"``; it is
            called as ``Class(config, data_info)``. Imported only when a model is built.
        presets: named overrides of model and training config fields. Must include
            ``default_preset`` and a ``tiny`` preset that trains in seconds, for tests.
        default_preset: the preset used when none is given.
        default_dataset: a registered dataset name, used when ``--data`` is not given.
        summary: one line for ``genzoo list``.
        monitor: the training metric that falls as the model learns (the conformance
            kit checks it); ``"loss"`` unless the model has no single loss.
        evaluator: optional import path of ``evaluate(generator, data, **options) ->
            (metrics, protocol)``, the family's own metrics for ``genzoo eval`` (the
            VAE's likelihoods); image and text metrics are added by genzoo itself.
        callbacks: import paths of callbacks the family always trains with
            (``"package.module:Name"``, as ``--callback`` takes them).
        plugin: the plugin that registered the spec (filled in by genzoo).
    """

    name: str
    backend: str
    kind: str
    config: type
    builder: str
    presets: Mapping[str, Mapping[str, Any]]
    default_preset: str
    default_dataset: str
    summary: str
    monitor: str = "loss"
    evaluator: str = ""
    callbacks: tuple[str, ...] = ()
    plugin: str = ""

    def __post_init__(self) -> None:
        from genzoo.config import check_model_config_class, check_preset

        check_name_and_kind("model", self.name, self.kind)
        if self.backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {self.backend!r}")
        if self.default_preset not in self.presets:
            raise ValueError(f"default preset {self.default_preset!r} is not in presets")
        if "tiny" not in self.presets:
            raise ValueError("every model needs a 'tiny' preset for tests")
        check_import_path(self.builder, "builder")
        if self.evaluator:
            check_import_path(self.evaluator, "evaluator")
        check_model_config_class(self.config)
        for preset_name, preset in self.presets.items():
            check_preset(self.config, preset_name, preset)
        if self.kind == "text" and "block_size" not in getattr(self.config,
                                                               "__dataclass_fields__", {}):
            raise ValueError("a text model's config needs a 'block_size' field: the length of "
                             "the windows it trains on and the context it generates from")
        frozen = {k: MappingProxyType(dict(v)) for k, v in self.presets.items()}
        object.__setattr__(self, "presets", MappingProxyType(frozen))

    @property
    def key(self) -> tuple[str, str]:
        return (self.name, self.backend)

    def preset(self, name: str | None) -> Mapping[str, Any]:
        """Return a preset's overrides; ``None`` means the default preset."""
        name = name or self.default_preset
        if name not in self.presets:
            raise LookupFailed(
                f"unknown preset '{name}' for {self.name}.{did_you_mean(name, self.presets)}"
            )
        return self.presets[name]


@dataclass(frozen=True)
class DatasetSpec:
    """A dataset that can be named with ``--data``.

    Attributes:
        name: what users type.
        kind: ``"image"`` or ``"text"``.
        loader: import path of a function ``load(spec) -> ImageData | TextData``.
        summary: one line for ``genzoo datasets``.
        shape: (H, W, C) for image datasets, ``None`` for text.
        vocab_size: characters in the vocabulary, for text datasets.
        source: where the data comes from.
        license: licence or citation.
        offline: ``True`` when it ships with an installed package (never downloaded).
        directory: for downloadable datasets, the folder under ``GENZOO_DATA_DIR`` and
            the cache that holds the files (default: the name).
        files: names of the files the dataset needs, in ``directory``.
        classes: the names of an image dataset's classes, in label order (what
            ``genzoo sample --label all`` writes beside each row); empty: ``"0"``,
            ``"1"``, ... for a labelled dataset.
        plugin: the plugin that registered it (filled in by genzoo).
    """

    name: str
    kind: str
    loader: str
    summary: str
    shape: tuple[int, int, int] | None = None
    vocab_size: int | None = None
    source: str = ""
    license: str = ""
    offline: bool = False
    directory: str = ""
    files: tuple[str, ...] = ()
    classes: tuple[str, ...] = ()
    plugin: str = ""

    def __post_init__(self) -> None:
        check_name_and_kind("dataset", self.name, self.kind)
        check_import_path(self.loader, "loader")

    @property
    def folder(self) -> str:
        return self.directory or self.name
