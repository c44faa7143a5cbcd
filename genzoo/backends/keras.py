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

Randomness inside a model must come from a ``keras.random.SeedGenerator`` attribute:
its state is saved in checkpoints, which makes resumed runs exact.
"""

from __future__ import annotations

import functools
import os
import warnings
from collections.abc import Mapping
from contextlib import nullcontext
from typing import Any

import keras  # importing genzoo set TensorFlow's environment first (genzoo._tfenv)
import numpy as np

from genzoo._tfenv import ONEDNN_ALREADY_ON
from genzoo.backends import KERAS_MULTIPROCESS
from genzoo.backends.common import (check_interpolate, check_sample, check_state_matches,
                                    describe, random_seed, slerp)
from genzoo.backends.text import TextSampling
from genzoo.config import TrainConfig
from genzoo.distributed import all_average, world
from genzoo.errors import CheckpointError, ConfigError
from genzoo.protocols import DataInfo
from genzoo.registry import ModelSpec, import_object


def _tf_value_and_grad(fn: Any, variables: list[Any]) -> tuple[Any, Any, list[Any]]:
    import tensorflow as tf

    with tf.GradientTape() as tape:
        loss, aux = fn()
        # Under MirroredStrategy each replica's gradient is summed over replicas: scale it
        # so the sum is the gradient of the global batch's mean loss (Keras's convention).
        scaled = loss / tf.distribute.get_strategy().num_replicas_in_sync
    return loss, aux, tape.gradient(scaled, variables)


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


def graph_function(fn: Any) -> Any:
    """``fn`` traced into a graph where the Keras backend has one: ``tf.function`` on
    TensorFlow, ``fn`` itself elsewhere (PyTorch runs eagerly anyway).

    For small, frequent inference steps (one generated token), where calling Keras layers
    eagerly costs far more than their arithmetic. Each distinct set of input shapes and
    dtypes gets a graph traced for exactly those shapes, and a call always runs the graph
    of its own shapes. (``tf.function(reduce_retracing=True)`` would instead trace a
    second shape into a graph with unknown dimensions and run every later shape through
    it, so what a call computed, to the last bit, would depend on the shapes called
    before it: a seed's samples on what was drawn earlier in the process.) Give ``fn``
    inputs of fixed shapes where you can: each new shape costs a trace.
    """
    if keras.backend.backend() != "tensorflow":
        return fn
    import tensorflow as tf

    graphs: dict[Any, Any] = {}

    @functools.wraps(fn)
    def call(*args: Any) -> Any:
        key = _shape_key(tf.nest.flatten(args))
        graph = graphs.get(key)
        if graph is None:
            if len(graphs) >= _MAX_GRAPHS:  # tracing again gives the same graph: safe
                graphs.pop(next(iter(graphs)))
            # One trace per function object (no retracing warnings); without
            # reduce_retracing, tf.function itself never relaxes a shape either.
            graph = graphs[key] = tf.function(fn, reduce_retracing=False)
        return graph(*args)

    call.graphs = graphs  # type: ignore[attr-defined]  # for tests: one per shape
    return call


_MAX_GRAPHS = 64  # exactly-shaped graphs kept per function (the oldest goes first)


def _shape_key(leaves: list[Any]) -> tuple[Any, ...]:
    """What tells one call's graph from another's: each input's dtype and exact shape
    (a Python value stands for itself, as ``tf.function`` bakes it into the graph)."""
    key: list[Any] = []
    for leaf in leaves:
        shape, dtype = getattr(leaf, "shape", None), getattr(leaf, "dtype", None)
        if shape is not None and dtype is not None:
            key.append((str(dtype), tuple(shape)))
        else:
            try:
                hash(leaf)
                key.append(("value", type(leaf).__name__, leaf))
            except TypeError:
                key.append(("object", id(leaf)))
    return tuple(key)


def _scope() -> Any:
    found = strategy()
    return found.scope() if found is not None else nullcontext()


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

    def sample(self, n: int, *, seed: int | None = None) -> np.ndarray:
        n, seed = check_sample(n, seed)
        seeds = keras.random.SeedGenerator(random_seed() if seed is None else seed)
        with _no_grad():
            out = self.model.sample(n, seeds)
            return np.asarray(keras.ops.convert_to_numpy(out), dtype=np.float32)

    def interpolate(self, seed_a: int, seed_b: int, steps: int) -> np.ndarray:
        """Images along the arc between the latents of two seeds (their first samples)."""
        seed_a, seed_b, steps = check_interpolate(self.model, self.spec.name, seed_a, seed_b,
                                                  steps)
        with _no_grad():
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
                            f"{self.spec.name} ({self.spec.backend})", keras_names=True)
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
    with _scope():  # mirrored variables when several devices train one model
        model = import_object(spec.builder, f"builder of model '{spec.name}'")(config, info)
    cls = KerasTextGenerator if spec.kind == "text" else KerasGenerator
    # Where it runs, as meta.json records it: "cpu", "gpu", or a MirroredStrategy's replicas.
    mirrored = strategy()
    placed = ("cpu" if not gpus else "gpu") if mirrored is None else \
        f"{mirrored.num_replicas_in_sync} mirrored devices"
    return cls(spec, config, info, model, placed)


def make_optimizer(cfg: TrainConfig) -> keras.optimizers.Optimizer:
    """Adam or AdamW matching the torch trainer's settings."""
    kwargs: dict[str, Any] = {"learning_rate": cfg.lr, "beta_1": cfg.beta1,
                              "beta_2": cfg.beta2, "epsilon": 1e-8}
    if cfg.grad_clip > 0:
        kwargs["global_clipnorm"] = cfg.grad_clip
    if cfg.optimizer == "adamw":
        return keras.optimizers.AdamW(weight_decay=cfg.weight_decay, **kwargs)
    return keras.optimizers.Adam(**kwargs)  # planning refuses weight decay with adam


class KerasTrainer:
    """Optimises a ``KerasGenerator`` through ``train_on_batch``."""

    def __init__(self, generator: KerasGenerator, cfg: TrainConfig):
        if cfg.precision == "bf16":
            raise ConfigError("precision=bf16 is supported by the torch backend; Keras models "
                              "train in fp32 here")
        self.generator = generator
        self.model = generator.model
        self.cfg = cfg
        self.precision = "fp32"  # as meta.json records it
        self.strategy = strategy()
        self.replicas = self.strategy.num_replicas_in_sync if self.strategy else 1
        if cfg.batch_size % self.replicas:
            raise ConfigError(f"the batch of {cfg.batch_size} does not split evenly over "
                              f"{self.replicas} devices; choose a multiple of {self.replicas}")
        with _scope():
            self._compile(cfg)
        if self.replicas > 1:
            _distinct_replica_streams(self.model)
            _scale_losses_for_replicas(self.model, self.replicas)
            for optimizer in self.optimizers.values():
                _combine_across_replicas(optimizer, self.replicas)
        self._lr = cfg.lr
        self._stepped = False
        if world().enabled:
            for optimizer in self.optimizers.values():
                _average_before_apply(optimizer)
            _distinct_rank_streams(self.model, world().rank)

    def _compile(self, cfg: TrainConfig) -> None:
        """Compile the model with its optimizers (under the strategy's scope)."""
        configure = getattr(self.model, "configure_optimizers", None)
        if configure is not None:  # the model's compile builds each on its own variables
            self.optimizers = dict(configure(lambda: make_optimizer(cfg)))
        else:
            self.optimizers = {"optimizer": make_optimizer(cfg)}
        if cfg.weight_decay:  # decay matrices only, as the torch trainer does
            vectors = [v for v in self.model.trainable_variables if len(v.shape) < 2]
            for opt in self.optimizers.values():
                opt.exclude_from_weight_decay(var_list=vectors)
        self.model.compile(**self.optimizers, jit_compile=_jit(cfg))
        if configure is None:
            self.optimizers["optimizer"].build(self.model.trainable_variables)

    def train_step(self, batch: np.ndarray) -> Mapping[str, Any]:
        if self.replicas == 1:
            if not self._stepped:  # the first step builds what the model still lacks
                self._stepped = True
                return self.model.train_on_batch(batch, return_dict=True)
            # train_on_batch's work without its host sync: the metrics stay tensors on the
            # device until a log line converts them (to_floats), as in the torch trainer.
            # Keras's train function takes an iterator of batches on TensorFlow, a list on
            # torch (as train_on_batch passes them).
            self.model.reset_metrics()
            data = [(batch, None, None)]
            return self.model.train_function(data if keras.backend.backend() == "torch"
                                             else iter(data))
        import tensorflow as tf

        # Each replica gets its slice of the global batch (train_on_batch would hand every
        # replica the whole batch).
        shards = np.split(np.asarray(batch), self.replicas)
        per_replica = self.strategy.experimental_distribute_values_from_function(
            lambda ctx: tf.constant(shards[ctx.replica_id_in_sync_group]))
        self.model.make_train_function()
        self.model.reset_metrics()
        logs = self.model.train_function(iter([(per_replica, None, None)]))
        return {k: float(v) for k, v in logs.items()}

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
        raise ConfigError(KERAS_MULTIPROCESS)
    apply = optimizer.apply

    def averaged(grads: Any, trainable_variables: Any = None) -> Any:
        return apply(all_average(list(grads)), trainable_variables)

    optimizer.apply = averaged


def _offset_seed_streams(model: keras.Model, marker: str, offset: Any) -> None:
    """Wrap every seed generator of ``model`` so each draw's seed is shifted by
    ``offset(seed)`` (a tensor like the seed, or ``None`` for no shift).

    Copies of one model (MirroredStrategy's replicas, torchrun's ranks) are built from
    the same seed, so they would all draw the same noise (a GAN's copies would all make
    the same fakes). Copy 0 keeps the single-device stream, and the generators' state,
    which is what checkpoints save, advances exactly as before. ``marker`` makes a second
    call (a second trainer, a shared generator) do nothing.
    """
    for layer in model._flatten_layers(include_self=True):  # Keras keeps no public list
        for generator in getattr(layer, "_seed_generators", []):
            if getattr(generator, marker, False):
                continue
            setattr(generator, marker, True)

            def next_seed(ordered: bool = True, plain: Any = generator.next) -> Any:
                seed = plain(ordered)
                shift = offset(seed)
                return seed if shift is None else seed + shift

            generator.next = next_seed


def _distinct_rank_streams(model: keras.Model, rank: int) -> None:
    """Each torchrun rank its own random numbers (Keras on torch under DDP)."""
    if rank:
        _offset_seed_streams(model, "_genzoo_per_rank", lambda seed: keras.ops.convert_to_tensor(
            [rank * _REPLICA_SEED_STRIDE, 0], dtype=seed.dtype))


def _distinct_replica_streams(model: keras.Model) -> None:
    """Each MirroredStrategy replica its own random numbers."""
    import tensorflow as tf

    def offset(seed: Any) -> Any:
        context = tf.distribute.get_replica_context()
        if context is None or context.num_replicas_in_sync == 1:
            return None
        replica = tf.cast(context.replica_id_in_sync_group, seed.dtype)
        return tf.stack([replica * _REPLICA_SEED_STRIDE, 0 * replica])

    _offset_seed_streams(model, "_genzoo_per_replica", offset)


_REPLICA_SEED_STRIDE = 1_000_003  # a prime: replica r's seeds sit far from replica 0's


def _scale_losses_for_replicas(model: keras.Model, replicas: int) -> None:
    """Keras sums the replicas' gradients and expects each replica's loss divided by the
    number of replicas (its built-in losses do this); genzoo's models return the mean
    over their own slice, so the trainer divides it here."""
    compute_loss = model.compute_loss

    def scaled(*args: Any, **kwargs: Any) -> Any:
        return compute_loss(*args, **kwargs) / replicas

    model.compute_loss = scaled


def _combine_across_replicas(optimizer: keras.optimizers.Optimizer, replicas: int) -> None:
    """Make Keras's replica gradients match one device's gradient of the global batch.

    - Sparse gradients (an embedding lookup's ``IndexedSlices``) become dense before
      Keras sums them over replicas; summed sparse, they updated the position
      embeddings wrongly.
    - With clipping, Keras would clip each replica's gradient before the sum. Here the
      replicas sum their gradients first, clip the sum, and hand ``1 / replicas`` of it
      to Keras's own all-reduce, which sums the identical shares back into the clipped
      gradient.
    """
    import tensorflow as tf

    clip = optimizer._clip_gradients
    clipping = bool(optimizer.global_clipnorm or optimizer.clipnorm or optimizer.clipvalue)

    def combine(grads: list[Any]) -> list[Any]:
        context = tf.distribute.get_replica_context()
        if context is None:  # cross-replica: nothing to combine
            return clip(grads)
        grads = [tf.convert_to_tensor(g) if isinstance(g, tf.IndexedSlices) else g
                 for g in grads]
        if not clipping:
            return grads
        present = [g for g in grads if g is not None]
        summed = iter(context.all_reduce(tf.distribute.ReduceOp.SUM, present))
        total = [next(summed) if g is not None else None for g in grads]
        return [g / replicas if g is not None else None for g in clip(total)]

    optimizer._clip_gradients = combine


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
