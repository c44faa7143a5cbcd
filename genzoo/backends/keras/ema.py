"""The moving average of a Keras model's weights, updated in one traced step."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import keras
import numpy as np

from genzoo.backends.common import check_state_matches
from genzoo.backends.keras.graphs import graph_function


class KerasAverage:
    """An average of every weight of the model (``model.weights``: trainable and not,
    such as batch-norm statistics), named by variable path."""

    def __init__(self, weights: Mapping[str, Any]):
        self.names = list(weights)
        self.current = [weights[k] for k in self.names]
        self.shadow = [keras.Variable(keras.ops.convert_to_numpy(v), dtype=v.dtype,
                                      trainable=False, name=f"ema_{i}")
                       for i, v in enumerate(self.current)]
        self._step = graph_function(self._update)

    def _update(self, rate: Any) -> Any:
        for average, value in zip(self.shadow, self.current):
            average.assign(average + rate * (value - average))
        return rate

    def update(self, decay: float) -> None:
        """``average += (1 - decay) * (weights - average)``."""
        self._step(keras.ops.convert_to_tensor(np.float32(1.0 - decay)))

    def state(self) -> dict[str, np.ndarray]:
        return {k: np.array(keras.ops.convert_to_numpy(v)) for k, v in zip(self.names, self.shadow)}

    def load_state(self, tensors: Mapping[str, np.ndarray]) -> None:
        check_state_matches({k: tuple(v.shape) for k, v in zip(self.names, self.shadow)},
                            tensors, "the moving average of the weights", keras_names=True)
        for name, average in zip(self.names, self.shadow):
            average.assign(np.asarray(tensors[name]))
