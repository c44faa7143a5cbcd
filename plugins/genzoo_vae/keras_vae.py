"""The VAE in Keras 3: ``keras.ops`` and ``keras.random`` only, so it runs on any backend."""

from __future__ import annotations

import math
from typing import Any

import keras
import numpy as np
from keras import layers, ops

from genzoo.backends.keras import unpack_inputs
from genzoo.errors import ConfigError
from genzoo.protocols import DataInfo
from genzoo_vae.config import VAEConfig, binarize


def gaussian_kl(mu: Any, logvar: Any) -> Any:
    """KL(N(mu, exp(logvar)) || N(0, 1)) per dimension, in closed form."""
    return 0.5 * (ops.square(mu) + ops.exp(logvar) - 1.0 - logvar)


def bernoulli_nll(logits: Any, x: Any) -> Any:
    """-log p(x | logits) per pixel for binary x (a stable binary cross-entropy)."""
    return ops.softplus(logits) - x * logits


def _encoder(config: VAEConfig, shape: tuple[int, ...], classes: int) -> keras.Model:
    h, w, c = shape
    x = image = keras.Input(shape, name="enc_input")
    inputs: Any = image
    if classes:  # a cVAE: the one-hot label beside the pixels, or as K constant planes
        label = keras.Input((classes,), name="enc_labels")
        inputs = [image, label]
    if config.arch == "mlp":
        x = layers.Flatten(name="enc_flatten")(x)
        if classes:
            x = layers.Concatenate(name="enc_with_label")([x, label])
        for i, width in enumerate(config.hidden):
            x = layers.Dense(width, activation=config.activation, name=f"enc_dense{i}")(x)
    else:
        ch = config.channels
        if classes:
            planes = layers.Reshape((1, 1, classes), name="enc_label_planes")(label)
            planes = layers.UpSampling2D((h, w), name="enc_label_tile")(planes)
            x = layers.Concatenate(name="enc_with_label")([x, planes])
        x = layers.Conv2D(ch, 3, strides=2, padding="same", activation=config.activation, name="enc_conv0")(x)
        x = layers.Conv2D(2 * ch, 3, strides=2, padding="same", activation=config.activation,
                          name="enc_conv1")(x)  # (B, H/4, W/4, 2ch)
        x = layers.Flatten(name="enc_flatten")(x)
        x = layers.Dense(config.hidden[0], activation=config.activation, name="enc_dense0")(x)
    stats = layers.Dense(2 * config.latent_dim, name="enc_stats")(x)  # (B, 2k): mu, logvar
    return keras.Model(inputs, stats, name="encoder")


def _decoder(config: VAEConfig, shape: tuple[int, ...], classes: int) -> keras.Model:
    h, w, c = shape
    z = latent = keras.Input((config.latent_dim,), name="dec_input")
    inputs: Any = latent
    if classes:  # a cVAE: the one-hot label beside z (beside every layer's input, mlp)
        label = keras.Input((classes,), name="dec_labels")
        inputs = [latent, label]

    def with_label(x: Any, i: int) -> Any:
        return layers.Concatenate(name=f"dec_with_label{i}")([x, label]) if classes else x

    if config.arch == "mlp":
        for i, width in enumerate(config.hidden[::-1]):
            z = layers.Dense(width, activation=config.activation,
                             name=f"dec_dense{i}")(with_label(z, i))
        z = layers.Dense(h * w * c, name="dec_logits")(with_label(z, len(config.hidden)))
        logits = layers.Reshape(shape, name="dec_reshape")(z)
    else:
        ch = config.channels
        z = layers.Dense(config.hidden[0], activation=config.activation,
                         name="dec_dense0")(with_label(z, 0))
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
        self.classes = info.num_classes if config.conditional else 0
        self.encoder = _encoder(config, info.shape, self.classes)
        self.decoder = _decoder(config, info.shape, self.classes)
        self.seed_generator = keras.random.SeedGenerator(name="vae_seeds")
        self.recon_tracker = keras.metrics.Mean(name="recon")
        self.kl_tracker = keras.metrics.Mean(name="kl")

    def _with(self, x: Any, labels: Any) -> Any:
        """A network's input: ``x`` alone, or ``[x, labels]`` for a cVAE."""
        if labels is None:
            return x
        return [ops.convert_to_tensor(x, "float32"), ops.convert_to_tensor(labels, "float32")]

    def call(self, x: Any, training: bool = False) -> tuple[Any, Any, Any, Any]:
        x, labels = unpack_inputs(x)  # a cVAE's input is (images, one-hot labels)
        if training:  # dynamic binarisation: a fresh binary image every step
            u = keras.random.uniform(ops.shape(x), seed=self.seed_generator)
            x = ops.cast(u < x, "float32")
        mu, logvar = ops.split(self.encoder(self._with(x, labels)), 2, axis=-1)  # (B, k) each
        eps = keras.random.normal(ops.shape(mu), seed=self.seed_generator)
        z = mu + ops.exp(0.5 * logvar) * eps  # reparameterisation
        return x, mu, logvar, self.decoder(self._with(z, labels))

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
        """z ~ N(0, I), the prior, scaled by the sampling ``temperature`` (1: the prior)."""
        z = keras.random.normal((n, self.config.latent_dim), seed=seed)
        return z if self.config.temperature == 1 else z * self.config.temperature

    def render(self, z: Any, labels: Any = None) -> Any:
        """Bernoulli means of p(x|z) (p(x|z, y)): NHWC in [0, 1]."""
        return ops.sigmoid(self.decoder(self._with(z, labels)))

    def sample(self, n: int, seed_generator: keras.random.SeedGenerator,
               labels: Any = None) -> Any:
        return self.render(self.noise(n, seed_generator), labels)

    @staticmethod
    def prepare_eval(x: np.ndarray) -> np.ndarray:
        return binarize(x)

    def log_weights(self, x: Any, k: int, seed: Any, labels: Any = None) -> Any:
        """log p(x, z_i) - log q(z_i | x) for k samples z_i ~ q(z|x): shape (k, B).

        Their log-mean-exp is the k-sample importance-weighted bound on log p(x)
        (Burda et al., 2016); with k = 1 it is the ELBO. A cVAE's are of p(x | y).
        """
        x = ops.convert_to_tensor(x)
        mu, logvar = ops.split(self.encoder(self._with(x, labels)), 2, axis=-1)  # (B, d) each
        eps = keras.random.normal((k, *ops.shape(mu)), seed=seed)
        z = mu + ops.exp(0.5 * logvar) * eps  # (k, B, d)
        b, d = ops.shape(mu)
        tiled = None if labels is None else ops.tile(ops.convert_to_tensor(labels, "float32"),
                                                     (k, 1))  # row i*B + b: labels[b]
        logits = ops.reshape(self.decoder(self._with(ops.reshape(z, (k * b, d)), tiled)),
                             (k, b, -1))
        log_px_z = -ops.sum(bernoulli_nll(logits, ops.reshape(x, (1, b, -1))), axis=2)
        log_pz = -0.5 * ops.sum(ops.square(z) + math.log(2 * math.pi), axis=2)
        log_qz = -0.5 * ops.sum(ops.square(eps) + logvar + math.log(2 * math.pi), axis=2)
        return log_px_z + log_pz - log_qz
