"""Settings chosen at sampling time: the fields of a model config that may change after
training (``genzoo sample/eval --set``, ``genzoo.load(run, settings=...)``).

A family lists them in its config class's ``SAMPLING``, a tuple of field names: fields
that change how a trained model samples (the Transformer's ``temperature`` and
``top_k``), never its weights. Every other field is fixed when the model is trained.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

from genzoo.config import TrainConfig, field_types, make_config, parse_assignments, to_dict
from genzoo.errors import ConfigError, did_you_mean
from genzoo.sampling import TEMPERATURE, TOP_K

C = TypeVar("C")


def sampling_fields(config: Any) -> tuple[str, ...]:
    """The names of the fields of ``config`` (a config or its class) that may be set
    after training: its ``SAMPLING``."""
    return tuple(getattr(config, "SAMPLING", ()))


def settings_of(config: Any) -> dict[str, Any]:
    """``{field: value}`` of the sampling fields of a config (what ``eval.json`` records)."""
    return {name: getattr(config, name) for name in sampling_fields(config)}


def text_defaults(config: Any) -> dict[str, Any]:
    """The ``temperature`` and ``top_k`` a text model samples with when a call names
    neither: its config's (a ``top_k`` of 0 is ``None``, no top-k), else genzoo's
    defaults (``genzoo.sampling.TEMPERATURE`` and ``TOP_K``)."""
    top_k = getattr(config, "top_k", TOP_K)
    return {"temperature": getattr(config, "temperature", TEMPERATURE), "top_k": top_k or None}


def parse_settings(values: Mapping[str, Any] | Iterable[str] | None) -> dict[str, Any]:
    """``{field: value}`` from a mapping, or from ``--set``'s ``KEY=VALUE`` strings."""
    if values is None:
        return {}
    if isinstance(values, Mapping):
        return dict(values)
    if isinstance(values, str):
        values = [values]
    return parse_assignments(values)


def with_settings(config: C, values: Mapping[str, Any] | Iterable[str] | None) -> C:
    """``config`` with some of its sampling fields changed, and validated.

    Args:
        config: a model config (a ``genzoo.config.ModelConfig``).
        values: ``{field: value}`` (values as Python objects or as text), or ``--set``'s
            ``["KEY=VALUE", ...]``; ``None`` or empty changes nothing.

    Raises:
        ConfigError: a field that is not one of the config's ``SAMPLING`` (the message
            names those that are, or says there are none), or a value that does not
            parse or validate.

    Examples:
        >>> from dataclasses import dataclass
        >>> from genzoo.config import ModelConfig
        >>> @dataclass(frozen=True)
        ... class Config(ModelConfig):
        ...     width: int = 8
        ...     temperature: float = 0.8
        ...     SAMPLING = ("temperature",)
        >>> with_settings(Config(), ["temperature=1.0"]).temperature
        1.0
        >>> with_settings(Config(), {"width": 16})
        Traceback (most recent call last):
        ...
        genzoo.errors.ConfigError: 'width' is fixed when the model is trained; the settings ...
    """
    given = parse_settings(values)
    if not given:
        return config
    allowed = sampling_fields(config)
    for key in given:
        if key not in allowed:
            raise ConfigError(refusal(type(config), key))
    return make_config(type(config), {**to_dict(config), **given})


def refusal(config_cls: type, key: str) -> str:
    """The one-line refusal of ``key`` as a setting of a trained model of ``config_cls``."""
    allowed = sampling_fields(config_cls)
    known = {*field_types(config_cls), *field_types(TrainConfig)}
    may = (f"the settings that may be set after training are: {', '.join(allowed)}" if allowed
           else f"{config_cls.__name__} has no settings that may be set after training")
    if key in known:
        return f"'{key}' is fixed when the model is trained; {may}"
    hint = did_you_mean(key, allowed).split(" (choose")[0] if allowed else ""
    return f"'{key}' is not a setting of {config_cls.__name__}.{hint} {may[0].upper()}{may[1:]}"
