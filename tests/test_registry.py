"""Registry lookups: did-you-mean errors and spec validation."""

from __future__ import annotations

from dataclasses import KW_ONLY, InitVar, dataclass
from typing import ClassVar

import pytest

from genzoo.errors import LookupFailed, did_you_mean
from genzoo.registry import ModelSpec, get_registry
from genzoo_vae.config import PRESETS, VAEConfig


@pytest.mark.parametrize(("call", "message"), [
    (lambda r: r.model("vea"), "unknown model 'vea'. Did you mean 'vae'?"),
    (lambda r: r.model("VAE"), "unknown model 'VAE'. Did you mean 'vae'?"),
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


class NotADataclass(VAEConfig.__base__):  # type: ignore[name-defined,misc]
    latent_dim: int = 4  # no @dataclass: the field is not a dataclass field


@dataclass(frozen=True)
class Clashing(VAEConfig):
    steps: int = 3  # the name of a training setting


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
    ({"name": "My/Model"}, "model name 'My/Model' must be"),
    ({"builder": "package.module.Class"}, "builder must be an import path"),
    ({"evaluator": "m:"}, "evaluator must be an import path"),
    # A plugin's own preset typo is caught when it registers, naming the preset.
    ({"presets": {**PRESETS, "tiny": {"latentdim": 4, "steps": 3}}},
     "preset 'tiny': unknown config key 'latentdim'. Did you mean 'latent_dim'"),
    ({"presets": {**PRESETS, "tiny": {"steps": "many"}}},
     "preset 'tiny': invalid value for 'steps': expected an integer"),
    ({"presets": {**PRESETS, "tiny": {"latent_dim": 0}}},
     "preset 'tiny': invalid value for 'latent_dim'"),
    ({"config": NotADataclass}, "must be a dataclass"),
    ({"presets": {**PRESETS, "tiny": {"lr": -5.0, "steps": 3}}},
     "preset 'tiny': invalid value for 'lr': must be positive"),
    ({"config": Clashing}, "field.s. steps clash with training settings"),
])
def test_model_spec_validates_itself(changes: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _spec(**changes)


def test_a_broken_import_path_names_the_model_and_the_path(tmp_path, monkeypatch) -> None:
    from genzoo.errors import PluginError
    from genzoo.registry import import_object

    (tmp_path / "needs_missing.py").write_text("import no_such_framework\nclass Model: pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    cases = {
        "genzoo_vae.torch_vae:VAF": "'genzoo_vae.torch_vae' has no attribute 'VAF'. "
                                    "Did you mean 'VAE'?",
        "genzoo_vae.torch_vea:VAE": "there is no module 'genzoo_vae.torch_vea'",
        "needs_missing:Model": "it needs 'no_such_framework', which is not installed",
    }
    for path, message in cases.items():
        with pytest.raises(PluginError) as info:
            import_object(path, "builder of model 'x'")
        assert str(info.value) == f"cannot import the builder of model 'x' ({path}): {message}"


def test_spec_presets_are_read_only() -> None:
    spec = _spec()
    with pytest.raises(TypeError):
        spec.presets["tiny"]["steps"] = 5  # type: ignore[index]


def test_valid_dataclass_features_are_accepted() -> None:
    @dataclass(frozen=True)
    class Fancy(VAEConfig):
        version: ClassVar[int] = 2
        _: KW_ONLY
        scale: InitVar[float] = 1.0

        def __post_init__(self, scale: float) -> None:
            pass

    assert _spec(config=Fancy).config is Fancy


def test_empty_tensors_and_metadata_save_and_load() -> None:
    from safetensors.numpy import load

    from genzoo.checkpoint import tensors_to_bytes

    assert load(tensors_to_bytes({}, {})) == {}
