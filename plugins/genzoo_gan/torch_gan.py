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


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor,
                       kind: str = "bce") -> torch.Tensor:
    """``bce``: the sum of two cross-entropies, real images labelled 1, generated ones 0.
    ``hinge``: E[max(0, 1 - D(x))] + E[max(0, 1 + D(G(z)))]."""
    if kind == "hinge":
        return F.relu(1.0 - real_logits).mean() + F.relu(1.0 + fake_logits).mean()
    return (F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
            + F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits)))


def generator_loss(fake_logits: torch.Tensor, kind: str = "bce") -> torch.Tensor:
    """``bce``, non-saturating: G is trained to make D answer "real", -log D(G(z)).
    ``hinge``: -E[D(G(z))]."""
    if kind == "hinge":
        return -fake_logits.mean()
    return F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))


def _spectral(net: nn.Sequential) -> nn.Sequential:
    """Spectral normalisation (Miyato et al., 2018) of every linear and convolutional
    layer: one power iteration per training forward pass, the estimate kept as buffers."""
    for layer in net:
        if isinstance(layer, (nn.Linear, nn.Conv2d)):
            nn.utils.parametrizations.spectral_norm(layer)
    return net


def _mlp_generator(cfg: GANConfig, d: int, classes: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    sizes = [cfg.latent_dim + cfg.info_codes + classes, *cfg.g_hidden]
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(a, b), nn.LeakyReLU(cfg.leak)]
    return nn.Sequential(*layers, nn.Linear(sizes[-1], d), nn.Tanh())


def _mlp_discriminator(cfg: GANConfig, d: int) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Flatten()]
    sizes = [d, *cfg.d_hidden]
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(a, b), nn.LeakyReLU(cfg.leak), nn.Dropout(cfg.d_dropout)]
    return nn.Sequential(*layers, nn.Linear(sizes[-1], 1))


def _dcgan_generator(cfg: GANConfig, h: int, w: int, c: int, classes: int) -> nn.Sequential:
    ch = cfg.channels
    return nn.Sequential(
        nn.Linear(cfg.latent_dim + cfg.info_codes + classes, 2 * ch * (h // 4) * (w // 4), bias=False),
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


class Projection(nn.Module):
    """A projection discriminator (Miyato & Koyama, 2018): ``D(x, y) = psi(phi(x)) +
    <embed(y), phi(x)>``, with ``phi`` all of D's network but its last (linear) layer
    ``psi``: the label's embedding is a second, per-class linear head on the features.

    Not a submodule of the GAN (its weights are D's and ``d_embed``, saved under those
    names): only the forward pass that the trainer's data-parallel wrapper runs."""

    def __init__(self, d_net: nn.Sequential, d_embed: nn.Linear, d_classify: nn.Linear | None):
        super().__init__()
        self.d_net, self.d_embed, self.d_classify = d_net, d_embed, d_classify

    def forward(self, x: torch.Tensor,
                labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """D's logits ``(B, 1)``, and the auxiliary classifier's ``(B, K)`` (or ``None``)."""
        features = self.d_net[:-1](x)  # (B, F)
        projection = (self.d_embed(labels.to(features.dtype)) * features).sum(1, keepdim=True)
        classes = self.d_classify(features) if self.d_classify is not None else None
        return self.d_net[-1](features) + projection, classes


class InfoHeads(nn.Module):
    """InfoGAN's discriminator (Chen et al., 2016): D's logit and, from the same features,
    the head ``Q`` that recovers G's categorical code, as logits ``(B, K)``. Like
    ``Projection``, not a submodule: the forward pass the data-parallel wrapper runs."""

    def __init__(self, d_net: nn.Sequential, d_info: nn.Linear):
        super().__init__()
        self.d_net, self.d_info = d_net, d_info

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.d_net[:-1](x)  # (B, F)
        return self.d_net[-1](features), self.d_info(features)


class GAN(nn.Module):
    """G maps noise to images in [-1, 1]; D maps images to a logit of "real".

    A cGAN (``conditional``) feeds G the one-hot label beside z and scores images with
    a projection discriminator: the label's embedding is dotted with D's features."""

    def __init__(self, config: GANConfig, info: DataInfo):
        super().__init__()
        self.config = config
        self.shape = h, w, c = info.shape
        classes = info.num_classes if config.conditional else 0
        if config.arch == "mlp":
            self.g_net = _mlp_generator(config, h * w * c, classes)
            self.d_net = _mlp_discriminator(config, h * w * c)
        else:
            if h % 4 or w % 4:
                raise ConfigError(f"DCGAN needs image sides divisible by 4, got {h}x{w}")
            self.g_net = _dcgan_generator(config, h, w, c, classes)
            self.d_net = _dcgan_discriminator(config, h, w, c)
        if config.spectral_norm:
            _spectral(self.d_net)
        self.projection: Projection | None = None
        self.d_classify: nn.Linear | None = None
        self.heads: InfoHeads | None = None
        self.d_info: nn.Linear | None = None
        if config.info_codes:  # InfoGAN's Q: a linear head on D's features
            self.d_info = nn.Linear(int(self.d_net[-1].in_features),  # type: ignore[arg-type]
                                    config.info_codes)
            self.__dict__["heads"] = InfoHeads(self.d_net, self.d_info)
        if classes:
            features = int(self.d_net[-1].in_features)  # type: ignore[arg-type]
            self.d_embed = nn.Linear(classes, features, bias=False)
            nn.init.zeros_(self.d_embed.weight)  # D starts as the unconditional one
            # AC-GAN's auxiliary classifier (Odena et al., 2017), on real images only.
            self.d_classify = nn.Linear(features, classes) if config.aux_weight else None
            self.__dict__["projection"] = Projection(self.d_net, self.d_embed, self.d_classify)

    @staticmethod
    def ema_skip(name: str) -> bool:
        """Spectral normalisation's power-iteration vectors stay out of the moving average
        (an average of unit vectors is none): the averaged D uses the trained ones."""
        return name.endswith(("._u", "._v"))

    @staticmethod
    def upgrade_state(tensors: Mapping[str, Any]) -> dict[str, Any]:
        """Weights saved under the networks' old names load under the new ones."""
        out = {}
        for key, value in tensors.items():
            old = next((p for p in LEGACY_PREFIXES if key.startswith(p)), None)
            out[LEGACY_PREFIXES[old] + key[len(old):] if old else key] = value
        return out

    # -- the two networks on NHWC tensors in [-1, 1] -------------------------------------
    def fake(self, z: torch.Tensor, net: nn.Module | None = None,
             labels: torch.Tensor | None = None) -> torch.Tensor:
        """``net`` replaces G's network: the trainer's data-parallel wrapper of it."""
        if labels is not None:
            z = torch.cat([z, labels.to(z.dtype)], dim=1)
        out = (net or self.g_net)(z)
        if self.config.arch == "dcgan":
            return out.permute(0, 2, 3, 1)  # NCHW -> NHWC
        return out.reshape(-1, *self.shape)

    def discriminate(self, x: torch.Tensor, net: nn.Module | None = None,
                     labels: torch.Tensor | None = None) -> torch.Tensor:
        """D's logits ``(B,)``; ``net``: D's network (or, for a cGAN, its ``Projection``)
        as the trainer wraps it."""
        return self.judge(x, net, labels)[0]

    def judge(self, x: torch.Tensor, net: nn.Module | None = None,
              labels: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """D's logits ``(B,)`` and a second head's logits ``(B, K)``: a cGAN's auxiliary
        classifier's, or an InfoGAN's Q's (or ``None``)."""
        if self.config.arch == "dcgan":
            x = x.permute(0, 3, 1, 2)
        d = net or self._d_forward(labels)
        out = d(x) if labels is None else d(x, labels)
        logits, second = out if isinstance(out, tuple) else (out, None)
        return logits.squeeze(1), second

    def _aux(self, classes: torch.Tensor | None, labels: torch.Tensor | None) -> torch.Tensor | None:
        """The auxiliary classifier's cross-entropy on the batch's classes (or ``None``)."""
        if classes is None or labels is None:
            return None
        return F.cross_entropy(classes.float(), labels.argmax(1))

    def _info(self, code_logits: torch.Tensor | None, z: torch.Tensor) -> torch.Tensor | None:
        """InfoGAN's loss: the cross-entropy of Q's guess of the code that made each image,
        a bound on the mutual information between the code and G's output (or ``None``)."""
        if code_logits is None or not self.config.info_codes:
            return None
        return F.cross_entropy(code_logits.float(), z[:, self.config.latent_dim:].argmax(1))

    def _d_networks(self) -> list[nn.Module]:
        extra = [self.d_embed] if self.projection is not None else []
        heads = [m for m in (self.d_classify, self.d_info) if m is not None]
        return [self.d_net, *extra, *heads]

    def _d_forward(self, labels: torch.Tensor | None) -> nn.Module:
        """The module D's training pass runs: its network, or with its heads."""
        if labels is not None:
            return self.projection  # type: ignore[return-value]
        return self.heads if self.heads is not None else self.d_net

    def noise(self, n: int, rng: torch.Generator | None = None) -> torch.Tensor:
        """z ~ N(0, I), and an InfoGAN's one-hot code drawn uniformly beside it: for
        training without ``rng``; with ``rng`` (sampling), z ~ N(0, temperature² I)."""
        return self._noise(n, rng, self.config.temperature if rng is not None else 1.0)

    def _noise(self, n: int, rng: torch.Generator | None, temperature: float) -> torch.Tensor:
        device = next(self.parameters()).device
        k = self.config.info_codes
        if rng is None:  # training: each rank takes its slice of the global draw
            z = global_draw(lambda shape: torch.randn(shape, device=device),
                            (n, self.config.latent_dim))
            if k:
                codes = global_draw(lambda shape: torch.randint(k, shape, device=device), (n,))
        else:
            z = torch.randn(n, self.config.latent_dim, generator=rng, device=device)
            if k:
                codes = torch.randint(k, (n,), generator=rng, device=device)
        if temperature != 1:  # the temperature scales z, not the code
            z = z * temperature
        return torch.cat([z, F.one_hot(codes, k).to(z.dtype)], dim=1) if k else z

    # -- training --------------------------------------------------------------------------
    def configure_optimizers(self, make: Any) -> dict[str, torch.optim.Optimizer]:
        """One optimizer per network: a shared one would let each loss move both."""
        d_params = [p for net in self._d_networks() for p in net.parameters()]
        return {"opt_d": make(d_params, lr_scale=self.config.d_lr_scale),
                "opt_g": make(self.g_net.parameters())}

    def d_step(self, real: torch.Tensor, trainer: Any,
               labels: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Update D on a real batch and a generated one; G's weights do not move. A cGAN's
        fakes are drawn for the real batch's labels, so D sees the same classes in both."""
        z = self.noise(len(real))
        with torch.no_grad():
            fake = self.fake(z, labels=labels)
        d_net = trainer.parallel(self._d_forward(labels))  # DDP
        cfg = self.config
        real_logits, real_classes = self.judge(real, d_net, labels)
        fake_logits, fake_codes = self.judge(fake, d_net, labels)
        loss = discriminator_loss(real_logits, fake_logits, cfg.loss)
        aux = self._aux(real_classes, labels)
        if aux is not None:
            loss = loss + cfg.aux_weight * aux
        info = self._info(fake_codes, z)  # Q learns to recover the code
        if info is not None:
            loss = loss + cfg.info_weight * info
        trainer.backward(loss, trainer.optimizers["opt_d"])
        return _stats(loss, real_logits.detach(), fake_logits.detach(), aux, info)

    def g_step(self, n: int, trainer: Any, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Update G with fresh noise through a frozen D."""
        for net in self._d_networks():
            net.requires_grad_(False)
        try:
            g_net = trainer.parallel(self.g_net)  # DDP under torchrun
            z = self.noise(n)
            fake = self.fake(z, g_net, labels)
            logits, classes = self.judge(fake, labels=labels)
            loss = generator_loss(logits, self.config.loss)
            aux = self._aux(classes, labels)  # AC-GAN: G is trained to be classified as y
            if aux is not None:
                loss = loss + self.config.aux_weight * aux
            info = self._info(classes, z)  # InfoGAN: G makes its code recoverable
            if info is not None:
                loss = loss + self.config.info_weight * info
            trainer.backward(loss, trainer.optimizers["opt_g"])
        finally:
            for net in self._d_networks():
                net.requires_grad_(True)
        return loss.detach()

    def train_step(self, x: torch.Tensor, trainer: Any,
                   labels: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        real = x * 2.0 - 1.0  # the data in [-1, 1], like G's tanh output
        d = self.d_step(real, trainer, labels)
        return {"loss_d": d.pop("loss_d"), "loss_g": self.g_step(len(real), trainer, labels),
                **d}

    def evaluate(self, x: torch.Tensor,
                 labels: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """The training metrics on a validation batch, with fixed noise (no update)."""
        real = x * 2.0 - 1.0
        noise = torch.Generator(device=real.device).manual_seed(EVAL_SEED)
        z = self._noise(len(real), noise, 1.0)  # validation: always at temperature 1
        fake = self.fake(z, labels=labels)
        real_logits, real_classes = self.judge(real, labels=labels)
        fake_logits, fake_classes = self.judge(fake, labels=labels)
        aux = self._aux(real_classes, labels)
        info = self._info(fake_classes, z)
        loss_d = discriminator_loss(real_logits, fake_logits, self.config.loss)
        loss_g = generator_loss(fake_logits, self.config.loss)
        fake_aux = self._aux(fake_classes, labels)
        if aux is not None and fake_aux is not None:
            loss_d = loss_d + self.config.aux_weight * aux
            loss_g = loss_g + self.config.aux_weight * fake_aux
        if info is not None:
            loss_d = loss_d + self.config.info_weight * info
            loss_g = loss_g + self.config.info_weight * info
        d = _stats(loss_d, real_logits, fake_logits, aux, info)
        return {"loss_d": d.pop("loss_d"), "loss_g": loss_g, **d}

    def sample(self, n: int, rng: torch.Generator,
               labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.render(self.noise(n, rng), labels)

    def render(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Images NHWC in [0, 1] from latent vectors (and a cGAN's one-hot labels)."""
        return (self.fake(z, labels=labels) + 1.0) / 2.0


def _stats(loss_d: torch.Tensor, real_logits: torch.Tensor, fake_logits: torch.Tensor,
           aux: torch.Tensor | None = None,
           info: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    extra = {} if aux is None else {"loss_cls": aux.detach()}  # the classifier's, on reals
    if info is not None:
        extra["loss_info"] = info.detach()  # Q's cross-entropy on the generated images' codes
    return {**extra,
        "loss_d": loss_d.detach(),
        "d_real": torch.sigmoid(real_logits).mean(),  # D(x)
        "d_fake": torch.sigmoid(fake_logits).mean(),  # D(G(z))
        "d_acc_fake": (fake_logits < 0).float().mean(),  # D's accuracy on generated images
    }
