"""Minimal hand-written PyTorch loops for genzoo's torch models: the baselines against
which the core loop's overhead is measured. Each trains the plugin's own network (its
module and loss) the way a user would without genzoo: no registry, no metrics log, no
checkpoints, one ``.item()`` every 50 steps for a printed loss. They use the run's
optimizer settings (betas, weight decay on matrices, clipping) and set the learning rate
of its schedule at every step, as genzoo does, so both loops do the same work."""

from __future__ import annotations

import math
from collections.abc import Callable
from contextlib import nullcontext
from typing import Any

import torch


def _helpers(device: str, bf16: bool) -> tuple[Callable[[Any], torch.Tensor], Callable[[], Any]]:
    """Batch-to-tensor and the forward pass's precision context, as a user would write."""

    def tensor(batch: Any) -> torch.Tensor:
        return torch.from_numpy(batch).to(device, non_blocking=True)

    def precision() -> Any:
        return torch.autocast(device, dtype=torch.bfloat16) if bf16 else nullcontext()

    return tensor, precision


def _optimizer(params: Any, cfg: Any) -> torch.optim.Optimizer:
    """Adam or AdamW with the run's betas; weight decay on matrices only."""
    params = [p for p in params if p.requires_grad]
    groups = [{"params": [p for p in params if p.ndim >= 2], "weight_decay": cfg.weight_decay},
              {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0}]
    cls = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
    return cls(groups, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2))


def _schedule(cfg: Any, total: int) -> Callable[[int], float]:
    """Linear warm-up, then constant or a cosine decay to ``min_lr`` at step ``total``."""

    def lr_at(step: int) -> float:
        if step < cfg.warmup_steps:
            return cfg.lr * (step + 1) / cfg.warmup_steps
        if cfg.lr_schedule == "constant":
            return cfg.lr
        progress = min(1.0, (step - cfg.warmup_steps) / max(1, total - 1 - cfg.warmup_steps))
        return cfg.min_lr + 0.5 * (1 + math.cos(math.pi * progress)) * (cfg.lr - cfg.min_lr)

    return lr_at


def _set_lr(lr: float, *optimizers: torch.optim.Optimizer) -> None:
    for opt in optimizers:
        for group in opt.param_groups:
            group["lr"] = lr


def gan_loop(module: Any, batches: Callable[[int], Any], cfg: Any, *, device: str = "cpu",
             bf16: bool = False, total: int = 2000) -> Callable[[int, int], None]:
    from genzoo_gan.torch_gan import discriminator_loss, generator_loss

    tensor, precision = _helpers(device, bf16)
    latent = module.config.latent_dim
    opt_d = _optimizer(module.discriminator.parameters(), cfg)
    opt_g = _optimizer(module.generator.parameters(), cfg)
    lr_at = _schedule(cfg, total)

    def run(start: int, steps: int) -> None:
        for step in range(start, start + steps):
            _set_lr(lr_at(step), opt_d, opt_g)
            real = tensor(batches(step)) * 2 - 1
            with torch.no_grad(), precision():
                fake = module.generate(torch.randn(len(real), latent, device=device))
            with precision():
                loss_d = discriminator_loss(module.discriminate(real), module.discriminate(fake))
            opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            opt_d.step()
            module.discriminator.requires_grad_(False)
            z = torch.randn(len(real), latent, device=device)
            with precision():
                loss_g = generator_loss(module.discriminate(module.generate(z)))
            opt_g.zero_grad(set_to_none=True)
            loss_g.backward()
            opt_g.step()
            module.discriminator.requires_grad_(True)
            if step % 50 == 0:
                loss_d.item()

    return run


def loss_loop(module: Any, batches: Callable[[int], Any], cfg: Any, *, device: str = "cpu",
              bf16: bool = False, total: int = 2000) -> Callable[[int, int], None]:
    """A model trained through its ``loss`` (the VAE, the Transformer)."""
    params = [p for p in module.parameters() if p.requires_grad]
    opt = _optimizer(params, cfg)
    lr_at = _schedule(cfg, total)
    tensor, precision = _helpers(device, bf16)

    def run(start: int, steps: int) -> None:
        for step in range(start, start + steps):
            _set_lr(lr_at(step), opt)
            with precision():
                loss, _ = module.loss(tensor(batches(step)))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip:
                torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
            opt.step()
            if step % 50 == 0:
                loss.item()

    return run


LOOPS = {"vae": loss_loop, "gan": gan_loop, "transformer": loss_loop}
