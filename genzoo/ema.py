"""EMA: an exponential moving average of a model's weights, kept on its device.

``ema_decay`` (any model, ``--set ema_decay=0.999``) turns it on. After every optimizer
step, each floating-point weight ``w`` (parameters and buffers such as batch-norm
statistics) moves its average ``a`` to ``a + (1 - d) (w - a)``. The decay warms up as
``d = min(ema_decay, (1 + t) / (10 + t))`` after ``t`` steps, so the first steps'
random weights are soon forgotten. Sampling and evaluation use the average; the file
``model.safetensors`` holds the trained weights under their names and the average as
``ema.<name>``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from genzoo.callbacks import Callback, TrainingContext
from genzoo.errors import ConfigError

PREFIX = "ema."  # the average's names in model.safetensors


def decay_at(decay: float, steps: int, warmup: bool = True) -> float:
    """The decay of the update after ``steps`` optimizer steps."""
    return min(decay, (1.0 + steps) / (10.0 + steps)) if warmup else decay


class EMA(Callback):
    """Keeps the moving average of the weights (``ema_decay`` adds one to every run).

    Args:
        decay: the average's decay per step, in (0, 1); 0.999 averages about the last
            thousand steps.
        warmup: start from a lower decay that rises to ``decay`` (see ``decay_at``).
    """

    key = "ema"

    def __init__(self, decay: float = 0.999, warmup: bool = True):
        if not 0.0 < decay < 1.0:
            raise ConfigError(f"ema_decay must lie in (0, 1), not {decay}")
        self.decay, self.warmup = decay, warmup
        self.average: Any = None  # the backend's WeightAverage, from on_train_start
        self._saved: dict[str, Any] | None = None

    def on_train_start(self, run: TrainingContext) -> None:
        self.average = run.generator.average_weights()
        if self._saved is not None:
            self.average.load_state(self._saved)
            self._saved = None

    def on_step_end(self, run: TrainingContext, step: int, metrics: Mapping[str, float]) -> None:
        self.average.update(decay_at(self.decay, step, self.warmup))

    def weights(self) -> dict[str, Any]:
        """The average, as numpy arrays named like the model's weights."""
        if self.average is None:
            return dict(self._saved or {})
        return self.average.state()

    def state_dict(self) -> dict[str, Any]:
        return self.weights()

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if self.average is not None:
            self.average.load_state(state)
        else:
            self._saved = dict(state)


def with_average(raw: Mapping[str, Any], average: Mapping[str, Any]) -> dict[str, Any]:
    """The tensors of ``model.safetensors``: the trained ones, then ``ema.<name>``."""
    return {**raw, **{PREFIX + k: v for k, v in average.items()}}


def averaged(raw: Mapping[str, Any], average: Mapping[str, Any]) -> dict[str, Any]:
    """The weights a sample is drawn with: the trained ones, each averaged one replaced."""
    return {k: average.get(k, v) for k, v in raw.items()}
