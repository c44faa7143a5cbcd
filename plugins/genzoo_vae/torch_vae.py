"""The VAE in PyTorch."""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from genzoo.distributed import global_draw
from genzoo.errors import ConfigError
from genzoo.protocols import DataInfo
from genzoo_vae.config import VAEConfig, binarize


def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) || N(0, 1)) per dimension, in closed form."""
    return 0.5 * (mu.square() + logvar.exp() - 1.0 - logvar)


def bernoulli_nll(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """-log p(x | logits) per pixel for binary x."""
    return F.binary_cross_entropy_with_logits(logits, x, reduction="none")


ACTIVATIONS = {"relu": nn.ReLU, "elu": nn.ELU, "gelu": nn.GELU, "tanh": nn.Tanh}


def _mlp(sizes: list[int], act: type[nn.Module]) -> list[nn.Module]:
    layers: list[nn.Module] = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(a, b), act()]
    return layers


class VAE(nn.Module):
    """x -> q(z|x) = N(mu, sigma^2) -> z -> p(x|z) = Bernoulli(sigmoid(logits))."""

    def __init__(self, config: VAEConfig, info: DataInfo):
        super().__init__()
        self.config = config
        self.shape = h, w, c = info.shape
        d, k = h * w * c, config.latent_dim
        # A cVAE's label (one-hot, K classes) goes into the encoder (beside the pixels,
        # or as K constant planes of a conv encoder) and into the decoder (beside z).
        self.classes = n_cls = info.num_classes if config.conditional else 0
        act = ACTIVATIONS[config.activation]
        if config.arch == "mlp":
            widths = list(config.hidden)
            self.encoder = nn.Sequential(nn.Flatten(), *_mlp([d + n_cls, *widths], act),
                                         nn.Linear(widths[-1], 2 * k))
            # A cVAE's decoder sees the label at every layer, not only beside z.
            sizes = [k, *widths[::-1]]
            self.decoder = nn.Sequential(*(m for a, b in zip(sizes[:-1], sizes[1:])
                                           for m in (nn.Linear(a + n_cls, b), act())),
                                         nn.Linear(widths[0] + n_cls, d))
        else:
            if h % 4 or w % 4:
                raise ConfigError(f"the conv VAE needs image sides divisible by 4, got {h}x{w}")
            ch, flat = config.channels, 2 * config.channels * (h // 4) * (w // 4)
            self.encoder = nn.Sequential(
                nn.Conv2d(c + n_cls, ch, 3, stride=2, padding=1), act(),  # (B, ch, H/2, W/2)
                nn.Conv2d(ch, 2 * ch, 3, stride=2, padding=1), act(),  # (B, 2ch, H/4, W/4)
                nn.Flatten(), nn.Linear(flat, config.hidden[0]), act(),
                nn.Linear(config.hidden[0], 2 * k),
            )
            self.decoder = nn.Sequential(
                nn.Linear(k + n_cls, config.hidden[0]), act(), nn.Linear(config.hidden[0], flat),
                act(), nn.Unflatten(1, (2 * ch, h // 4, w // 4)),
                nn.ConvTranspose2d(2 * ch, ch, 4, stride=2, padding=1), act(),
                nn.ConvTranspose2d(ch, c, 4, stride=2, padding=1),  # (B, C, H, W) logits
            )

    def encode(self, x: torch.Tensor,
               labels: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        if self.config.arch == "conv":
            x = x.permute(0, 3, 1, 2)  # NHWC -> NCHW
            if labels is not None:  # K constant planes: (B, C + K, H, W)
                planes = labels[:, :, None, None].expand(-1, -1, *x.shape[2:])
                x = torch.cat([x, planes], dim=1)
        elif labels is not None:
            x = torch.cat([x.flatten(1), labels], dim=1)  # (B, H*W*C + K)
        mu, logvar = self.encoder(x).chunk(2, dim=-1)  # (B, k) each
        return mu, logvar

    def decode(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Logits of p(x|z) (of p(x|z, y) for a cVAE), NHWC."""
        if labels is None:
            out = self.decoder(z)
        elif self.config.arch == "mlp":  # the label beside the input of every layer
            out, y = z, labels.to(z.dtype)
            for layer in self.decoder:
                out = layer(torch.cat([out, y], dim=-1) if isinstance(layer, nn.Linear) else out)
        else:
            out = self.decoder(torch.cat([z, labels.to(z.dtype)], dim=-1))
        if self.config.arch == "conv":
            return out.permute(0, 2, 3, 1)
        return out.reshape(-1, *self.shape)

    def loss(self, x: torch.Tensor, labels: torch.Tensor | None = None
             ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The negative ELBO in nats per image (of log p(x|y) for a cVAE), and its two
        terms."""
        if self.training:  # dynamic binarisation: a fresh binary image every step
            u = global_draw(lambda shape: torch.rand(shape, device=x.device), tuple(x.shape))
            x = (u < x).float()
        mu, logvar = self.encode(x, labels)
        eps = global_draw(lambda shape: torch.randn(shape, device=mu.device), tuple(mu.shape))
        z = mu + (0.5 * logvar).exp() * eps  # reparameterisation
        recon = bernoulli_nll(self.decode(z, labels), x).flatten(1).sum(1).mean()
        kl = gaussian_kl(mu, logvar).sum(1).mean()
        return recon + kl, {"recon": recon, "kl": kl}

    def noise(self, n: int, rng: torch.Generator) -> torch.Tensor:
        """z ~ N(0, I), the prior, scaled by the sampling ``temperature`` (1: the prior)."""
        z = torch.randn(n, self.config.latent_dim, generator=rng, device=rng.device)
        return z if self.config.temperature == 1 else z * self.config.temperature

    def render(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Bernoulli means of p(x|z) (p(x|z, y)): NHWC in [0, 1]."""
        return torch.sigmoid(self.decode(z, labels))

    def sample(self, n: int, rng: torch.Generator,
               labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.render(self.noise(n, rng), labels)

    @staticmethod
    def prepare_eval(x: np.ndarray) -> np.ndarray:
        return binarize(x)

    @torch.no_grad()
    def log_weights(self, x: torch.Tensor, k: int, rng: torch.Generator,
                    labels: torch.Tensor | None = None) -> torch.Tensor:
        """log p(x, z_i) - log q(z_i | x) for k samples z_i ~ q(z|x): shape (k, B).

        Their log-mean-exp is the k-sample importance-weighted bound on log p(x)
        (Burda et al., 2016); with k = 1 it is the ELBO. A cVAE's are of p(x | y).
        """
        mu, logvar = self.encode(x, labels)  # (B, d) each
        std = (0.5 * logvar).exp()
        eps = torch.randn(k, *mu.shape, generator=rng, device=mu.device)
        z = mu + std * eps  # (k, B, d)
        tiled = None if labels is None else labels.repeat(k, 1)  # row i*B + b: labels[b]
        logits = self.decode(z.reshape(-1, z.shape[-1]), tiled).reshape(k, *x.shape)
        log_px_z = -bernoulli_nll(logits, x.expand_as(logits)).flatten(2).sum(2)
        log_pz = -0.5 * (z.square() + math.log(2 * math.pi)).sum(2)
        log_qz = -0.5 * (eps.square() + logvar + math.log(2 * math.pi)).sum(2)
        return log_px_z + log_pz - log_qz
