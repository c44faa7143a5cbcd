"""The Keras 3 adapter: the Keras Trainer and Generator, on any Keras backend.

A Keras plugin supplies a ``keras.Model`` subclass built as ``Model(config, data_info)``
whose weights exist after construction, with every layer named (weight names must be
stable across processes), and:

- ``compute_loss(x, y, y_pred, sample_weight, training)`` overridden, so Keras computes
  gradients on every backend; it updates metric trackers listed in ``metrics``;
- ``sample(n, seed_generator) -> tensor``: images NHWC in [0, 1];
- optionally ``prepare_eval(x: np.ndarray) -> np.ndarray``; models with several
  optimizers (the GAN) define ``configure_optimizers(make_optimizer) -> dict``, passed
  to their ``compile``, and override ``train_step``/``test_step`` using
  ``value_and_grad()``;
- optionally ``render(z)`` and ``noise(n, seed_generator)`` for latent interpolation.

A conditional model (``genzoo.conditioning``) receives the pair ``(images, labels)`` as
its input ``x`` in training and evaluation (``unpack_inputs`` takes it apart), labels as
one-hot float32 rows ``(n, num_classes)``, and ``labels=`` as a keyword argument of
``sample`` and ``render``.

Randomness inside a model must come from a ``keras.random.SeedGenerator`` attribute:
its state is saved in checkpoints, which makes resumed runs exact.

The adapter is a package: ``devices`` (where Keras runs), ``graphs`` (gradients and traced
steps), ``generator``, ``trainer``, and ``private``, which holds every use of Keras's
private API.
"""

from __future__ import annotations

import os
import warnings
from typing import Any

import keras  # importing genzoo set TensorFlow's environment first (genzoo._tfenv)

from genzoo._tfenv import ONEDNN_ALREADY_ON
from genzoo.backends.keras.devices import accelerators, scope, strategy, versions
from genzoo.backends.keras.generator import KerasGenerator, KerasTextGenerator
from genzoo.backends.keras.graphs import graph_function, value_and_grad
from genzoo.backends.keras.trainer import KerasTrainer, make_optimizer
from genzoo.config import TrainConfig
from genzoo.errors import ConfigError
from genzoo.protocols import DataInfo
from genzoo.specs import ModelSpec, import_object

__all__ = ["KerasGenerator", "KerasTextGenerator", "KerasTrainer", "accelerators", "build",
           "graph_function", "make_optimizer", "make_trainer", "strategy", "unpack_inputs",
           "value_and_grad", "versions"]


def unpack_inputs(data: Any) -> tuple[Any, Any]:
    """``(images, labels)`` from what Keras hands ``call``, ``train_step`` or
    ``test_step``: a batch, ``(x, y, sample_weight)``, or a conditional model's
    ``(images, labels)`` pair; ``labels`` is ``None`` for an unconditional batch."""
    if isinstance(data, tuple) and len(data) == 3 and data[1] is None and data[2] is None:
        data = data[0]  # Keras's (x, y, sample_weight) around the input
    elif isinstance(data, tuple) and len(data) == 1:
        data = data[0]
    if isinstance(data, (tuple, list)):
        images, labels = data
        return images, labels
    return data, None


def build(spec: ModelSpec, config: Any, info: DataInfo, *, seed: int,
          device: str = "auto") -> KerasGenerator:
    """Build a plugin's Keras model with seeded weights."""
    if device not in ("auto", "cpu"):
        raise ConfigError(
            f"device '{device}' is not supported by the keras backend; Keras places the "
            "model itself (use auto, or cpu)"
        )
    gpus = accelerators()
    if device == "cpu" and gpus:
        warnings.warn("device 'cpu': Keras places the model itself and uses the GPU it sees; "
                      "to keep it on the CPU, hide the GPU (CUDA_VISIBLE_DEVICES= genzoo ...)",
                      UserWarning, stacklevel=2)
    keras.utils.set_random_seed(seed)
    with scope():  # mirrored variables when several devices train one model
        model = import_object(spec.builder, f"builder of model '{spec.name}'")(config, info)
    cls = KerasTextGenerator if spec.kind == "text" else KerasGenerator
    # Where it runs, as meta.json records it: "cpu", "gpu", or a MirroredStrategy's replicas.
    mirrored = strategy()
    placed = ("cpu" if not gpus else "gpu") if mirrored is None else \
        f"{mirrored.num_replicas_in_sync} mirrored devices"
    return cls(spec, config, info, model, placed)


def make_trainer(generator: KerasGenerator, cfg: TrainConfig) -> KerasTrainer:
    if keras.backend.backend() == "tensorflow":
        why = None
        if ONEDNN_ALREADY_ON:
            why = "TensorFlow was imported before genzoo with its oneDNN kernels on"
        elif os.environ.get("TF_ENABLE_ONEDNN_OPTS") != "0":
            why = "TF_ENABLE_ONEDNN_OPTS is set: TensorFlow's oneDNN kernels are on"
        if why:
            warnings.warn(f"{why}, whose results depend on thread scheduling: this run may "
                          "not resume bit for bit. Import genzoo first, or set "
                          "TF_ENABLE_ONEDNN_OPTS=0", stacklevel=2)
    return KerasTrainer(generator, cfg)
