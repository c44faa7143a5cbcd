"""The training loop, written once for every model and backend.

It asks the backend's Trainer for one step at a time and owns everything around the
steps: the learning-rate schedule, metric logging, evaluation, checkpoints, and the
divergence guard. Metrics stay on the device between log lines, so a GPU run syncs with
the host only when it logs.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from genzoo.config import TrainConfig
from genzoo.errors import GenzooError
from genzoo.progress import Reporter
from genzoo.protocols import Generator, History, Trainer
from genzoo.schedule import lr_at


class Diverged(GenzooError):
    """The loss became NaN or infinite."""

    exit_code = 3


@dataclass
class LoopHooks:
    """Where the loop writes: metric events and checkpoints (both optional)."""

    log: Callable[[dict[str, Any]], None] = lambda record: None
    checkpoint: Callable[[int], None] | None = None
    reporter: Reporter = field(default_factory=Reporter)


def evaluate(trainer: Trainer, batches: Iterator[np.ndarray]) -> dict[str, float]:
    """Mean metrics over evaluation batches, weighted by batch size."""
    totals: dict[str, float] = {}
    count = 0
    for batch in batches:
        n = len(batch)
        for k, v in trainer.to_floats(trainer.eval_step(batch)).items():
            totals[k] = totals.get(k, 0.0) + v * n
        count += n
    return {k: v / count for k, v in totals.items()} if count else {}


def fit(
    generator: Generator,
    trainer: Trainer,
    batches: Callable[[int], np.ndarray],
    cfg: TrainConfig,
    *,
    total_steps: int,
    steps_per_epoch: int,
    eval_batches: Callable[[], Iterator[np.ndarray]] | None = None,
    hooks: LoopHooks | None = None,
    start_step: int = 0,
    description: str = "training",
) -> History:
    """Train from ``start_step`` to ``total_steps``; ``batches(step)`` gives each batch.

    Raises:
        Diverged: a logged loss was NaN or infinite; no checkpoint is written after it.
    """
    hooks = hooks or LoopHooks()
    history = History()
    # Once per epoch by default, but not more often than metrics are logged.
    eval_every = cfg.eval_every or max(steps_per_epoch, cfg.log_every)
    pending: dict[str, Any] = {}
    n_pending = 0
    hooks.reporter.start(total_steps, start_step, description)
    t0 = time.perf_counter()
    try:
        for step in range(start_step, total_steps):
            lr = lr_at(step, total_steps, cfg)
            trainer.set_lr(lr)
            for k, v in trainer.train_step(batches(step)).items():
                pending[k] = pending[k] + v if k in pending else v  # stays on the device
            n_pending += 1
            done = step + 1
            last = done == total_steps
            do_eval = eval_batches is not None and (done % eval_every == 0 or last)
            do_ckpt = (hooks.checkpoint is not None and cfg.checkpoint_every > 0
                       and done % cfg.checkpoint_every == 0 and not last)
            if done % cfg.log_every == 0 or last or do_eval or do_ckpt:
                metrics = {k: v / n_pending for k, v in trainer.to_floats(pending).items()}
                pending, n_pending = {}, 0
                _guard(metrics, done)
                record = {"event": "train", "step": done, "epoch": done / steps_per_epoch,
                          "lr": lr, "time": time.perf_counter() - t0, **metrics}
                history.train.append(record)
                hooks.log(record)
                hooks.reporter.metrics(done, metrics)
            else:
                hooks.reporter.advance(done)
            if do_eval:
                metrics = evaluate(trainer, eval_batches())
                _guard(metrics, done, "validation")
                record = {"event": "eval", "step": done, "epoch": done / steps_per_epoch,
                          **{f"val_{k}": v for k, v in metrics.items()}}
                history.eval.append(record)
                hooks.log(record)
                hooks.reporter.message(f"step {done}: validation "
                                       + "  ".join(f"{k} {v:.4g}" for k, v in metrics.items()))
            if do_ckpt:
                hooks.checkpoint(done)
    finally:
        hooks.reporter.close()
    return history


def _guard(metrics: Mapping[str, float], step: int, what: str = "training") -> None:
    bad = [k for k, v in metrics.items() if not math.isfinite(v)]
    if bad:
        raise Diverged(
            f"{what} diverged at step {step}: {', '.join(bad)} is "
            f"{metrics[bad[0]]}; the last checkpoint before it is kept (lower --lr?)"
        )
