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
from genzoo.distributed import any_rank, average_values
from genzoo.errors import GenzooError
from genzoo.progress import Reporter
from genzoo.protocols import History, Trainer
from genzoo.schedule import lr_at


class Diverged(GenzooError):
    """The loss became NaN or infinite."""

    exit_code = 3

    def __init__(self, message: str, step: int = 0):
        self.step = step
        super().__init__(message)


class Interrupted(GenzooError):
    """Training stopped on request: Ctrl-C (exit status 130) or SIGTERM (143)."""

    exit_code = 130

    def __init__(self, step: int, message: str = "", *, exit_code: int = 130):
        self.step, self.exit_code = step, exit_code
        super().__init__(message or f"interrupted at step {step}")


@dataclass
class LoopHooks:
    """Where the loop reports: metric events, checkpoints, evaluations, stop requests."""

    log: Callable[[dict[str, Any]], None] = lambda record: None
    checkpoint: Callable[[int], None] | None = None
    on_eval: Callable[[int, dict[str, float]], None] = lambda step, metrics: None
    should_stop: Callable[[int], bool] = lambda done: False  # asked after each step
    reporter: Reporter = field(default_factory=Reporter)


def ordered(metrics: Mapping[str, float]) -> dict[str, float]:
    """One order for every backend: the losses first, then the rest by name."""
    return {k: metrics[k] for k in sorted(metrics, key=lambda k: (not k.startswith("loss"), k))}


def evaluate(trainer: Trainer, batches: Iterator[np.ndarray]) -> dict[str, float]:
    """Mean metrics over evaluation batches, weighted by batch size."""
    totals: dict[str, float] = {}
    count = 0
    for batch in batches:
        n = len(batch)
        for k, v in trainer.to_floats(trainer.eval_step(batch)).items():
            totals[k] = totals.get(k, 0.0) + v * n
        count += n
    return ordered({k: v / count for k, v in totals.items()}) if count else {}


def fit(
    trainer: Trainer,
    batches: Callable[[int], np.ndarray],
    cfg: TrainConfig,
    *,
    total_steps: int,
    steps_per_epoch: int,
    eval_batches: Callable[[int], Iterator[np.ndarray]] | None = None,
    hooks: LoopHooks | None = None,
    start_step: int = 0,
    elapsed: float = 0.0,
    description: str = "training",
) -> History:
    """Train from ``start_step`` to ``total_steps``; ``batches(step)`` gives each batch,
    ``eval_batches(step)`` the validation batches of the evaluation after ``step``;
    ``elapsed`` (seconds trained before ``start_step``) continues the records' ``time``.

    Raises:
        Diverged: a logged loss was NaN or infinite; no checkpoint is written after it.
        Interrupted: ``hooks.should_stop()`` became true; the step in progress finished.
    """
    loop = _Loop(trainer, batches, cfg, total_steps, steps_per_epoch, eval_batches,
                 hooks or LoopHooks())
    loop.t0 -= elapsed
    loop.hooks.reporter.start(total_steps, start_step, description)
    try:
        for step in range(start_step, total_steps):
            loop.step(step)
    finally:
        loop.hooks.reporter.close()
    return loop.history


class _Loop:
    def __init__(self, trainer: Trainer, batches: Callable[[int], np.ndarray], cfg: TrainConfig,
                 total: int, steps_per_epoch: int,
                 eval_batches: Callable[[int], Iterator[np.ndarray]] | None, hooks: LoopHooks):
        self.trainer, self.batches, self.cfg = trainer, batches, cfg
        self.total, self.spe = total, steps_per_epoch
        self.eval_batches, self.hooks = eval_batches, hooks
        self.history = History()
        # Once per epoch by default, but not more often than metrics are logged.
        self.eval_every = cfg.eval_every or max(steps_per_epoch, cfg.log_every)
        self.pending: dict[str, Any] = {}
        self.n_pending = 0
        self.t0 = time.perf_counter()
        # Under torchrun only rank 0 evaluates and checkpoints, but every rank must log at
        # the same steps (the logged metrics are averaged over ranks): the schedule asks
        # whether any rank does.
        self.any_evaluates = any_rank(eval_batches is not None)
        self.any_checkpoints = any_rank(hooks.checkpoint is not None)

    def step(self, step: int) -> None:
        lr = lr_at(step, self.total, self.cfg)
        self.trainer.set_lr(lr)
        for k, v in self.trainer.train_step(self.batches(step)).items():
            self.pending[k] = self.pending[k] + v if k in self.pending else v  # on the device
        self.n_pending += 1
        done = step + 1
        last = done == self.total
        stop = self.hooks.should_stop(done)
        eval_due = self.any_evaluates and (done % self.eval_every == 0 or last)
        ckpt_due = (self.any_checkpoints and self.cfg.checkpoint_every > 0
                    and done % self.cfg.checkpoint_every == 0 and not last)
        if done % self.cfg.log_every == 0 or last or eval_due or ckpt_due or stop:
            self.log_train_and_guard(done, lr)  # the NaN guard, before any checkpoint
        else:
            self.hooks.reporter.advance(done)
        if eval_due and self.eval_batches is not None:
            self.log_eval(done)
        if stop:
            raise Interrupted(done)
        if ckpt_due and self.hooks.checkpoint is not None:
            self.hooks.checkpoint(done)

    def log_train_and_guard(self, done: int, lr: float) -> None:
        floats = self.trainer.to_floats(average_values(self.pending))  # over ranks
        metrics = ordered({k: v / self.n_pending for k, v in floats.items()})
        self.pending, self.n_pending = {}, 0
        _guard(metrics, done)
        record = {"event": "train", "step": done, "epoch": done / self.spe, "lr": lr,
                  "time": time.perf_counter() - self.t0, **metrics}
        self.history.train.append(record)
        self.hooks.log(record)
        self.hooks.reporter.metrics(done, metrics)

    def log_eval(self, done: int) -> None:
        assert self.eval_batches is not None
        metrics = evaluate(self.trainer, self.eval_batches(done))
        _guard(metrics, done, "validation")
        record = {"event": "eval", "step": done, "epoch": done / self.spe,
                  **{f"val_{k}": v for k, v in metrics.items()}}
        self.history.eval.append(record)
        self.hooks.log(record)
        self.hooks.on_eval(done, metrics)
        self.hooks.reporter.message(
            f"step {done}: validation " + "  ".join(f"{k} {v:.4g}" for k, v in metrics.items()))


def _guard(metrics: Mapping[str, float], step: int, what: str = "training") -> None:
    bad = [k for k, v in metrics.items() if not math.isfinite(v)]
    if bad:
        also = f" (so are {', '.join(bad[1:])})" if len(bad) > 1 else ""
        raise Diverged(
            f"{what} diverged at step {step}: {bad[0]} is {metrics[bad[0]]}{also}; the last "
            "checkpoint before it is kept (try a lower --lr)", step
        )
