"""The GAN's config and presets (no framework imports: listing models reads this)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

from genzoo.config import ModelConfig, require


@dataclass(frozen=True)
class GANConfig(ModelConfig):
    """A generator G(z) and a discriminator D(x), trained with separate optimizers."""

    arch: Literal["mlp", "dcgan"] = "dcgan"  # fully connected, or convolutional (DCGAN)
    latent_dim: int = 100  # dimensions of the noise z ~ N(0, I)
    g_hidden: tuple[int, ...] = (128, 256, 512)  # mlp: generator widths
    d_hidden: tuple[int, ...] = (512, 256, 128)  # mlp: discriminator widths
    channels: int = 64  # dcgan: channels at half resolution (doubled at quarter resolution)
    d_dropout: float = 0.3  # dropout in the mlp discriminator
    leak: float = 0.2  # LeakyReLU slope
    conditional: bool = False  # a cGAN: G(z, y), and a projection discriminator D(x, y)
    aux_weight: float = 0.0  # cGAN: weight of the loss of a classifier on D's features
    loss: Literal["bce", "hinge"] = "bce"  # non-saturating cross-entropy, or the hinge loss
    spectral_norm: bool = False  # divide each of D's weight matrices by its largest singular value
    d_lr_scale: float = 1.0  # D's learning rate as a multiple of lr (two time-scale updates)
    info_codes: int = 0  # InfoGAN: a categorical code of this many values beside z (0: none)
    info_weight: float = 1.0  # InfoGAN: weight of the loss of recovering the code from G(z, c)
    temperature: float = 1.0  # sampling: z ~ N(0, temperature² I); below 1: cleaner, less varied

    SAMPLING: ClassVar[tuple[str, ...]] = ("temperature",)  # may change after training

    def validate(self) -> None:
        require(self.latent_dim > 0, "latent_dim", "must be positive")
        for name in ("g_hidden", "d_hidden"):
            widths = getattr(self, name)
            require(len(widths) > 0 and all(w > 0 for w in widths), name,
                    "must be a non-empty list of positive widths")
        require(self.channels > 0, "channels", "must be positive")
        require(0 <= self.d_dropout < 1, "d_dropout", "must lie in [0, 1)")
        require(0 <= self.leak < 1, "leak", "must lie in [0, 1)")
        require(self.aux_weight >= 0, "aux_weight", "must not be negative")
        require(self.loss in ("bce", "hinge"), "loss", "must be bce or hinge")
        require(self.d_lr_scale > 0, "d_lr_scale", "must be positive")
        require(self.info_codes >= 0, "info_codes", "must not be negative")
        require(self.info_codes != 1, "info_codes", "must be 0 (none) or at least 2")
        require(self.info_weight >= 0, "info_weight", "must not be negative")
        require(0 < self.temperature <= 10, "temperature", "must lie in (0, 10]")
        require(self.info_codes == 0 or not self.conditional, "info_codes",
                "is for unconditional GANs (a cGAN's label already picks the mode)")
        require(self.aux_weight == 0 or self.conditional, "aux_weight",
                "needs conditional=true (the classifier learns the labels)")


# Radford et al.'s optimiser settings for both networks: Adam, lr 2e-4, beta1 0.5.
_ADAM = {"lr": 2e-4, "beta1": 0.5, "beta2": 0.999}

PRESETS = {
    # DCGAN for 28x28 and 32x32 images (any size divisible by 4), as Radford et al. train it.
    "dcgan": {**_ADAM, "arch": "dcgan", "latent_dim": 100, "channels": 64, "epochs": 5,
              "batch_size": 128, "log_every": 50, "checkpoint_every": 1000},
    # The classic fully connected GAN: G 100-128-256-512-784, D 784-512-256-128-1.
    "mlp": {**_ADAM, "arch": "mlp", "latent_dim": 100, "g_hidden": (128, 256, 512),
            "d_hidden": (512, 256, 128), "epochs": 20, "batch_size": 64, "log_every": 100,
            "checkpoint_every": 2000},
    # The default: DCGAN's networks trained as SNGAN trains them (Miyato et al., 2018):
    # the hinge loss, spectral normalisation in D, Adam with beta1 0 and beta2 0.9, D's
    # learning rate twice G's, batch 64, and samples from the generator's moving average.
    "sngan": {"arch": "dcgan", "latent_dim": 100, "channels": 64, "loss": "hinge",
              "spectral_norm": True, "lr": 4e-4, "beta1": 0.0, "beta2": 0.9,
              "d_lr_scale": 2.0, "ema_decay": 0.999, "epochs": 8, "batch_size": 64,
              "log_every": 50, "checkpoint_every": 1000},
    "tiny": {**_ADAM, "lr": 1e-3, "arch": "mlp", "latent_dim": 8, "g_hidden": (32,),
             "d_hidden": (32,), "steps": 30, "batch_size": 32, "log_every": 10,
             "eval_every": 15, "checkpoint_every": 10},
}
# The conditional DCGAN: the label joins z at G's input; D projects it onto its features.
PRESETS["cgan"] = {**PRESETS["dcgan"], "conditional": True, "aux_weight": 1.0}
PRESETS["tiny-conditional"] = {**PRESETS["tiny"], "conditional": True, "aux_weight": 1.0}
