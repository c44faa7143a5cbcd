"""Where Keras runs: its versions, the devices it sees and the distribution strategy."""

from __future__ import annotations

import functools
import os
from contextlib import nullcontext
from typing import Any

import keras


def versions() -> dict[str, str]:
    found = {"keras": keras.__version__, "keras_backend": keras.backend.backend()}
    backend = keras.backend.backend()
    module = {"tensorflow": "tensorflow", "torch": "torch", "jax": "jax"}.get(backend)
    if module:
        found[module] = __import__(module).__version__
    return found


@functools.cache  # decided once per process
def strategy() -> Any:
    """The ``tf.distribute.MirroredStrategy`` Keras models train under, or ``None``.

    On Keras's TensorFlow backend a host with several GPUs trains one model replica per
    GPU, each on its slice of every global batch, with the gradients summed by the
    strategy's all-reduce. ``GENZOO_TF_DEVICES`` (``"/gpu:0,/gpu:1"``) names the devices;
    ``GENZOO_TF_DEVICES=none`` turns it off. Other backends return ``None``.
    """
    if keras.backend.backend() != "tensorflow":
        return None
    import tensorflow as tf

    names = os.environ.get("GENZOO_TF_DEVICES", "").strip()
    if names.lower() == "none":
        return None
    devices = ([d.strip() for d in names.split(",") if d.strip()] if names
               else [d.name for d in tf.config.list_logical_devices("GPU")])
    if len(devices) < 2:
        return None
    return tf.distribute.MirroredStrategy(devices)


def accelerators() -> int:
    """How many GPUs Keras's backend sees (it places models on them itself)."""
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        return len(tf.config.list_logical_devices("GPU"))
    if keras.backend.backend() == "torch":
        import torch

        return torch.cuda.device_count()
    return 0


def scope() -> Any:
    found = strategy()
    return found.scope() if found is not None else nullcontext()
