"""The backend-agnostic protocol between genzoo's core and a model.

Numpy arrays cross every boundary: batches go in as numpy, samples and weights come out
as numpy. Images are float32 NHWC in [0, 1]; text batches are int64 token ids.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

from genzoo.specs import ModelSpec


@dataclass(frozen=True)
class DataInfo:
    """What a model needs to know about its data to be built.

    Saved in ``config.json`` so that a run can be reloaded without its dataset.

    Attributes:
        kind: ``"image"`` or ``"text"``.
        shape: ``(H, W, C)`` of the images; empty for text.
        vocab: the characters of a text model's vocabulary, in id order; ``vocab_size``
            is its length. Empty for images.
        classes: the names of a labelled image dataset's classes, in label order
            (``"0"`` to ``"9"`` for MNIST); ``num_classes`` is their number. Empty when
            the images have no labels. A conditional model is built for this many.
    """

    kind: str  # "image" or "text"
    shape: tuple[int, ...] = ()  # (H, W, C) for images
    vocab: str = ""  # the tokenizer's characters, in id order, for text
    classes: tuple[str, ...] = ()  # class names of a labelled image dataset

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "shape": list(self.shape), "vocab": self.vocab}
        if self.classes:
            out["classes"] = list(self.classes)
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> DataInfo:
        return cls(data["kind"], tuple(data.get("shape", ())), data.get("vocab", ""),
                   tuple(str(c) for c in data.get("classes", ())))

    def without_classes(self) -> DataInfo:
        """The same data seen by an unconditional model (no class names)."""
        return DataInfo(self.kind, self.shape, self.vocab)


class WeightAverage(Protocol):
    """A moving average of a model's floating-point weights, kept by its backend."""

    def update(self, decay: float) -> None:
        """``average += (1 - decay) * (weights - average)``, for every weight."""
        ...

    def state(self) -> dict[str, np.ndarray]:
        """The average, named like ``Generator.state()`` (its floating-point entries)."""
        ...

    def load_state(self, tensors: Mapping[str, np.ndarray]) -> None:
        """Restore what ``state()`` returned."""
        ...


@runtime_checkable
class Generator(Protocol):
    """A trained or trainable generative model, seen from the core."""

    spec: ModelSpec
    config: Any  # the family's ModelConfig
    info: DataInfo
    num_classes: int  # classes a conditional model draws; 0 for an unconditional one

    def sample(self, n: int, *, seed: int | None = None, labels: Any = None) -> np.ndarray:
        """Draw ``n`` samples; images are float32 NHWC in [0, 1]. Same seed, same samples.

        ``labels`` (conditional models, see ``genzoo.conditioning``): the class of each
        sample, or one int for all; without them a conditional model draws the classes
        uniformly from the seed. The same (seed, labels) give the same samples. An
        unconditional model refuses labels (``ConfigError``)."""
        ...

    def state(self) -> dict[str, np.ndarray]:
        """The weights (and buffers) as numpy arrays with stable names."""
        ...

    def load_state(self, tensors: Mapping[str, np.ndarray]) -> None:
        """Load weights saved by ``state()``; names and shapes must match."""
        ...

    def num_parameters(self) -> int:
        """The number of trainable parameters."""
        ...

    def average_weights(self) -> WeightAverage:
        """A moving average of the weights, on the model's device, starting from them
        (what ``ema_decay`` keeps; see ``genzoo.ema``)."""
        ...

    def prepare_eval(self, x: np.ndarray) -> np.ndarray:
        """Turn a raw evaluation split into what the model is evaluated on (once per run).

        The VAE binarises test images here with a fixed seed; most models return ``x``.
        """
        ...


@runtime_checkable
class TextGenerator(Generator, Protocol):
    """A generator of text."""

    def generate(self, prompt: str, *, max_new_tokens: int, temperature: float = 0.8,
                 top_k: int | None = 40, seed: int | None = None, cache: bool = True) -> str:
        """Continue ``prompt`` and return the new text. The defaults are ``genzoo
        sample``'s; ``temperature=1.0, top_k=None`` draws from the model as trained.
        ``cache=False`` re-runs the model's ``prefill`` on the whole window for every
        character instead of calling ``extend``: for a seed, both give the same text."""
        ...

    def stream(self, prompt: str, *, max_new_tokens: int, temperature: float = 0.8,
               top_k: int | None = 40, seed: int | None = None,
               cache: bool = True) -> Iterator[str]:
        """Continue ``prompt``, yielding the new text a character at a time."""
        ...


@runtime_checkable
class Trainer(Protocol):
    """One per backend: optimises a generator on numpy batches.

    The model owns its loss (and, when it has several optimizers, its step); the
    trainer owns optimizers, gradients, devices and RNG state.
    """

    def train_step(self, batch: np.ndarray) -> Mapping[str, Any]:
        """One optimisation step; returns metrics, possibly still on the device."""
        ...

    def eval_step(self, batch: np.ndarray) -> Mapping[str, Any]:
        """Metrics on one batch, without updating anything."""
        ...

    def to_floats(self, metrics: Mapping[str, Any]) -> dict[str, float]:
        """Bring metrics to the host as floats (the only place a step syncs)."""
        ...

    def set_lr(self, lr: float) -> None:
        """Set the learning rate of every optimizer (called before every step)."""
        ...

    def state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Optimizer and RNG state: tensors, and JSON-ready values."""
        ...

    def load_state(self, tensors: Mapping[str, np.ndarray], values: Mapping[str, Any]) -> None:
        """Restore what ``state()`` returned."""
        ...


class Backend(Protocol):
    """What a backend adapter provides (``genzoo.backends.torch``, ``genzoo.backends.keras``):
    the only code of the core that touches a framework. ``genzoo.backends.get_backend``
    looks one up by name; numpy arrays cross every boundary."""

    def build(self, spec: ModelSpec, config: Any, info: DataInfo, *, seed: int,
              device: str = "auto") -> Generator:
        """A plugin's model (``spec.builder``) with weights seeded by ``seed``, on
        ``device``, wrapped in the core's ``Generator`` (or ``TextGenerator``)."""
        ...

    def make_trainer(self, generator: Any, cfg: Any) -> Trainer:
        """The trainer of a model this backend built, for a ``TrainConfig``."""
        ...

    def versions(self) -> dict[str, str]:
        """The framework versions a run records in ``meta.json``."""
        ...


@dataclass
class History:
    """What a training run logged: train and validation metrics by step.

    Attributes:
        train: one record per training log line (``step``, ``epoch``, ``lr``, ``time``
            and the model's metrics, averaged since the previous line).
        eval: one record per validation pass (``step``, ``epoch``, ``val_<metric>``).
    """

    train: list[dict[str, Any]] = field(default_factory=list)
    eval: list[dict[str, Any]] = field(default_factory=list)

    def last(self, which: str = "eval") -> dict[str, Any]:
        records = getattr(self, which)
        return dict(records[-1]) if records else {}
