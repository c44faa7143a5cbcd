"""Minimal hand-written PyTorch loops for genzoo's torch models: the baselines against
which the core loop's overhead is measured. Each trains the plugin's own network (its
module and loss) the way a user would without genzoo: no registry, no metrics log, no
checkpoints, one ``.item()`` every 50 steps for a printed loss."""

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


def vae_loop(module: Any, batches: Callable[[int], Any], lr: float, *, device: str = "cpu",
             bf16: bool = False, total: int = 0) -> Callable[[int, int], None]:
    opt = torch.optim.Adam(module.parameters(), lr=lr)
    tensor, precision = _helpers(device, bf16)

    def run(start: int, steps: int) -> None:
        for step in range(start, start + steps):
            with precision():
                loss, _ = module.loss(tensor(batches(step)))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if step % 50 == 0:
                loss.item()

    return run


def gan_loop(module: Any, batches: Callable[[int], Any], lr: float, *, device: str = "cpu",
             bf16: bool = False, total: int = 0) -> Callable[[int, int], None]:
    from genzoo_gan.torch_gan import discriminator_loss, generator_loss

    tensor, precision = _helpers(device, bf16)
    latent = module.config.latent_dim
    opt_d = torch.optim.Adam(module.discriminator.parameters(), lr=lr, betas=(0.5, 0.999))
    opt_g = torch.optim.Adam(module.generator.parameters(), lr=lr, betas=(0.5, 0.999))

    def run(start: int, steps: int) -> None:
        for step in range(start, start + steps):
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


def gpt_loop(module: Any, batches: Callable[[int], Any], lr: float, *, device: str = "cpu",
             bf16: bool = False, total: int = 2000) -> Callable[[int, int], None]:
    tensor, precision = _helpers(device, bf16)
    params = [p for p in module.parameters() if p.requires_grad]
    groups = [{"params": [p for p in params if p.ndim >= 2], "weight_decay": 0.1},
              {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0}]
    opt = torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.99))

    def lr_at(step: int) -> float:  # nanoGPT's warm-up and cosine decay
        if step < 100:
            return lr * (step + 1) / 100
        progress = min(1.0, (step - 100) / (total - 1 - 100))
        return lr / 10 + 0.5 * (1 + math.cos(math.pi * progress)) * (lr - lr / 10)

    def run(start: int, steps: int) -> None:
        for step in range(start, start + steps):
            for group in opt.param_groups:
                group["lr"] = lr_at(step)
            with precision():
                loss, _ = module.loss(tensor(batches(step)))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            if step % 50 == 0:
                loss.item()

    return run


LOOPS = {"vae": vae_loop, "gan": gan_loop, "transformer": gpt_loop}
