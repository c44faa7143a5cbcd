"""The Keras Trainer: one step, evaluation and checkpoint state, through Keras's own
``compile`` and ``train_on_batch``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import keras
import numpy as np

from genzoo.backends.common import check_state_matches
from genzoo.backends.keras.devices import scope, strategy
from genzoo.backends.keras.generator import KerasGenerator
from genzoo.backends.keras.private import (average_before_apply, combine_across_replicas,
                                           distinct_rank_streams, distinct_replica_streams,
                                           scale_losses_for_replicas, train_on_replicas,
                                           train_without_sync)
from genzoo.conditioning import split_batch
from genzoo.config import TrainConfig
from genzoo.distributed import world
from genzoo.errors import ConfigError


def make_optimizer(cfg: TrainConfig, lr_scale: float = 1.0) -> keras.optimizers.Optimizer:
    """Adam or AdamW matching the torch trainer's settings; with ``accumulate``, Keras's
    own accumulation (one update of the mean gradient every ``accumulate`` calls).
    ``lr_scale`` multiplies the run's learning rate (and its schedule) for this one."""
    kwargs: dict[str, Any] = {"learning_rate": cfg.lr * lr_scale, "beta_1": cfg.beta1,
                              "beta_2": cfg.beta2, "epsilon": 1e-8}
    if cfg.accumulate > 1:
        kwargs["gradient_accumulation_steps"] = cfg.accumulate
    if cfg.grad_clip > 0:
        kwargs["global_clipnorm"] = cfg.grad_clip
    if cfg.optimizer == "adamw":
        opt = keras.optimizers.AdamW(weight_decay=cfg.weight_decay, **kwargs)
    else:
        opt = keras.optimizers.Adam(**kwargs)  # planning refuses weight decay with adam
    opt.genzoo_lr_scale = lr_scale
    return opt


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
        with scope():
            self._compile(cfg)
        if self.replicas > 1:
            distinct_replica_streams(self.model)
            scale_losses_for_replicas(self.model, self.replicas)
            for optimizer in self.optimizers.values():
                combine_across_replicas(optimizer, self.replicas)
        self._lr = cfg.lr
        self._stepped = False
        if world().enabled:
            for optimizer in self.optimizers.values():
                average_before_apply(optimizer)
            distinct_rank_streams(self.model, world().rank)

    def _compile(self, cfg: TrainConfig) -> None:
        """Compile the model with its optimizers (under the strategy's scope)."""
        configure = getattr(self.model, "configure_optimizers", None)
        if configure is not None and cfg.accumulate > 1:
            raise ConfigError(f"accumulate={cfg.accumulate} needs a model trained through its "
                              f"loss; '{self.generator.spec.name}' has its own train_step")
        if configure is not None:  # the model's compile builds each on its own variables
            self.optimizers = dict(configure(lambda lr_scale=1.0: make_optimizer(cfg, lr_scale)))
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
        k = self.cfg.accumulate
        if k == 1:
            return self._call(batch)
        totals: dict[str, Any] = {}
        for chunk in split_batch(batch, k):  # the optimizer steps on the last
            for name, value in self._call(chunk).items():
                totals[name] = totals[name] + value / k if name in totals else value / k
        return totals

    def _call(self, batch: np.ndarray) -> Mapping[str, Any]:
        if self.replicas == 1:
            if not self._stepped:  # the first step builds what the model still lacks
                self._stepped = True
                return self.model.train_on_batch(batch, return_dict=True)
            # train_on_batch's work without its host sync: the metrics stay tensors on the
            # device until a log line converts them (to_floats), as in the torch trainer.
            # Keras's train function takes an iterator of batches on TensorFlow, a list on
            # torch (as train_on_batch passes them).
            return train_without_sync(self.model, batch)
        return train_on_replicas(self.model, self.strategy, batch, self.replicas)

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
                opt.learning_rate = lr * getattr(opt, "genzoo_lr_scale", 1.0)
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
