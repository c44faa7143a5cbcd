"""The Keras Generator and TextGenerator: a plugin's ``keras.Model`` behind the core's
protocol."""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import nullcontext
from typing import Any

import keras
import numpy as np

from genzoo.backends.common import (valid_interpolate_args, valid_sample_args, check_state_matches,
                                    describe, num_classes, random_seed, sample_conditions,
                                    slerp, strip_labels)
from genzoo.backends.text import TextSampling
from genzoo.errors import CheckpointError
from genzoo.protocols import DataInfo
from genzoo.specs import ModelSpec


def _variable_map(variables: list[Any], what: str) -> dict[str, Any]:
    by_path: dict[str, Any] = {}
    for v in variables:
        if v.path in by_path:
            raise CheckpointError(f"{what} has two variables named '{v.path}'; name its layers")
        by_path[v.path] = v
    return by_path


class KerasGenerator:
    """Wraps a plugin's ``keras.Model`` in the core's Generator protocol."""

    def __init__(self, spec: ModelSpec, config: Any, info: DataInfo, model: keras.Model,
                 device: str):
        self.spec = spec
        self.config = config
        self.info = info
        self.model = model
        self.device = device

    __repr__ = describe

    @property
    def num_classes(self) -> int:
        """The classes a conditional model draws; 0 for an unconditional one."""
        return num_classes(self)

    def sample(self, n: int, *, seed: int | None = None, labels: Any = None) -> np.ndarray:
        n, seed = valid_sample_args(n, seed)
        seed = random_seed() if seed is None else seed
        rows = sample_conditions(self, n, seed, labels)
        seeds = keras.random.SeedGenerator(seed)
        with _no_grad():
            out = self.model.sample(n, seeds, **({} if rows is None else {"labels": rows}))
            return np.asarray(keras.ops.convert_to_numpy(out), dtype=np.float32)

    def interpolate(self, seed_a: int, seed_b: int, steps: int, *,
                    labels: Any = None) -> np.ndarray:
        """Images along the arc between the latents of two seeds (their first samples);
        ``labels`` as in the torch backend's ``interpolate``."""
        seed_a, seed_b, steps = valid_interpolate_args(self.model, self.spec.name, seed_a, seed_b,
                                                  steps)
        rows = strip_labels(self, seed_a, steps, labels)
        with _no_grad():
            ends = [keras.ops.convert_to_numpy(self.model.noise(1, keras.random.SeedGenerator(s)))
                    for s in (seed_a, seed_b)]
            out = self.model.render(slerp(ends[0], ends[1], steps),
                                    **({} if rows is None else {"labels": rows}))
            return np.asarray(keras.ops.convert_to_numpy(out), dtype=np.float32)

    def _weights(self) -> dict[str, Any]:
        return _variable_map(self.model.weights, f"{self.spec.name} ({self.spec.backend})")

    def state(self) -> dict[str, np.ndarray]:
        return {k: np.array(keras.ops.convert_to_numpy(v)) for k, v in self._weights().items()}

    def load_state(self, tensors: Mapping[str, np.ndarray]) -> None:
        weights = self._weights()
        check_state_matches({k: tuple(v.shape) for k, v in weights.items()}, tensors,
                            f"{self.spec.name} ({self.spec.backend})", keras_names=True)
        for name, variable in weights.items():
            variable.assign(np.asarray(tensors[name]))

    def average_weights(self) -> Any:
        """A moving average of the weights (``genzoo.ema``), starting from them."""
        from genzoo.backends.keras.ema import KerasAverage

        skip = getattr(self.model, "ema_skip", None) or (lambda name: False)
        return KerasAverage({k: v for k, v in self._weights().items() if not skip(k)})

    def num_parameters(self) -> int:
        return int(sum(np.prod(v.shape) for v in self.model.trainable_weights))

    def prepare_eval(self, x: np.ndarray) -> np.ndarray:
        prepare = getattr(self.model, "prepare_eval", None)
        return prepare(x) if prepare is not None else x


class KerasTextGenerator(TextSampling, KerasGenerator):
    """A Keras text model: adds ``generate`` and ``stream`` (the core's sampler)."""

    def _prefill(self, ids: Any) -> tuple[np.ndarray, Any]:
        with _no_grad():
            return self.model.prefill(ids)

    def _extend(self, token: int, cache: Any, position: int) -> tuple[np.ndarray, Any]:
        with _no_grad():
            return self.model.extend(token, cache, position)

    def _eval_mode(self) -> Any:
        return nullcontext()  # the model's generation steps run with training=False


def _no_grad() -> Any:
    """On Keras's torch backend, record no autograd graph while sampling (a text cache
    would otherwise chain every generated token's graph to the next, and an image batch
    would hold its whole graph until converted). Entered per call, never across a
    yield, so the caller's grad mode is untouched."""
    if keras.backend.backend() == "torch":
        import torch

        return torch.no_grad()
    return nullcontext()
