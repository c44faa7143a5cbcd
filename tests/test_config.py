"""Configs, presets and ``--set`` overrides: parsing and validation."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from genzoo.config import ModelConfig, TrainConfig, make_config, parse_assignments, resolve
from genzoo.errors import ConfigError
from genzoo_vae.config import PRESETS, VAEConfig


def test_preset_then_override_order() -> None:
    model, train = resolve(VAEConfig, PRESETS["mlp"], {"latent_dim": "8", "lr": "0.01"})
    assert model.latent_dim == 8 and train.lr == 0.01
    assert model.hidden == (512, 512) and train.epochs == 50


def test_none_overrides_keep_preset_values() -> None:
    _, train = resolve(VAEConfig, PRESETS["tiny"], {"batch_size": None, "seed": None})
    assert train.batch_size == PRESETS["tiny"]["batch_size"] and train.seed == 0


@pytest.mark.parametrize(("key", "text", "expected"), [
    ("hidden", "64,32", (64, 32)),
    ("arch", "conv", "conv"),
    ("lr", "3e-4", 3e-4),
    ("steps", "none", None),
    ("grad_clip", "1", 1.0),
])
def test_values_are_parsed_by_field_type(key: str, text: str, expected: object) -> None:
    model, train = resolve(VAEConfig, PRESETS["mlp"], {key: text})
    assert getattr(model if hasattr(model, key) else train, key) == expected


@pytest.mark.parametrize(("overrides", "message"), [
    ({"latnt_dim": "3"}, "unknown config key 'latnt_dim'. Did you mean 'latent_dim'?"),
    ({"latent_dim": "x"}, "expected an integer, got 'x'"),
    ({"latent_dim": "0"}, "'latent_dim': must be positive"),
    ({"arch": "cnn"}, "invalid value for 'arch': 'cnn'"),
    ({"lr": "-1"}, "'lr': must be positive"),
    ({"batch_size": "0"}, "'batch_size': must be positive"),
    ({"hidden": "64,-1"}, "'hidden'"),
    ({"device": "tpu"}, "'device'"),
    ({"optimizer": "sgd"}, "invalid value for 'optimizer'"),
    ({"latent_dim": "\u0663"}, "expected an integer, got '\u0663'"),  # Arabic-Indic 3
    ({"lr": "\uff11e-3"}, "expected a number, got '\uff11e-3'"),  # a full-width 1
])
def test_bad_values_are_refused_with_the_key(overrides: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace("?", r"\?")):
        resolve(VAEConfig, PRESETS["mlp"], overrides)


def test_bool_is_not_an_int() -> None:
    with pytest.raises(ConfigError, match="expected an integer"):
        make_config(TrainConfig, {"steps": True})


def test_parse_assignments() -> None:
    assert parse_assignments(["a=1", " b = x=y "]) == {"a": "1", "b": "x=y"}
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        parse_assignments(["novalue"])


def test_every_builtin_preset_resolves() -> None:
    from genzoo.registry import get_registry

    for spec in get_registry().models.values():
        for name in spec.presets:
            resolve(spec.config, spec.preset(name), {})


@dataclass(frozen=True)
class _Commented(ModelConfig):
    width: int = 4  # units of the layer;
    #                 doubled in the second
    depth: int = 2  # layers
    # -- regularisation --
    rate: float = 0.1  # of dropout


def test_field_docs_read_continued_comments_but_not_section_headings() -> None:
    from genzoo.config import field_docs

    comments = {name: comment for name, _, _, comment in field_docs(_Commented)}
    assert comments == {"width": "units of the layer; doubled in the second",
                        "depth": "layers", "rate": "of dropout"}
