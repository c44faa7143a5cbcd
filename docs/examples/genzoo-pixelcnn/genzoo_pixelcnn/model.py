"""PixelCNN (van den Oord et al., 2016) for binary images, in PyTorch.

p(x) = prod_i p(x_i | x_<i) over pixels in raster order. Masked convolutions make the
prediction for pixel i see only the pixels before it, so one forward pass gives every
conditional at once and the log-likelihood is exact: unlike the VAE's bound, no latent
variable is involved. Sampling is sequential, one pixel at a time.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


class MaskedConv2d(nn.Conv2d):
    """A convolution that sees only pixels above, and to the left on the same row.

    Mask "A" (the first layer) also hides the centre pixel, the one being predicted;
    mask "B" (later layers) lets a pixel's own features through.
    """

    def __init__(self, mask: str, c_in: int, c_out: int, k: int):
        super().__init__(c_in, c_out, k, padding=k // 2)
        m = torch.ones_like(self.weight)
        m[:, :, k // 2, k // 2 + (mask == "B"):] = 0  # the centre row, right of centre
        m[:, :, k // 2 + 1:] = 0  # every row below
        self.register_buffer("mask", m)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight * self.mask, self.bias, padding=self.padding)


class PixelCNN(nn.Module):
    def __init__(self, config, info):
        super().__init__()
        self.shape = info.shape  # (H, W, 1)
        layers: list[nn.Module] = [MaskedConv2d("A", 1, config.channels, 7)]
        for _ in range(config.layers):
            layers += [nn.ReLU(), MaskedConv2d("B", config.channels, config.channels, 3)]
        layers += [nn.ReLU(), nn.Conv2d(config.channels, 1, 1)]  # a logit per pixel
        self.net = nn.Sequential(*layers)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of p(x_i = 1 | x_<i) for every pixel: NHWC in, NHWC out."""
        return self.net(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)

    def loss(self, x: torch.Tensor):
        """Exact negative log-likelihood in nats per image (genzoo calls this to train)."""
        if self.training:
            x = torch.bernoulli(x)  # dynamic binarisation, as genzoo's VAE does
        nll = F.binary_cross_entropy_with_logits(self.logits(x), x, reduction="none")
        loss = nll.flatten(1).sum(1).mean()
        return loss, {"bits_per_pixel": loss / (np.log(2) * x[0].numel())}

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """n binary images, drawn pixel by pixel in raster order (genzoo calls this)."""
        h, w, _ = self.shape
        x = torch.zeros(n, h, w, 1, device=generator.device)
        for i in range(h):
            for j in range(w):
                p = torch.sigmoid(self.logits(x)[:, i, j, 0])
                x[:, i, j, 0] = torch.bernoulli(p, generator=generator)
        return x

    @staticmethod
    def prepare_eval(x: np.ndarray) -> np.ndarray:
        """Validation and test images are binarised once, with a fixed seed."""
        return (np.random.default_rng(0).random(x.shape, dtype=np.float32) < x).astype(np.float32)
