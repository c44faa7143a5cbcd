"""The template's network, once per framework: the same small variational autoencoder,
with the same layers, sizes and config names, as a torch ``nn.Module`` and as a
``keras.Model``. ``genzoo plugin new`` writes them as ``torch_model.py`` and
``keras_model.py``; the generated tests check that both build as many parameters."""

from __future__ import annotations

from string import Template

TORCH_MODEL = Template('''\
"""$name in PyTorch: a small variational autoencoder. Replace the network with yours;
keep the methods genzoo calls.

- ``loss(x)``: genzoo's trainer runs it on every batch, then zeroes the gradients,
  backpropagates, averages them over processes under torchrun, clips them (--grad-clip),
  steps the optimizer and follows the learning-rate schedule. For several optimizers or
  a step of your own, define ``configure_optimizers`` and ``train_step`` (see the
  tutorial and the GAN, plugins/genzoo_gan/torch_gan.py).
- ``sample(n, rng)``, and ``noise(n, rng)`` / ``render(z)``, which give
  ``genzoo sample RUN --interpolate`` a latent space to walk through.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from genzoo.distributed import global_draw


class Model(nn.Module):
    """Built as ``Model(config, data_info)``; ``data_info.shape`` is (H, W, C)."""

    def __init__(self, config, info):
        super().__init__()
        self.config = config
        self.shape = tuple(info.shape)
        h, w, c = self.shape
        self.encoder = nn.Sequential(  # x -> (mu, logvar) of q(z|x)
            nn.Flatten(), nn.Linear(h * w * c, config.hidden), nn.ReLU(),
            nn.Linear(config.hidden, 2 * config.latent_dim))
        self.decoder = nn.Sequential(  # z -> logits of p(x|z)
            nn.Linear(config.latent_dim, config.hidden), nn.ReLU(),
            nn.Linear(config.hidden, h * w * c))

    # -- training ----------------------------------------------------------------------
    def loss(self, x):
        """x: a batch of images, NHWC float32 in [0, 1]. Returns (loss, {name: metric})."""
        mu, logvar = self.encoder(x).chunk(2, dim=-1)
        # Per-example noise comes from global_draw: under torchrun every process draws it
        # for the global batch and keeps its own slice, so N processes train exactly as
        # one does (torch.randn_like would give every process the same numbers).
        eps = global_draw(lambda shape: torch.randn(shape, device=mu.device), tuple(mu.shape))
        z = mu + (0.5 * logvar).exp() * eps  # the reparameterisation trick
        logits = self.decoder(z)
        recon = F.binary_cross_entropy_with_logits(logits, x.flatten(1),
                                                   reduction="none").sum(1).mean()
        kl = 0.5 * (mu.square() + logvar.exp() - 1 - logvar).sum(1).mean()
        return recon + kl, {"recon": recon, "kl": kl}

    # -- sampling: every random number from ``rng`` (a torch.Generator), for --seed ----
    def noise(self, n, rng):
        """n latent vectors z ~ N(0, I), the prior."""
        return torch.randn(n, self.config.latent_dim, generator=rng, device=rng.device)

    def render(self, z):
        """Images NHWC in [0, 1] from latent vectors, one per row of z."""
        return torch.sigmoid(self.decoder(z)).reshape(-1, *self.shape)

    def sample(self, n, rng):
        """n images, NHWC in [0, 1]."""
        return self.render(self.noise(n, rng))
''')

KERAS_MODEL = Template('''\
"""$name in Keras 3: the same variational autoencoder as torch_model.py, written with
``keras.ops`` and ``keras.random`` only, so it trains on Keras's TensorFlow backend and on
its torch backend (KERAS_BACKEND=torch). Replace the network with yours; keep the methods
genzoo calls.

- ``call`` and ``compute_loss``: genzoo compiles the model with its optimizer (clipping
  from --grad-clip) and trains it with ``train_on_batch``, so Keras computes the
  gradients on every backend; genzoo sets the learning rate of each step. For several
  optimizers, define ``configure_optimizers`` and ``train_step`` (see the tutorial and
  the GAN, plugins/genzoo_gan/keras_gan.py).
- ``sample(n, seed_generator)``, and ``noise(n, seed)`` / ``render(z)``, which give
  ``genzoo sample RUN --interpolate`` a latent space to walk through.
"""

from __future__ import annotations

import keras
from keras import layers, ops


class Model(keras.Model):
    """Built as ``Model(config, data_info)``; ``data_info.shape`` is (H, W, C)."""

    def __init__(self, config, info, **kwargs):
        super().__init__(name="$package", **kwargs)
        self.config = config
        h, w, c = info.shape
        # Name every layer: weight names must be the same in every process.
        self.encoder = keras.Sequential([  # x -> (mu, logvar) of q(z|x)
            keras.Input(tuple(info.shape)), layers.Flatten(name="enc_flat"),
            layers.Dense(config.hidden, activation="relu", name="enc_hidden"),
            layers.Dense(2 * config.latent_dim, name="enc_stats")], name="encoder")
        self.decoder = keras.Sequential([  # z -> logits of p(x|z)
            keras.Input((config.latent_dim,)),
            layers.Dense(config.hidden, activation="relu", name="dec_hidden"),
            layers.Dense(h * w * c, name="dec_logits"), layers.Reshape(tuple(info.shape))],
            name="decoder")
        # All training randomness comes from here: genzoo saves its state in checkpoints
        # (exact resumes) and gives each process or device its own stream.
        self.seeds = keras.random.SeedGenerator(name="seeds")
        self.recon_tracker = keras.metrics.Mean(name="recon")  # logged beside the loss
        self.kl_tracker = keras.metrics.Mean(name="kl")

    # -- training ----------------------------------------------------------------------
    def call(self, x, training=False):
        mu, logvar = ops.split(self.encoder(x), 2, axis=-1)
        eps = keras.random.normal(ops.shape(mu), seed=self.seeds)
        z = mu + ops.exp(0.5 * logvar) * eps  # the reparameterisation trick
        return mu, logvar, self.decoder(z)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        """x: a batch of images, NHWC float32 in [0, 1]; y_pred: what ``call`` returned."""
        mu, logvar, logits = y_pred
        x = ops.convert_to_tensor(x, dtype=logits.dtype)  # a NumPy batch on some backends
        per_pixel = ops.softplus(logits) - x * logits  # binary cross-entropy with logits
        recon = ops.mean(ops.sum(ops.reshape(per_pixel, (ops.shape(x)[0], -1)), axis=1))
        kl = ops.mean(ops.sum(0.5 * (ops.square(mu) + ops.exp(logvar) - 1 - logvar), axis=1))
        self.recon_tracker.update_state(recon)
        self.kl_tracker.update_state(kl)
        return recon + kl

    # -- sampling: every random number from the given seed generator, for --seed -------
    def noise(self, n, seed):
        """n latent vectors z ~ N(0, I), the prior."""
        return keras.random.normal((n, self.config.latent_dim), seed=seed)

    def render(self, z):
        """Images NHWC in [0, 1] from latent vectors, one per row of z."""
        return ops.sigmoid(self.decoder(z))

    def sample(self, n, seed_generator):
        """n images, NHWC in [0, 1]."""
        return self.render(self.noise(n, seed_generator))
''')
