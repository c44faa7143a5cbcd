"""The VAE family: a Gaussian encoder and a Bernoulli decoder, in PyTorch and Keras 3."""

from __future__ import annotations

from collections.abc import Callable

from genzoo import hookimpl
from genzoo.registry import ModelSpec
from genzoo_vae.config import PRESETS, VAEConfig

SPECS = tuple(
    ModelSpec(
        name="vae",
        backend=backend,
        kind="image",
        config=VAEConfig,
        builder=builder,
        presets=PRESETS,
        default_preset="mlp",
        default_dataset="digits",
        summary="Variational autoencoder: Gaussian encoder, Bernoulli decoder, binarised images",
        evaluator="genzoo_vae.evaluate:evaluate",
    )
    for backend, builder in (("torch", "genzoo_vae.torch_vae:VAE"),
                             ("keras", "genzoo_vae.keras_vae:VAE"))
)


@hookimpl
def register_models(register: Callable[[ModelSpec], None]) -> None:
    for spec in SPECS:
        register(spec)
