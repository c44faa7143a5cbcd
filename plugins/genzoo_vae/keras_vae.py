"""The VAE in Keras 3: ``keras.ops`` and ``keras.random`` only, so it runs on any backend."""

from __future__ import annotations

import math
from typing import Any

import keras
import numpy as np
from keras import layers, ops

from genzoo.errors import ConfigError
from genzoo.protocols import DataInfo
from genzoo_vae.config import VAEConfig, binarize


def gaussian_kl(mu: Any, logvar: Any) -> Any:
    """KL(N(mu, exp(logvar)) || N(0, 1)) per dimension, in closed form."""
    return 0.5 * (ops.square(mu) + ops.exp(logvar) - 1.0 - logvar)


def bernoulli_nll(logits: Any, x: Any) -> Any:
    """-log p(x | logits) per pixel for binary x (a stable binary cross-entropy)."""
    return ops.softplus(logits) - x * logits


def _encoder(config: VAEConfig, shape: tuple[int, ...]) -> keras.Model:
    h, w, c = shape
    x = inputs = keras.Input(shape, name="enc_input")
    if config.arch == "mlp":
        x = layers.Flatten(name="enc_flatten")(x)
        for i, width in enumerate(config.hidden):
            x = layers.Dense(width, activation=config.activation, name=f"enc_dense{i}")(x)
    else:
        ch = config.channels
        x = layers.Conv2D(ch, 3, strides=2, padding="same", activation=config.activation, name="enc_conv0")(x)
        x = layers.Conv2D(2 * ch, 3, strides=2, padding="same", activation=config.activation,
                          name="enc_conv1")(x)  # (B, H/4, W/4, 2ch)
        x = layers.Flatten(name="enc_flatten")(x)
        x = layers.Dense(config.hidden[0], activation=config.activation, name="enc_dense0")(x)
    stats = layers.Dense(2 * config.latent_dim, name="enc_stats")(x)  # (B, 2k): mu, logvar
    return keras.Model(inputs, stats, name="encoder")


def _decoder(config: VAEConfig, shape: tuple[int, ...]) -> keras.Model:
    h, w, c = shape
    z = inputs = keras.Input((config.latent_dim,), name="dec_input")
    if config.arch == "mlp":
        for i, width in enumerate(config.hidden[::-1]):
            z = layers.Dense(width, activation=config.activation, name=f"dec_dense{i}")(z)
        z = layers.Dense(h * w * c, name="dec_logits")(z)
        logits = layers.Reshape(shape, name="dec_reshape")(z)
    else:
        ch = config.channels
        z = layers.Dense(config.hidden[0], activation=config.activation, name="dec_dense0")(z)
        z = layers.Dense(2 * ch * (h // 4) * (w // 4), activation=config.activation, name="dec_dense1")(z)
        z = layers.Reshape((h // 4, w // 4, 2 * ch), name="dec_reshape")(z)
        z = layers.Conv2DTranspose(ch, 4, strides=2, padding="same", activation=config.activation,
                                   name="dec_deconv0")(z)
        logits = layers.Conv2DTranspose(c, 4, strides=2, padding="same",
                                        name="dec_deconv1")(z)  # (B, H, W, C)
    return keras.Model(inputs, logits, name="decoder")


class VAE(keras.Model):
    """x -> q(z|x) = N(mu, sigma^2) -> z -> p(x|z) = Bernoulli(sigmoid(logits))."""

    def __init__(self, config: VAEConfig, info: DataInfo, **kwargs: Any):
        super().__init__(name="vae", **kwargs)
        h, w, _ = info.shape
        if config.arch == "conv" and (h % 4 or w % 4):
            raise ConfigError(f"the conv VAE needs image sides divisible by 4, got {h}x{w}")
        self.config = config
        self.encoder = _encoder(config, info.shape)
        self.decoder = _decoder(config, info.shape)
        self.seed_generator = keras.random.SeedGenerator(name="vae_seeds")
        self.recon_tracker = keras.metrics.Mean(name="recon")
        self.kl_tracker = keras.metrics.Mean(name="kl")

    def call(self, x: Any, training: bool = False) -> tuple[Any, Any, Any, Any]:
        if training:  # dynamic binarisation: a fresh binary image every step
            u = keras.random.uniform(ops.shape(x), seed=self.seed_generator)
            x = ops.cast(u < x, "float32")
        mu, logvar = ops.split(self.encoder(x), 2, axis=-1)  # (B, k) each
        eps = keras.random.normal(ops.shape(mu), seed=self.seed_generator)
        z = mu + ops.exp(0.5 * logvar) * eps  # reparameterisation
        return x, mu, logvar, self.decoder(z)

    def compute_loss(self, x: Any = None, y: Any = None, y_pred: Any = None,
                     sample_weight: Any = None, training: bool = True) -> Any:
        """The negative ELBO in nats per image."""
        xb, mu, logvar, logits = y_pred
        recon = ops.mean(ops.sum(ops.reshape(bernoulli_nll(logits, xb), (ops.shape(xb)[0], -1)),
                                 axis=1))
        kl = ops.mean(ops.sum(gaussian_kl(mu, logvar), axis=1))
        self.recon_tracker.update_state(recon)
        self.kl_tracker.update_state(kl)
        return recon + kl

    def noise(self, n: int, seed: Any) -> Any:
        """z ~ N(0, I), the prior."""
        return keras.random.normal((n, self.config.latent_dim), seed=seed)

    def render(self, z: Any) -> Any:
        """Bernoulli means of p(x|z): NHWC in [0, 1]."""
        return ops.sigmoid(self.decoder(z))

    def sample(self, n: int, seed_generator: keras.random.SeedGenerator) -> Any:
        return self.render(self.noise(n, seed_generator))

    @staticmethod
    def prepare_eval(x: np.ndarray) -> np.ndarray:
        return binarize(x)

    def log_weights(self, x: Any, k: int, seed: Any) -> Any:
        """log p(x, z_i) - log q(z_i | x) for k samples z_i ~ q(z|x): shape (k, B).

        Their log-mean-exp is the k-sample importance-weighted bound on log p(x)
        (Burda et al., 2016); with k = 1 it is the ELBO.
        """
        x = ops.convert_to_tensor(x)
        mu, logvar = ops.split(self.encoder(x), 2, axis=-1)  # (B, d) each
        eps = keras.random.normal((k, *ops.shape(mu)), seed=seed)
        z = mu + ops.exp(0.5 * logvar) * eps  # (k, B, d)
        b, d = ops.shape(mu)
        logits = ops.reshape(self.decoder(ops.reshape(z, (k * b, d))), (k, b, -1))
        log_px_z = -ops.sum(bernoulli_nll(logits, ops.reshape(x, (1, b, -1))), axis=2)
        log_pz = -0.5 * ops.sum(ops.square(z) + math.log(2 * math.pi), axis=2)
        log_qz = -0.5 * ops.sum(ops.square(eps) + logvar + math.log(2 * math.pi), axis=2)
        return log_px_z + log_pz - log_qz
