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
  :func:`value_and_grad`;
- optionally ``render(z)`` and ``noise(n, seed_generator)`` for latent interpolation.

Randomness inside a model must come from a ``keras.random.SeedGenerator`` attribute:
its state is saved in checkpoints, which makes resumed runs exact.
"""

from __future__ import annotations

import os

# Before Keras imports TensorFlow: keep its C++ banner quiet, and use its plain CPU
# kernels, whose results do not depend on thread scheduling (exact resume needs that).
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

from collections.abc import Mapping  # noqa: E402
from contextlib import nullcontext  # noqa: E402
from typing import Any  # noqa: E402

import keras  # noqa: E402
import numpy as np  # noqa: E402

from genzoo.backends.common import check_state_matches, random_seed, slerp  # noqa: E402
from genzoo.backends.text import TextSampling  # noqa: E402
from genzoo.config import TrainConfig  # noqa: E402
from genzoo.distributed import all_average, world  # noqa: E402
from genzoo.errors import CheckpointError, ConfigError  # noqa: E402
from genzoo.protocols import DataInfo  # noqa: E402
from genzoo.registry import ModelSpec, import_object  # noqa: E402


def _tf_value_and_grad(fn: Any, variables: list[Any]) -> tuple[Any, Any, list[Any]]:
    import tensorflow as tf

    with tf.GradientTape() as tape:
        loss, aux = fn()
    return loss, aux, tape.gradient(loss, variables)


def _torch_value_and_grad(fn: Any, variables: list[Any]) -> tuple[Any, Any, list[Any]]:
    for v in variables:
        v.value.grad = None
    loss, aux = fn()
    loss.backward()
    return loss.detach(), aux, [v.value.grad for v in variables]


# The only per-backend code a Keras model with a custom step needs: the gradient.
_VALUE_AND_GRAD = {"tensorflow": _tf_value_and_grad, "torch": _torch_value_and_grad}


def value_and_grad(fn: Any, variables: list[Any]) -> tuple[Any, Any, list[Any]]:
    """Call ``fn() -> (loss, aux)`` and return ``(loss, aux, d loss / d variables)``.

    For Keras models whose step cannot be ``compute_loss`` (a GAN's two updates): the
    step is written once with ``keras.ops``, and only this gradient differs by backend.
    Supported on the TensorFlow and torch Keras backends.
    """
    backend = keras.backend.backend()
    if backend not in _VALUE_AND_GRAD:
        raise ConfigError(f"custom Keras steps support the tensorflow and torch backends, "
                          f"not {backend}")
    return _VALUE_AND_GRAD[backend](fn, variables)


def versions() -> dict[str, str]:
    found = {"keras": keras.__version__, "keras_backend": keras.backend.backend()}
    backend = keras.backend.backend()
    module = {"tensorflow": "tensorflow", "torch": "torch", "jax": "jax"}.get(backend)
    if module:
        found[module] = __import__(module).__version__
    return found


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

    def sample(self, n: int, *, seed: int | None = None) -> np.ndarray:
        seeds = keras.random.SeedGenerator(random_seed() % 2**31 if seed is None else seed)
        out = self.model.sample(n, seeds)
        return np.asarray(keras.ops.convert_to_numpy(out), dtype=np.float32)

    def interpolate(self, seed_a: int, seed_b: int, steps: int) -> np.ndarray:
        """Images along the arc between the latents of two seeds (their first samples)."""
        ends = [keras.ops.convert_to_numpy(self.model.noise(1, keras.random.SeedGenerator(s)))
                for s in (seed_a, seed_b)]
        out = self.model.render(slerp(ends[0], ends[1], steps))
        return np.asarray(keras.ops.convert_to_numpy(out), dtype=np.float32)

    def _weights(self) -> dict[str, Any]:
        return _variable_map(self.model.weights, f"{self.spec.name} ({self.spec.backend})")

    def state(self) -> dict[str, np.ndarray]:
        return {k: keras.ops.convert_to_numpy(v) for k, v in self._weights().items()}

    def load_state(self, tensors: Mapping[str, np.ndarray]) -> None:
        weights = self._weights()
        check_state_matches({k: tuple(v.shape) for k, v in weights.items()}, tensors,
                            f"{self.spec.name} ({self.spec.backend})")
        for name, variable in weights.items():
            variable.assign(np.asarray(tensors[name]))

    def num_parameters(self) -> int:
        return int(sum(np.prod(v.shape) for v in self.model.trainable_weights))

    def prepare_eval(self, x: np.ndarray) -> np.ndarray:
        prepare = getattr(self.model, "prepare_eval", None)
        return prepare(x) if prepare is not None else x


class KerasTextGenerator(TextSampling, KerasGenerator):
    """A Keras text model: adds ``generate`` and ``stream`` (the core's sampler)."""

    def _prefill(self, ids: Any) -> tuple[np.ndarray, Any]:
        return self.model.prefill(ids)

    def _extend(self, token: int, cache: Any, position: int) -> tuple[np.ndarray, Any]:
        return self.model.extend(token, cache, position)

    def _eval_mode(self) -> Any:
        return nullcontext()  # the model's generation steps run with training=False


def build(spec: ModelSpec, config: Any, info: DataInfo, *, seed: int,
          device: str = "auto") -> KerasGenerator:
    """Build a plugin's Keras model with seeded weights."""
    if device not in ("auto", "cpu"):
        raise ConfigError(
            f"--device {device} is not supported with --backend keras; Keras places the "
            "model itself (use auto, or cpu)"
        )
    keras.utils.set_random_seed(seed)
    model = import_object(spec.builder)(config, info)
    cls = KerasTextGenerator if spec.kind == "text" else KerasGenerator
    return cls(spec, config, info, model, device)


def make_optimizer(cfg: TrainConfig) -> keras.optimizers.Optimizer:
    """Adam or AdamW matching the torch trainer's settings."""
    kwargs: dict[str, Any] = {"learning_rate": cfg.lr, "beta_1": cfg.beta1,
                              "beta_2": cfg.beta2, "epsilon": 1e-8}
    if cfg.grad_clip > 0:
        kwargs["global_clipnorm"] = cfg.grad_clip
    if cfg.optimizer == "adamw":
        return keras.optimizers.AdamW(weight_decay=cfg.weight_decay, **kwargs)
    return keras.optimizers.Adam(weight_decay=cfg.weight_decay or None, **kwargs)


class KerasTrainer:
    """Optimises a :class:`KerasGenerator` through ``train_on_batch``."""

    def __init__(self, generator: KerasGenerator, cfg: TrainConfig):
        if cfg.precision != "fp32":
            raise ConfigError("precision=bf16 is supported by the torch backend; Keras models "
                              "train in fp32 here")
        self.generator = generator
        self.model = generator.model
        self.cfg = cfg
        configure = getattr(self.model, "configure_optimizers", None)
        if configure is not None:  # the model's compile builds each on its own variables
            self.optimizers = dict(configure(lambda: make_optimizer(cfg)))
            self.model.compile(**self.optimizers, jit_compile=_jit(cfg))
        else:
            opt = make_optimizer(cfg)
            if cfg.weight_decay:  # decay matrices only, as the torch trainer does
                opt.exclude_from_weight_decay(
                    var_list=[v for v in self.model.trainable_variables if len(v.shape) < 2])
            self.optimizers = {"optimizer": opt}
            self.model.compile(optimizer=opt, jit_compile=_jit(cfg))
            opt.build(self.model.trainable_variables)
        self._lr = cfg.lr
        if world().enabled:
            for optimizer in self.optimizers.values():
                _average_before_apply(optimizer)

    def train_step(self, batch: np.ndarray) -> Mapping[str, Any]:
        return self.model.train_on_batch(batch, return_dict=True)

    def eval_step(self, batch: np.ndarray) -> Mapping[str, Any]:
        # Evaluation must not advance the model's seed generators: how often a run
        # evaluates never changes what it trains to.
        rng = [(v, keras.ops.convert_to_numpy(v)) for v in self._rng_variables()]
        torch_rng = _torch_rng()
        try:
            return self.model.test_on_batch(batch, return_dict=True)
        finally:
            for variable, value in rng:
                variable.assign(value)
            _set_torch_rng(torch_rng)

    def to_floats(self, metrics: Mapping[str, Any]) -> dict[str, float]:
        return {k: float(v) for k, v in metrics.items()}

    def set_lr(self, lr: float) -> None:
        if lr != self._lr:  # an assign per step costs more than the comparison
            for opt in self.optimizers.values():
                opt.learning_rate = lr
            self._lr = lr

    # -- checkpoint state ------------------------------------------------------------------
    def _rng_variables(self) -> list[Any]:
        """The model's seed-generator states (fixed once the model is built)."""
        if not hasattr(self, "_rng_cache"):
            self._rng_cache = [v for k, v in self._state_variables().items()
                               if k.startswith("rng.")]
        return self._rng_cache

    def _state_variables(self) -> dict[str, Any]:
        found: dict[str, Any] = {}
        for name, opt in self.optimizers.items():
            for i, v in enumerate(opt.variables):
                found[f"{name}.{i:04d}"] = v
        weight_ids = {id(v) for v in self.model.weights}
        extra = [v for v in self.model.variables if id(v) not in weight_ids]
        for i, v in enumerate(extra):  # SeedGenerator states: the model's RNG
            found[f"rng.{i:04d}"] = v
        return found

    def state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        variables = self._state_variables()
        tensors = {k: keras.ops.convert_to_numpy(v) for k, v in variables.items()}
        torch_rng = _torch_rng()
        if torch_rng is not None:
            tensors[TORCH_RNG] = torch_rng
        return tensors, {"paths": {k: v.path for k, v in variables.items()}, "lr": self._lr}

    def load_state(self, tensors: Mapping[str, np.ndarray], values: Mapping[str, Any]) -> None:
        variables = self._state_variables()
        tensors = dict(tensors)
        _set_torch_rng(tensors.pop(TORCH_RNG, None))
        check_state_matches({k: tuple(v.shape) for k, v in variables.items()}, tensors,
                            "this trainer's optimizer state")
        for name, variable in variables.items():
            variable.assign(np.asarray(tensors[name]))
        self._lr = values.get("lr", self._lr)


# On Keras's torch backend, layers whose SeedGenerator has no explicit seed (Dropout)
# draw from torch's global generator: its state is part of the training state too.
TORCH_RNG = "rng.torch_global"


def _torch_rng() -> np.ndarray | None:
    if keras.backend.backend() != "torch":
        return None
    import torch

    return torch.get_rng_state().numpy()


def _set_torch_rng(state: np.ndarray | None) -> None:
    if state is not None and keras.backend.backend() == "torch":
        import torch

        torch.set_rng_state(torch.from_numpy(np.array(state)))


def _jit(cfg: TrainConfig) -> Any:
    """``compile=true``: XLA on TensorFlow; otherwise Keras decides ("auto")."""
    return True if cfg.compile and keras.backend.backend() == "tensorflow" else "auto"


def _average_before_apply(optimizer: keras.optimizers.Optimizer) -> None:
    """Data-parallel Keras on its torch backend: average gradients over ranks first."""
    if keras.backend.backend() != "torch":
        raise ConfigError("multi-process Keras training needs KERAS_BACKEND=torch; on "
                          "TensorFlow use one process (MirroredStrategy for several GPUs)")
    apply = optimizer.apply

    def averaged(grads: Any, trainable_variables: Any = None) -> Any:
        return apply(all_average(list(grads)), trainable_variables)

    optimizer.apply = averaged


def make_trainer(generator: KerasGenerator, cfg: TrainConfig) -> KerasTrainer:
    return KerasTrainer(generator, cfg)
