"""Minimal hand-written PyTorch loops for genzoo's torch models: the baselines against
which the core loop's overhead is measured. Each trains the plugin's own network (its
module and loss) the way a user would without genzoo: no registry, no metrics log, no
checkpoints, one ``.item()`` every 50 steps for a printed loss. They build the run's
optimizer and set its schedule's learning rate at every step with genzoo's own
``make_optimizer`` and ``lr_at`` (the arithmetic is not what is measured), so both loops
do the same work."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import nullcontext
from typing import Any

import torch

from genzoo.backends.torch import make_optimizer
from genzoo.schedule import lr_at


def _helpers(device: str, bf16: bool) -> tuple[Callable[[Any], torch.Tensor], Callable[[], Any]]:
    """Batch-to-tensor and the forward pass's precision context, as a user would write."""

    def tensor(batch: Any) -> torch.Tensor:
        return torch.from_numpy(batch).to(device, non_blocking=True)

    def precision() -> Any:
        return torch.autocast(device, dtype=torch.bfloat16) if bf16 else nullcontext()

    return tensor, precision


def _set_lr(lr: float, *optimizers: torch.optim.Optimizer) -> None:
    for opt in optimizers:
        for group in opt.param_groups:
            group["lr"] = lr


def gan_loop(module: Any, batches: Callable[[int], Any], cfg: Any, *, device: str = "cpu",
             bf16: bool = False, total: int = 2000) -> Callable[[int, int], None]:
    from genzoo_gan.torch_gan import discriminator_loss, generator_loss

    tensor, precision = _helpers(device, bf16)
    latent = module.config.latent_dim
    opt_d = make_optimizer(module.d_net.parameters(), cfg)
    opt_g = make_optimizer(module.g_net.parameters(), cfg)

    def run(start: int, steps: int) -> None:
        for step in range(start, start + steps):
            _set_lr(lr_at(step, total, cfg), opt_d, opt_g)
            real = tensor(batches(step)) * 2 - 1
            with torch.no_grad(), precision():
                fake = module.fake(torch.randn(len(real), latent, device=device))
            with precision():
                loss_d = discriminator_loss(module.discriminate(real), module.discriminate(fake))
            opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            opt_d.step()
            module.d_net.requires_grad_(False)
            z = torch.randn(len(real), latent, device=device)
            with precision():
                loss_g = generator_loss(module.discriminate(module.fake(z)))
            opt_g.zero_grad(set_to_none=True)
            loss_g.backward()
            opt_g.step()
            module.d_net.requires_grad_(True)
            if step % 50 == 0:
                loss_d.item()

    return run


def loss_loop(module: Any, batches: Callable[[int], Any], cfg: Any, *, device: str = "cpu",
              bf16: bool = False, total: int = 2000) -> Callable[[int, int], None]:
    """A model trained through its ``loss`` (the VAE, the Transformer)."""
    params = [p for p in module.parameters() if p.requires_grad]
    opt = make_optimizer(params, cfg)
    tensor, precision = _helpers(device, bf16)

    def run(start: int, steps: int) -> None:
        for step in range(start, start + steps):
            _set_lr(lr_at(step, total, cfg), opt)
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
