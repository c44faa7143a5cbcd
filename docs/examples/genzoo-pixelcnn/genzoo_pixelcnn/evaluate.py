"""PixelCNN's own metric for `genzoo eval`: the exact test log-likelihood.

genzoo adds its image metrics (Fréchet distance and friends) to whatever this returns.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from genzoo_pixelcnn.model import PixelCNN


@torch.no_grad()
def log_likelihood(module: PixelCNN, x: torch.Tensor) -> torch.Tensor:
    """log p(x) in nats for each binary image of a batch (NHWC): exact, no bound."""
    nll = F.binary_cross_entropy_with_logits(module.logits(x), x, reduction="none")
    return -nll.flatten(1).sum(1)


def evaluate(generator: Any, data: Any, **_: Any) -> tuple[dict, dict]:
    """Test negative log-likelihood, per image and in bits per pixel."""
    x = PixelCNN.prepare_eval(data.test)
    logp = np.concatenate([
        log_likelihood(generator.module, generator.to_tensor(x[i:i + 512])).cpu().numpy()
        for i in range(0, len(x), 512)])
    nll = float(-logp.mean())
    metrics = {"test_nll": nll, "test_bits_per_pixel": nll / (math.log(2) * x[0].size)}
    protocol = {"binarization": "stochastic, numpy default_rng(0), once",
                "test_images": len(x)}
    return metrics, protocol
