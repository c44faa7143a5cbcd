"""Callbacks: code that runs at the training loop's events, for every model and backend.

A callback subclasses ``Callback`` and overrides the events it needs; each receives the
``TrainingContext`` (the model, its trainer, the configs, the run folder) first. Pass
callbacks as ``genzoo.train(..., callbacks=[...])`` or ``genzoo train --callback
module:Name``. A callback with state returns it from ``state_dict()``: genzoo saves it in
every checkpoint and hands it back to ``load_state_dict()`` on resume, so a resumed run
continues exactly as an uninterrupted one.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from genzoo.errors import ConfigError
from genzoo.progress import Reporter, format_metrics
from genzoo.protocols import Generator, History, Trainer
from genzoo.specs import ModelSpec


@dataclass
class TrainingContext:
    """What a callback sees of the run it is called from.

    Attributes:
        generator: the model being trained (its network is ``generator.module`` in torch,
            ``generator.model`` in Keras).
        trainer: the backend's trainer (its optimizers are ``trainer.optimizers``).
        spec: the model's registry entry.
        model_config: the family's config; ``train_config``: the ``TrainConfig``.
        out: the run folder (``None`` on the ranks of a torchrun job other than rank 0,
            which write nothing).
        total_steps: the steps the run trains to; ``steps_per_epoch``: one pass's steps.
        start_step: where this process started (above 0 when resumed).
        step: the steps done so far.
        is_main: whether this process writes the run's files (rank 0, or the only one).
        error: in ``on_train_end``, the exception that ended training, or ``None``.
    """

    generator: Generator
    trainer: Trainer
    spec: ModelSpec
    model_config: Any
    train_config: Any
    out: Path | None
    total_steps: int
    steps_per_epoch: int
    start_step: int = 0
    step: int = 0
    is_main: bool = True
    description: str = "training"
    error: BaseException | None = None
    stop_reason: str | None = field(default=None, init=False)

    def stop(self, reason: str) -> None:
        """Ask the loop to end training after the current step: the run then finishes as
        a complete one (test pass, weights, samples) at that step."""
        self.stop_reason = reason


class Callback:
    """The base of every callback: each event does nothing until overridden.

    Events come in this order: ``on_train_start``; for each step ``on_step_end``, then,
    when due, ``on_log`` (a training record), ``on_eval`` and ``on_log`` (its record),
    ``on_checkpoint``; finally ``on_train_end``, however training ends. On resume,
    ``load_state_dict`` comes before ``on_train_start``.
    """

    key: str | None = None  # the name its state is saved under; default: the class name

    def on_train_start(self, run: TrainingContext) -> None:
        """Training starts (or resumes at ``run.start_step``)."""

    def on_step_end(self, run: TrainingContext, step: int, metrics: Mapping[str, float]) -> None:
        """Step ``step`` (counted from 1) is done: the optimizer has stepped. ``metrics``
        are the step's own values as floats, read from the device only when looked at."""

    def on_log(self, run: TrainingContext, record: Mapping[str, Any]) -> None:
        """A record written to ``metrics.jsonl``: ``event`` is ``"train"`` (metrics
        averaged since the last record) or ``"eval"`` (``val_<metric>``)."""

    def on_eval(self, run: TrainingContext, step: int, metrics: Mapping[str, float]) -> None:
        """A validation pass after ``step``: its metrics by name (``loss``, ...)."""

    def on_checkpoint(self, run: TrainingContext, step: int, path: Path) -> None:
        """The checkpoint of ``step`` is written, at ``path``; ``state_dict()`` is in it."""

    def on_train_end(self, run: TrainingContext, history: History) -> None:
        """Training is over: all steps done, stopped early, interrupted (``run.error``
        is then the ``Interrupted``) or failed (the exception)."""

    def state_dict(self) -> dict[str, Any]:
        """The state to checkpoint: numpy arrays (saved as tensors) and JSON values."""
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what ``state_dict()`` returned (on resume, before ``on_train_start``)."""


class StepMetrics(Mapping[str, float]):
    """A step's metrics, brought to the host as floats on first access (a GPU run then
    waits for the step; unread, they cost nothing)."""

    def __init__(self, trainer: Trainer, raw: Mapping[str, Any]):
        self._trainer, self._raw = trainer, raw
        self._floats: dict[str, float] | None = None

    def _values(self) -> dict[str, float]:
        if self._floats is None:
            self._floats = self._trainer.to_floats(self._raw)
        return self._floats

    def __getitem__(self, key: str) -> float:
        return self._values()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._raw)

    def __len__(self) -> int:
        return len(self._raw)


class ProgressCallback(Callback):
    """Reports progress to a ``genzoo.progress.Reporter``: a bar on a terminal or log
    lines (``genzoo.train(reporter=...)`` wraps its reporter in one)."""

    key = "progress"

    def __init__(self, reporter: Reporter):
        self.reporter = reporter

    def on_train_start(self, run: TrainingContext) -> None:
        self.reporter.start(run.total_steps, run.start_step, run.description)

    def on_step_end(self, run: TrainingContext, step: int, metrics: Mapping[str, float]) -> None:
        self.reporter.advance(step)

    def on_log(self, run: TrainingContext, record: Mapping[str, Any]) -> None:
        if record.get("event") == "train":
            shown = {k: v for k, v in record.items()
                     if k not in ("event", "step", "epoch", "lr", "time")}
            self.reporter.metrics(int(record["step"]), shown)

    def on_eval(self, run: TrainingContext, step: int, metrics: Mapping[str, float]) -> None:
        self.reporter.message(f"step {step}: validation {format_metrics(metrics, 99)}")

    def on_train_end(self, run: TrainingContext, history: History) -> None:
        self.reporter.close()


class EarlyStopping(Callback):
    """Stop when a validation metric has not improved for ``patience`` evaluations.

    Args:
        monitor: a validation metric, with or without its ``val_`` prefix.
        patience: evaluations without improvement before stopping.
        min_delta: the least change that counts as an improvement.
        mode: ``"min"`` (losses) or ``"max"``.
    """

    key = "early_stopping"

    def __init__(self, monitor: str = "val_loss", patience: int = 3, min_delta: float = 0.0,
                 mode: str = "min"):
        if mode not in ("min", "max"):
            raise ConfigError(f"EarlyStopping mode must be 'min' or 'max', not {mode!r}")
        if patience < 1 or min_delta < 0:
            raise ConfigError("EarlyStopping needs patience >= 1 and min_delta >= 0")
        self.monitor = monitor.removeprefix("val_")
        self.patience, self.min_delta, self.mode = patience, min_delta, mode
        self.best: float | None = None
        self.waited = 0
        self.best_step = 0

    def on_eval(self, run: TrainingContext, step: int, metrics: Mapping[str, float]) -> None:
        if self.monitor not in metrics:
            raise ConfigError(f"EarlyStopping monitors val_{self.monitor}, which this model "
                              f"does not report; it reports {', '.join(sorted(metrics))}")
        value = float(metrics[self.monitor])
        sign = 1.0 if self.mode == "min" else -1.0
        if self.best is None or sign * (self.best - value) > self.min_delta:
            self.best, self.waited, self.best_step = value, 0, step
            return
        self.waited += 1
        if self.waited >= self.patience:
            run.stop(f"val_{self.monitor} has not improved on {self.best:.4g} (step "
                     f"{self.best_step}) for {self.waited} evaluations")

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "waited": self.waited, "best_step": self.best_step}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        best = state.get("best")
        self.best = None if best is None else float(best)
        self.waited, self.best_step = int(state["waited"]), int(state["best_step"])


def callback_from_path(text: str) -> Callback:
    """A callback named on the command line: ``module:Name`` (a ``Callback`` class, or a
    function returning one, called without arguments) or ``module:Name(key=value, ...)``
    with Python literals as values."""
    import ast

    from genzoo.specs import import_object

    path, _, rest = text.strip().partition("(")
    if ":" not in path or not path.split(":", 1)[1]:
        raise ConfigError(f"--callback {text!r} is not 'module:Name' or 'module:Name(key=value)'")
    kwargs: dict[str, Any] = {}
    if rest:
        try:
            call = ast.parse(f"f({rest}", mode="eval").body
            if not isinstance(call, ast.Call) or call.args:
                raise ValueError("positional arguments")
            kwargs = {kw.arg or "": ast.literal_eval(kw.value) for kw in call.keywords}
        except (SyntaxError, ValueError) as exc:
            raise ConfigError(f"--callback {text!r}: the arguments must be key=value with "
                              f"Python literals ({exc})") from None
    factory = import_object(path, "callback")
    try:
        made = factory(**kwargs) if callable(factory) else factory
    except TypeError as exc:
        raise ConfigError(f"--callback {text!r}: {exc}") from None
    if not isinstance(made, Callback):
        raise ConfigError(f"--callback {path} gives a {type(made).__name__}, not a "
                          "genzoo.callbacks.Callback")
    return made


def callback_keys(callbacks: Sequence[Callback]) -> list[str]:
    """The names the callbacks' states are saved under: ``key`` or the class name, with
    ``-2``, ``-3``... for repeats."""
    keys: list[str] = []
    for cb in callbacks:
        base = cb.key or type(cb).__name__
        key, n = base, 2
        while key in keys:
            key, n = f"{base}-{n}", n + 1
        keys.append(key)
    return keys


def split_state(callbacks: Sequence[Callback]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Every callback's state as checkpoint tensors (``callback.<key>.<name>``) and JSON
    values (``{key: {name: value}}``)."""
    import numpy as np

    tensors: dict[str, Any] = {}
    values: dict[str, Any] = {}
    for key, cb in zip(callback_keys(callbacks), callbacks):
        for name, value in cb.state_dict().items():
            if isinstance(value, np.ndarray):
                tensors[f"callback.{key}.{name}"] = value
            else:
                values.setdefault(key, {})[name] = value
    return tensors, values


def restore_state(callbacks: Sequence[Callback], tensors: Mapping[str, Any],
                  values: Mapping[str, Any]) -> None:
    """Hand each callback the state ``split_state`` saved under its key (none: nothing)."""
    for key, cb in zip(callback_keys(callbacks), callbacks):
        prefix = f"callback.{key}."
        state = dict(values.get(key, {}))
        state.update({k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)})
        if state:
            cb.load_state_dict(state)


def without_callback_tensors(tensors: Mapping[str, Any]) -> dict[str, Any]:
    """A checkpoint's trainer tensors without the callbacks' (the trainer's own state)."""
    return {k: v for k, v in tensors.items() if not k.startswith("callback.")}
