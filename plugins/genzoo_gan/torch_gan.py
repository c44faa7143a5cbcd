"""The GAN in PyTorch: separate optimizers, the non-saturating generator loss."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from genzoo.distributed import global_draw
from genzoo.errors import ConfigError
from genzoo.protocols import DataInfo
from genzoo_gan.config import GANConfig

EVAL_SEED = 1234  # evaluation noise is fixed, so validation numbers compare across steps
# genzoo 0.x before the rename saved G and D as "generator.*" and "discriminator.*"
LEGACY_PREFIXES = {"generator.": "g_net.", "discriminator.": "d_net."}


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """The sum of two cross-entropies: real images labelled 1, generated ones 0."""
    return (F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
            + F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits)))


def generator_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """Non-saturating: G is trained to make D answer "real", -log D(G(z))."""
    return F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))


def _mlp_generator(cfg: GANConfig, d: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    sizes = [cfg.latent_dim, *cfg.g_hidden]
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(a, b), nn.LeakyReLU(cfg.leak)]
    return nn.Sequential(*layers, nn.Linear(sizes[-1], d), nn.Tanh())


def _mlp_discriminator(cfg: GANConfig, d: int) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Flatten()]
    sizes = [d, *cfg.d_hidden]
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(a, b), nn.LeakyReLU(cfg.leak), nn.Dropout(cfg.d_dropout)]
    return nn.Sequential(*layers, nn.Linear(sizes[-1], 1))


def _dcgan_generator(cfg: GANConfig, h: int, w: int, c: int) -> nn.Sequential:
    ch = cfg.channels
    return nn.Sequential(
        nn.Linear(cfg.latent_dim, 2 * ch * (h // 4) * (w // 4), bias=False),
        nn.BatchNorm1d(2 * ch * (h // 4) * (w // 4)), nn.ReLU(),
        nn.Unflatten(1, (2 * ch, h // 4, w // 4)),  # (B, 2ch, H/4, W/4)
        nn.ConvTranspose2d(2 * ch, ch, 4, stride=2, padding=1, bias=False),
        nn.BatchNorm2d(ch), nn.ReLU(),  # (B, ch, H/2, W/2)
        nn.ConvTranspose2d(ch, c, 4, stride=2, padding=1), nn.Tanh(),  # (B, C, H, W)
    )


def _dcgan_discriminator(cfg: GANConfig, h: int, w: int, c: int) -> nn.Sequential:
    ch = cfg.channels
    return nn.Sequential(
        nn.Conv2d(c, ch, 4, stride=2, padding=1), nn.LeakyReLU(cfg.leak),  # (B, ch, H/2, W/2)
        nn.Conv2d(ch, 2 * ch, 4, stride=2, padding=1), nn.LeakyReLU(cfg.leak),
        nn.Flatten(), nn.Linear(2 * ch * (h // 4) * (w // 4), 1),  # (B, 1) logits
    )


class GAN(nn.Module):
    """G maps noise to images in [-1, 1]; D maps images to a logit of "real"."""

    def __init__(self, config: GANConfig, info: DataInfo):
        super().__init__()
        self.config = config
        self.shape = h, w, c = info.shape
        if config.arch == "mlp":
            self.g_net = _mlp_generator(config, h * w * c)
            self.d_net = _mlp_discriminator(config, h * w * c)
        else:
            if h % 4 or w % 4:
                raise ConfigError(f"DCGAN needs image sides divisible by 4, got {h}x{w}")
            self.g_net = _dcgan_generator(config, h, w, c)
            self.d_net = _dcgan_discriminator(config, h, w, c)

    @staticmethod
    def upgrade_state(tensors: Mapping[str, Any]) -> dict[str, Any]:
        """Weights saved under the networks' old names load under the new ones."""
        out = {}
        for key, value in tensors.items():
            old = next((p for p in LEGACY_PREFIXES if key.startswith(p)), None)
            out[LEGACY_PREFIXES[old] + key[len(old):] if old else key] = value
        return out

    # -- the two networks on NHWC tensors in [-1, 1] -------------------------------------
    def fake(self, z: torch.Tensor, net: nn.Module | None = None) -> torch.Tensor:
        """``net`` replaces G's network: the trainer's data-parallel wrapper of it."""
        out = (net or self.g_net)(z)
        if self.config.arch == "dcgan":
            return out.permute(0, 2, 3, 1)  # NCHW -> NHWC
        return out.reshape(-1, *self.shape)

    def discriminate(self, x: torch.Tensor, net: nn.Module | None = None) -> torch.Tensor:
        if self.config.arch == "dcgan":
            x = x.permute(0, 3, 1, 2)
        return (net or self.d_net)(x).squeeze(1)  # (B,) logits

    def noise(self, n: int, rng: torch.Generator | None = None) -> torch.Tensor:
        device = next(self.parameters()).device
        if rng is None:  # training: each rank takes its slice of the global draw
            return global_draw(lambda shape: torch.randn(shape, device=device),
                               (n, self.config.latent_dim))
        return torch.randn(n, self.config.latent_dim, generator=rng, device=device)

    # -- training --------------------------------------------------------------------------
    def configure_optimizers(self, make: Any) -> dict[str, torch.optim.Optimizer]:
        """One optimizer per network: a shared one would let each loss move both."""
        return {"opt_d": make(self.d_net.parameters()),
                "opt_g": make(self.g_net.parameters())}

    def d_step(self, real: torch.Tensor, trainer: Any) -> dict[str, torch.Tensor]:
        """Update D on a real batch and a generated one; G's weights do not move."""
        with torch.no_grad():
            fake = self.fake(self.noise(len(real)))
        d_net = trainer.parallel(self.d_net)  # DDP under torchrun
        real_logits, fake_logits = self.discriminate(real, d_net), self.discriminate(fake, d_net)
        loss = discriminator_loss(real_logits, fake_logits)
        trainer.backward(loss, trainer.optimizers["opt_d"])
        return _stats(loss, real_logits.detach(), fake_logits.detach())

    def g_step(self, n: int, trainer: Any) -> torch.Tensor:
        """Update G with fresh noise through a frozen D."""
        self.d_net.requires_grad_(False)
        try:
            g_net = trainer.parallel(self.g_net)  # DDP under torchrun
            loss = generator_loss(self.discriminate(self.fake(self.noise(n), g_net)))
            trainer.backward(loss, trainer.optimizers["opt_g"])
        finally:
            self.d_net.requires_grad_(True)
        return loss.detach()

    def train_step(self, x: torch.Tensor, trainer: Any) -> dict[str, torch.Tensor]:
        real = x * 2.0 - 1.0  # the data in [-1, 1], like G's tanh output
        d = self.d_step(real, trainer)
        return {"loss_d": d.pop("loss_d"), "loss_g": self.g_step(len(real), trainer), **d}

    def evaluate(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """The training metrics on a validation batch, with fixed noise (no update)."""
        real = x * 2.0 - 1.0
        noise = torch.Generator(device=real.device).manual_seed(EVAL_SEED)
        fake = self.fake(self.noise(len(real), noise))
        real_logits, fake_logits = self.discriminate(real), self.discriminate(fake)
        d = _stats(discriminator_loss(real_logits, fake_logits), real_logits, fake_logits)
        return {"loss_d": d.pop("loss_d"), "loss_g": generator_loss(fake_logits), **d}

    def sample(self, n: int, rng: torch.Generator) -> torch.Tensor:
        return self.render(self.noise(n, rng))

    def render(self, z: torch.Tensor) -> torch.Tensor:
        """Images NHWC in [0, 1] from latent vectors."""
        return (self.fake(z) + 1.0) / 2.0


def _stats(loss_d: torch.Tensor, real_logits: torch.Tensor,
           fake_logits: torch.Tensor) -> dict[str, torch.Tensor]:
    return {
        "loss_d": loss_d.detach(),
        "d_real": torch.sigmoid(real_logits).mean(),  # D(x)
        "d_fake": torch.sigmoid(fake_logits).mean(),  # D(G(z))
        "d_acc_fake": (fake_logits < 0).float().mean(),  # D's accuracy on generated images
    }
