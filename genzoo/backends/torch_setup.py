"""The torch backend's set-up: devices, framework versions, optimizers, and DDP's
switches (``genzoo.backends.torch`` imports them from here)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

from genzoo.config import TrainConfig, check_device
from genzoo.distributed import world
from genzoo.errors import ConfigError


def resolve_device(name: str) -> torch.device:
    """Map ``auto|cpu|cuda|cuda:N|mps`` to a device, refusing ones that are absent."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", world().local_rank)
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    check_device(name)
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device '{name}' was requested but no CUDA device is available")
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise ConfigError(f"device '{name}' was requested but this machine has "
                          f"{torch.cuda.device_count()} CUDA device(s)")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError("device 'mps' was requested but MPS is not available")
    return device


def versions() -> dict[str, str]:
    return {"torch": torch.__version__}


def make_optimizer(params: Iterable[torch.nn.Parameter], cfg: TrainConfig,
                   lr_scale: float = 1.0) -> torch.optim.Optimizer:
    """Adam or AdamW with the config's betas; weight decay on matrices only.

    Biases, norms' scales and other vectors are not decayed (nanoGPT's convention).
    ``lr_scale`` multiplies the run's learning rate (and its schedule) for this optimizer
    alone: the GAN's two time-scale updates.
    """
    params = [p for p in params if p.requires_grad]
    groups = [{"params": [p for p in params if p.ndim >= 2], "weight_decay": cfg.weight_decay,
               "lr_scale": lr_scale},
              {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0,
               "lr_scale": lr_scale}]
    cls = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
    return cls(groups, lr=cfg.lr * lr_scale, betas=(cfg.beta1, cfg.beta2))


def _no_buffer_sync() -> dict[str, Any]:
    """DDP's switch for not broadcasting rank 0's buffers on every forward pass (the
    trainer keeps buffers in step itself); PyTorch 2.13 renamed it."""
    major, minor = (int(part) for part in torch.__version__.split(".")[:2])
    return {"forward_sync_buffers" if (major, minor) >= (2, 13) else "broadcast_buffers": False}


_NO_BUFFER_SYNC = _no_buffer_sync()
