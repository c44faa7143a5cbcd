"""Typed configs, presets and validated ``KEY=VALUE`` overrides.

A run is described by two frozen dataclasses: the family's model config (a subclass of
``ModelConfig``) and the shared ``TrainConfig``. Presets and ``--set``
overrides are flat ``{field: value}`` mappings; each key belongs to exactly one of the
two configs. Values from the command line arrive as strings and are parsed by the
field's type; every value is checked before anything heavy is imported.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import re
import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, TypeVar, Union

from genzoo.errors import ConfigError, did_you_mean
from genzoo.values import (DEVICE, LIMITS, MAX_NEW_TOKENS, MAX_SEED, MAX_STEPS, MAX_WHOLE,
                           valid_count, check_device, valid_seed, is_whole, next_seed,
                           require, seconds_from_env, shown)  # importable from here too

C = TypeVar("C")


@dataclass(frozen=True)
class ModelConfig:
    """Base class of every family's model config.

    Subclasses are frozen dataclasses with a comment on each field, and override
    ``validate()`` to check ranges. ``SAMPLING`` names the fields that change how a
    trained model samples, not what it learns: only those may be set after training.
    """

    SAMPLING: ClassVar[tuple[str, ...]] = ()  # see genzoo.settings

    def validate(self) -> None:
        """Raise ``genzoo.errors.ConfigError`` if a value is out of range."""


@dataclass(frozen=True)
class TrainConfig:
    """How a model is trained; shared by every family and backend."""

    epochs: int | None = None  # passes over the training split (ignored when steps is set)
    steps: int | None = None  # optimisation steps; overrides epochs
    batch_size: int = 128  # examples per step
    lr: float = 1e-3  # peak learning rate
    optimizer: Literal["adam", "adamw"] = "adam"  # adamw: weight decay, decoupled
    beta1: float = 0.9  # Adam's first-moment decay
    beta2: float = 0.999  # Adam's second-moment decay
    weight_decay: float = 0.0  # decoupled weight decay on matrices; needs optimizer=adamw
    grad_clip: float = 0.0  # clip the global gradient norm to this value; 0 disables
    lr_schedule: Literal["constant", "cosine"] = "constant"  # after the warm-up
    warmup_steps: int = 0  # linear warm-up before the schedule
    min_lr: float = 0.0  # floor of the cosine schedule
    log_every: int = 50  # steps between metric log lines
    eval_every: int = 0  # steps between validation passes; 0 means once per epoch
    eval_batches: int = 0  # validation batches per pass; 0 means the whole split
    checkpoint_every: int = 500  # steps between checkpoints; 0 disables them
    keep_checkpoints: int = 3  # how many periodic checkpoints to keep
    keep_best: bool = False  # save the weights of the best validation loss, not the last
    ema_decay: float = 0.0  # keep a moving average of the weights (e.g. 0.999); 0 disables
    accumulate: int = 1  # micro-batches per step: each of batch_size, one update per step
    seed: int = 0  # seeds weights, data order and sampling; 0 to 2**31 - 1
    device: str = "auto"  # auto | cpu | cuda | cuda:N | mps
    precision: Literal["auto", "fp32", "bf16"] = "auto"  # auto: bf16 on a bf16 GPU, else fp32
    compile: bool = False  # torch.compile the model's loss (torch); XLA (Keras on TensorFlow)
    find_unused_parameters: bool = False  # DDP: allow parameters a step leaves unused

    def validate(self) -> None:
        positive = ("batch_size", "log_every")
        for name in positive:
            require(getattr(self, name) > 0, name, "must be positive")
        for name in ("epochs", "steps"):
            value = getattr(self, name)
            require(value is None or value > 0, name, "must be positive")
        for name, most in LIMITS.items():  # a count no run reaches: a typo, refused up front
            value = getattr(self, name)
            require(value is None or value <= most, name,
                    f"must be at most {most:,}, not {shown(value)}")
        require(self.epochs is not None or self.steps is not None, "epochs",
                "either epochs or steps must be set")
        require(self.lr > 0, "lr", "must be positive")
        require(0 <= self.min_lr <= self.lr, "min_lr", "must lie in [0, lr]")
        require(0 <= self.beta1 < 1 and 0 <= self.beta2 < 1, "beta1", "betas must lie in [0, 1)")
        for name in ("weight_decay", "grad_clip", "warmup_steps", "eval_every",
                     "eval_batches", "checkpoint_every", "seed"):
            require(getattr(self, name) >= 0, name, "must not be negative")
        require(self.seed <= MAX_SEED, "seed", f"must be at most {MAX_SEED}")
        require(0 <= self.ema_decay < 1, "ema_decay", "must lie in [0, 1)")
        require(1 <= self.accumulate <= 1024, "accumulate", "must lie in [1, 1024]")
        require(self.keep_checkpoints >= 1, "keep_checkpoints", "must be at least 1")
        check_device(self.device)

    def total_steps(self, steps_per_epoch: int) -> int:
        """How many steps the run trains: ``steps``, else ``epochs`` (default 1) passes of
        ``steps_per_epoch``.

        Raises:
            ConfigError: the epochs come to more than ``MAX_STEPS`` steps.
        """
        if self.steps is not None:
            return self.steps
        total = (self.epochs or 1) * steps_per_epoch
        require(total <= MAX_STEPS, "epochs",
                f"{self.epochs or 1:,} epochs of {steps_per_epoch:,} steps are {total:,} "
                f"steps, more than the {MAX_STEPS:,} a run may train")
        return total


# -- parsing ------------------------------------------------------------------------------

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _parse(name: str, hint: Any, value: Any) -> Any:
    """Convert ``value`` (a string from the CLI or a Python value) to type ``hint``."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (Union, types.UnionType):
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null")):
            if type(None) in args:
                return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _parse(name, arg, value)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if errors else f"invalid value for '{name}'")
    if origin is Literal:
        if value not in args:
            raise ConfigError(
                f"invalid value for '{name}': '{value}'.{did_you_mean(str(value), map(str, args))}"
            )
        return value
    if origin is tuple:
        items = value.split(",") if isinstance(value, str) else value
        if not isinstance(items, Iterable):
            raise ConfigError(f"invalid value for '{name}': expected a comma-separated list")
        return tuple(_parse(name, args[0], item) for item in items)
    if hint is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in _TRUE | _FALSE:
            return value.lower() in _TRUE
        raise ConfigError(f"invalid value for '{name}': expected true or false, got '{value}'")
    if hint is int:
        if isinstance(value, bool):
            raise ConfigError(f"invalid value for '{name}': expected an integer, got {value}")
        if isinstance(value, int):
            return value
        try:
            return int(_ascii(value))
        except ValueError:
            text = str(value).strip()
            advice = (" (write it out in digits, without an exponent or a decimal point)"
                      if _is_number(text) and not text.lstrip("+-").isdigit()
                      else "")  # 1e21, 5000.0 (not a number of 5,000 digits)
            if len(text) > 40:
                text = f"{text[:20]}... ({len(text)} characters)"
            raise ConfigError(
                f"invalid value for '{name}': expected an integer, got '{text}'{advice}"
            ) from None
    if hint is float:
        try:
            if isinstance(value, bool):
                raise ValueError
            number = float(value if isinstance(value, (int, float)) else _ascii(value))
        except ValueError:
            raise ConfigError(
                f"invalid value for '{name}': expected a number, got '{value}'"
            ) from None
        if not math.isfinite(number):
            raise ConfigError(f"invalid value for '{name}': expected a finite number, "
                              f"got '{value}'")
        return number
    if hint is str:
        return str(value)
    raise TypeError(f"config field '{name}' has an unsupported type {hint!r}")


def _is_number(text: str) -> bool:
    try:
        float(_ascii(text))
    except ValueError:
        return False
    return True


def _ascii(value: Any) -> str:
    """``value`` as stripped text for ``int()`` or ``float()``, which would also read
    other scripts' digits (``'٣'`` as 3): a number on the command line is ASCII."""
    text = str(value).strip()
    if not text.isascii():
        raise ValueError(text)
    return text


def field_docs(cls: type) -> list[tuple[str, str, Any, str]]:
    """``(name, type, default, comment)`` for each field of a config dataclass.

    The comment is the one written after the field in its class's source (genzoo's
    convention), continued by the comment-only lines right below it whose text starts
    under that comment, so the docs site's configuration reference cannot drift from the
    code. (A comment-only line indented like the fields, such as a section heading, is
    not part of it.)
    """
    comments: dict[str, str] = {}
    for klass in reversed(cls.__mro__):  # a subclass's comment wins
        try:
            source = inspect.getsource(klass)
        except (OSError, TypeError):
            continue
        last, column = None, -1  # the field a comment-only line may continue
        for line in source.splitlines():
            m = re.match(r"^\s+(\w+)\s*:[^=#]+=[^#]*#\s*(.+)$", line)
            more = re.match(r"^\s+#\s*(.+)$", line)
            if m:
                last, column = m.group(1), line.index("#", m.end(1))
                comments[last] = m.group(2).strip()
            elif more and last is not None and more.start(1) > column:
                comments[last] += " " + more.group(1).strip()
            else:
                last = None
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        hint = hints[f.name]
        name = getattr(hint, "__name__", None) if not typing.get_args(hint) else None
        out.append((f.name, name or str(hint).replace("typing.", ""), f.default,
                    comments.get(f.name, "")))
    return out


def field_types(cls: type) -> dict[str, Any]:
    """Return ``{field name: resolved type}`` for a config dataclass."""
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def make_config(cls: type[C], values: Mapping[str, Any]) -> C:
    """Build and validate a config dataclass from parsed or string values."""
    types_ = field_types(cls)
    parsed = {}
    for key, value in values.items():
        if key not in types_:
            raise ConfigError(f"unknown config key '{key}'.{did_you_mean(key, types_)}")
        parsed[key] = _parse(key, types_[key], value)
    config = cls(**parsed)
    config.validate()  # type: ignore[attr-defined]
    if cls is not TrainConfig:  # whose counts have bounds of their own (LIMITS)
        for key, value in parsed.items():
            for item in value if isinstance(value, tuple) else (value,):
                if is_whole(item) and int(item) > MAX_WHOLE:
                    raise ConfigError(f"invalid value for '{key}': must be at most "
                                      f"{MAX_WHOLE:,}, not {shown(item)}")
    return config


def parse_assignments(items: Iterable[str]) -> dict[str, str]:
    """Parse ``["KEY=VALUE", ...]`` from ``--set``."""
    result = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set expects KEY=VALUE, got '{item}'")
        result[key.strip()] = value.strip()
    return result


def split_overrides(
    model_cls: type, values: Mapping[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split flat overrides into (model fields, training fields); unknown keys fail."""
    model_keys = set(field_types(model_cls))
    train_keys = set(field_types(TrainConfig))
    model, train = {}, {}
    for key, value in values.items():
        if key in model_keys:
            model[key] = value
        elif key in train_keys:
            train[key] = value
        else:
            raise ConfigError(
                f"unknown config key '{key}'.{did_you_mean(key, model_keys | train_keys)}"
            )
    return model, train


def check_model_config_class(model_cls: type) -> None:
    """Refuse a model config class that ``resolve()`` could not use.

    It must be a dataclass with a ``validate()`` method (subclass ``ModelConfig``),
    fields of types the CLI can parse, and no field named like a ``TrainConfig``
    field: a shared name would take the training value away from training.

    Raises:
        ValueError: saying what is wrong and how to fix it.
    """
    # __dataclass_fields__ also holds ClassVar, InitVar and KW_ONLY pseudo-fields.
    fields = (set(model_cls.__dataclass_fields__)
              if isinstance(model_cls, type) and dataclasses.is_dataclass(model_cls) else None)
    own = inspect.get_annotations(model_cls) if isinstance(model_cls, type) else {}
    loose = [n for n, hint in own.items() if (fields is None or n not in fields)
             and not (hint is dataclasses.KW_ONLY or str(hint).endswith("KW_ONLY"))]
    if fields is None or loose:  # e.g. a ModelConfig subclass without its own @dataclass
        raise ValueError(f"config {getattr(model_cls, '__name__', model_cls)!r} must be a "
                         "dataclass (decorate it with @dataclass(frozen=True))")
    if not callable(getattr(model_cls, "validate", None)):
        raise ValueError(f"config {model_cls.__name__} needs a validate() method "
                         "(subclass genzoo.config.ModelConfig)")
    try:
        types_ = field_types(model_cls)
    except NameError as exc:
        raise ValueError(f"config {model_cls.__name__} has a type hint that does not "
                         f"resolve: {exc}") from None
    stray = [n for n in getattr(model_cls, "SAMPLING", ()) if n not in types_]
    if stray or isinstance(getattr(model_cls, "SAMPLING", ()), str):
        raise ValueError(f"config {model_cls.__name__}: SAMPLING must be a tuple of its "
                         f"field names{f', not {stray[0]!r}' if stray else ''}")
    shared = sorted(set(types_) & set(field_types(TrainConfig)))
    if shared:
        raise ValueError(f"config {model_cls.__name__} field(s) {', '.join(shared)} clash with "
                         "training settings of the same name; rename them")


def check_preset(model_cls: type, name: str, preset: Mapping[str, Any]) -> None:
    """Check that a preset's keys exist and its values parse (and pass the model config's
    ``validate()``), so a typo in a plugin's preset is reported when it is registered.

    Raises:
        ValueError: naming the preset and the bad key or value.
    """
    try:
        model_values, train_values = split_overrides(model_cls, preset)
        make_config(model_cls, model_values)
        if train_values.get("epochs") is None and train_values.get("steps") is None:
            train_values["steps"] = 1  # a preset may leave the length to the command line
        make_config(TrainConfig, train_values)
    except (ConfigError, TypeError) as exc:
        raise ValueError(f"preset '{name}': {exc}") from None


def resolve(
    model_cls: type[C], preset: Mapping[str, Any], overrides: Mapping[str, Any]
) -> tuple[C, TrainConfig]:
    """Apply a preset, then overrides (``None`` values are dropped), and validate.

    Examples:
        >>> from genzoo.config import ModelConfig, resolve
        >>> _, train = resolve(ModelConfig, {"steps": 10}, {"lr": "0.01", "seed": None})
        >>> train.steps, train.lr
        (10, 0.01)
    """
    merged = {**preset, **{k: v for k, v in overrides.items() if v is not None}}
    model_values, train_values = split_overrides(model_cls, merged)
    return make_config(model_cls, model_values), make_config(TrainConfig, train_values)


def to_dict(config: Any) -> dict[str, Any]:
    """A JSON-ready dict of a config (tuples become lists)."""
    return dataclasses.asdict(config)


def from_dict(cls: type[C], values: Mapping[str, Any]) -> C:
    """Rebuild a config saved by ``to_dict()``; keys the class lacks are an error."""
    return make_config(cls, dict(values))


_RENAMED = {"check_seed": "valid_seed", "check_count": "valid_count"}  # before genzoo 0.2


def __getattr__(name: str) -> Any:
    """The old names of renamed helpers, with a DeprecationWarning (removed in 0.3)."""
    if name in _RENAMED:
        import warnings

        import genzoo.values

        warnings.warn(f"genzoo.config.{name} is deprecated and will be removed in genzoo 0.3; "
                      f"use genzoo.values.{_RENAMED[name]}", DeprecationWarning, stacklevel=2)
        return getattr(genzoo.values, _RENAMED[name])
    raise AttributeError(f"module 'genzoo.config' has no attribute '{name}'")
