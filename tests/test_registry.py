"""Registry lookups: did-you-mean errors and spec validation."""

from __future__ import annotations

import pytest

from genzoo.errors import LookupFailed, did_you_mean
from genzoo.registry import ModelSpec, get_registry
from genzoo_vae.config import PRESETS, VAEConfig


@pytest.mark.parametrize(("call", "message"), [
    (lambda r: r.model("vea"), "unknown model 'vea'. Did you mean 'vae'?"),
    (lambda r: r.model("vae", "kears"), "no backend 'kears'. Did you mean 'keras'?"),
    (lambda r: r.model("vae").preset("cnv"), "unknown preset 'cnv' for vae. Did you mean 'conv'?"),
    (lambda r: r.dataset("mnst"), "unknown dataset 'mnst'. Did you mean 'mnist'?"),
])
def test_unknown_names_suggest_the_closest(call, message: str) -> None:
    with pytest.raises(LookupFailed) as info:
        call(get_registry())
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_did_you_mean_without_a_close_match_lists_choices() -> None:
    assert did_you_mean("zzz", ["b", "a"]) == " (choose from a, b)"


def _spec(**changes):
    base = dict(name="x", backend="torch", kind="image", config=VAEConfig, builder="m:C",
                presets=PRESETS, default_preset="mlp", default_dataset="digits", summary="s")
    return ModelSpec(**{**base, **changes})


@pytest.mark.parametrize(("changes", "message"), [
    ({"backend": "jax"}, "backend must be one of"),
    ({"kind": "audio"}, "kind must be one of"),
    ({"default_preset": "nope"}, "default preset"),
    ({"presets": {"mlp": {}}}, "tiny"),
    ({"kind": "text"}, "block_size"),  # the VAE's config has no context length
])
def test_model_spec_validates_itself(changes: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _spec(**changes)


def test_spec_presets_are_read_only() -> None:
    spec = _spec()
    with pytest.raises(TypeError):
        spec.presets["tiny"]["steps"] = 5  # type: ignore[index]
