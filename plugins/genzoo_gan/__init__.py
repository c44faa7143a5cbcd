"""The GAN family: DCGAN trained the SNGAN way (the default), the classic DCGAN and MLP
GAN, and the conditional DCGAN, in PyTorch and Keras 3."""

from __future__ import annotations

from collections.abc import Callable

from genzoo import hookimpl
from genzoo.registry import ModelSpec
from genzoo_gan.config import PRESETS, GANConfig

SPECS = tuple(
    ModelSpec(
        name="gan", backend=backend, kind="image", config=GANConfig, builder=builder,
        presets=PRESETS, default_preset="sngan", default_dataset="mnist",
        summary="Generative adversarial network: DCGAN with the SNGAN recipe, two optimizers",
        monitor="loss_d",
    )
    for backend, builder in (("torch", "genzoo_gan.torch_gan:GAN"),
                             ("keras", "genzoo_gan.keras_gan:GAN"))
)


@hookimpl
def register_models(register: Callable[[ModelSpec], None]) -> None:
    for spec in SPECS:
        register(spec)
