"""The training loop, written once for every model and backend.

It asks the backend's Trainer for one step at a time and owns everything around the
steps: the learning-rate schedule, metric logging, evaluation, checkpoints, the
divergence guard, and the callbacks' events (``genzoo.callbacks``). Metrics stay on the device between log lines, so a GPU run syncs with
the host only when it logs.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from genzoo.conditioning import batch_size_of
from genzoo.config import TrainConfig
from genzoo.distributed import any_rank, average_values
from genzoo.errors import GenzooError
from genzoo.callbacks import Callback, StepMetrics, TrainingContext
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


def ordered(metrics: Mapping[str, float]) -> dict[str, float]:
    """One order for every backend: the losses first, then the rest by name."""
    return {k: metrics[k] for k in sorted(metrics, key=lambda k: (not k.startswith("loss"), k))}


def evaluate(trainer: Trainer, batches: Iterator[np.ndarray]) -> dict[str, float]:
    """Mean metrics over evaluation batches, weighted by batch size."""
    totals: dict[str, float] = {}
    count = 0
    for batch in batches:
        n = batch_size_of(batch)  # an array, or an (images, labels) pair
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
    callbacks: Sequence[Callback] = (),
    context: TrainingContext | None = None,
    checkpoint: Callable[[int], Path] | None = None,
    should_stop: Callable[[int], bool] = lambda done: False,
    start_step: int = 0,
    elapsed: float = 0.0,
) -> History:
    """Train from ``start_step`` to ``total_steps``; ``batches(step)`` gives each batch,
    ``eval_batches(step)`` the validation batches of the evaluation after ``step``;
    ``elapsed`` (seconds trained before ``start_step``) continues the records' ``time``.

    ``callbacks`` hear every event (``genzoo.callbacks``) with ``context``; a callback
    that calls ``context.stop()`` ends training after the step (the history says where).
    ``checkpoint(step)`` writes a checkpoint and returns its folder; ``should_stop(done)``
    is the user's request to stop (Ctrl-C, SIGTERM), asked after each step.

    Raises:
        Diverged: a logged loss was NaN or infinite; no checkpoint is written after it.
        Interrupted: ``should_stop()`` became true; the step in progress finished.
    """
    if context is None:
        context = TrainingContext(None, trainer, None, None, cfg, None,  # type: ignore[arg-type]
                                  total_steps, steps_per_epoch)
    context.start_step = context.step = start_step
    loop = _Loop(trainer, batches, cfg, total_steps, steps_per_epoch, eval_batches,
                 list(callbacks), context, checkpoint, should_stop)
    loop.t0 -= elapsed
    for cb in loop.callbacks:
        cb.on_train_start(context)
    try:
        for step in range(start_step, total_steps):
            loop.step(step)
            if context.stop_reason is not None:
                break
    except BaseException as exc:
        context.error = exc
        raise
    finally:
        for cb in loop.callbacks:
            cb.on_train_end(context, loop.history)
    return loop.history


class _Loop:
    def __init__(self, trainer: Trainer, batches: Callable[[int], np.ndarray], cfg: TrainConfig,
                 total: int, steps_per_epoch: int,
                 eval_batches: Callable[[int], Iterator[np.ndarray]] | None,
                 callbacks: list[Callback], context: TrainingContext,
                 checkpoint: Callable[[int], Path] | None = None,
                 should_stop: Callable[[int], bool] = lambda done: False):
        self.trainer, self.batches, self.cfg = trainer, batches, cfg
        self.total, self.spe = total, steps_per_epoch
        self.eval_batches, self.callbacks, self.context = eval_batches, callbacks, context
        self.checkpoint, self.should_stop = checkpoint, should_stop
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
        self.any_checkpoints = any_rank(checkpoint is not None)

    def step(self, step: int) -> None:
        lr = lr_at(step, self.total, self.cfg)
        self.trainer.set_lr(lr)
        metrics = self.trainer.train_step(self.batches(step))
        for k, v in metrics.items():
            self.pending[k] = self.pending[k] + v if k in self.pending else v  # on the device
        self.n_pending += 1
        done = step + 1
        self.context.step = done
        if self.callbacks:
            floats = StepMetrics(self.trainer, metrics)
            for cb in self.callbacks:
                cb.on_step_end(self.context, done, floats)
        ending = self.context.stop_reason is not None  # a callback stops the run here
        last = done == self.total or ending
        stop = self.should_stop(done)
        eval_due = self.any_evaluates and (done % self.eval_every == 0 or last)
        ckpt_due = (self.any_checkpoints and self.cfg.checkpoint_every > 0
                    and done % self.cfg.checkpoint_every == 0 and not last)
        if done % self.cfg.log_every == 0 or last or eval_due or ckpt_due or stop:
            self.log_train_and_guard(done, lr)  # the NaN guard, before any checkpoint
        if eval_due and self.eval_batches is not None:
            self.log_eval(done)
            if self.context.stop_reason is not None and not ending:  # stopped by the eval
                return
        if stop:
            raise Interrupted(done)
        if ckpt_due and self.checkpoint is not None:
            self.write_checkpoint(done)

    def write_checkpoint(self, done: int) -> None:
        assert self.checkpoint is not None
        path = self.checkpoint(done)
        for cb in self.callbacks:
            cb.on_checkpoint(self.context, done, path)

    def log_train_and_guard(self, done: int, lr: float) -> None:
        floats = self.trainer.to_floats(average_values(self.pending))  # over ranks
        metrics = ordered({k: v / self.n_pending for k, v in floats.items()})
        self.pending, self.n_pending = {}, 0
        _guard(metrics, done)
        record = {"event": "train", "step": done, "epoch": done / self.spe, "lr": lr,
                  "time": time.perf_counter() - self.t0, **metrics}
        self.history.train.append(record)
        for cb in self.callbacks:
            cb.on_log(self.context, record)

    def log_eval(self, done: int) -> None:
        assert self.eval_batches is not None
        metrics = evaluate(self.trainer, self.eval_batches(done))
        _guard(metrics, done, "validation")
        record = {"event": "eval", "step": done, "epoch": done / self.spe,
                  **{f"val_{k}": v for k, v in metrics.items()}}
        self.history.eval.append(record)
        for cb in self.callbacks:
            cb.on_eval(self.context, done, metrics)
        for cb in self.callbacks:
            cb.on_log(self.context, record)


def _guard(metrics: Mapping[str, float], step: int, what: str = "training") -> None:
    bad = [k for k, v in metrics.items() if not math.isfinite(v)]
    if bad:
        also = f" (so are {', '.join(bad[1:])})" if len(bad) > 1 else ""
        raise Diverged(
            f"{what} diverged at step {step}: {bad[0]} is {metrics[bad[0]]}{also}; the last "
            "checkpoint before it is kept (try a lower --lr)", step
        )
