"""Learning-rate schedules, written once for every backend."""

from __future__ import annotations

import math

from genzoo.config import TrainConfig


def lr_at(step: int, total_steps: int, cfg: TrainConfig) -> float:
    """The learning rate for optimisation step ``step`` (0-based) of ``total_steps``.

    Linear warm-up over ``warmup_steps``, then constant or a cosine decay from ``lr`` to
    ``min_lr`` that ends at the last step (nanoGPT's schedule).

    Examples:
        >>> from genzoo.config import TrainConfig
        >>> cfg = TrainConfig(steps=100, lr=1.0, min_lr=0.1, warmup_steps=10,
        ...                   lr_schedule="cosine")
        >>> lr_at(0, 100, cfg), lr_at(10, 100, cfg), round(lr_at(99, 100, cfg), 3)
        (0.1, 1.0, 0.1)
    """
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    if cfg.lr_schedule == "constant":
        return cfg.lr
    span = max(1, total_steps - 1 - cfg.warmup_steps)
    progress = min(1.0, (step - cfg.warmup_steps) / span)
    return cfg.min_lr + 0.5 * (1.0 + math.cos(math.pi * progress)) * (cfg.lr - cfg.min_lr)
