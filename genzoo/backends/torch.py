"""The PyTorch adapter: devices, seeding, numpy <-> tensors, and the torch Trainer.

A torch plugin supplies an ``nn.Module`` built as ``Module(config, data_info)`` with

- ``loss(x) -> (loss, {name: tensor})``: the model owns its loss; ``x`` is the batch
  as a tensor (images NHWC float32 in [0, 1], text int64 ids);
- ``sample(n, rng) -> tensor``: images NHWC in [0, 1];
- a conditional model (``genzoo.conditioning``) gets one more keyword argument,
  ``labels``, one-hot float32 rows ``(n, num_classes)``: ``loss(x, labels=...)``,
  ``sample(n, rng, labels=...)``, ``render(z, labels=...)``, ``evaluate(x, labels=...)``
  and ``train_step(x, trainer, labels=...)``;
- optionally ``prepare_eval(x: np.ndarray) -> np.ndarray``, ``configure_optimizers(
  make_optimizer) -> {name: optimizer}``, ``train_step(x, trainer) -> metrics`` and
  ``evaluate(x) -> metrics`` for models with several optimizers and no single loss
  (the GAN);
- optionally ``render(z) -> images`` and ``noise(n, rng) -> z`` for latent
  interpolation.

Under ``torchrun`` the trainer trains with ``torch.nn.parallel.DistributedDataParallel``:
the default step runs ``loss`` through a DDP wrapper, and a custom step routes each
network's forward pass through ``trainer.parallel(network)`` (the GAN does this for G
and D). Gradients of any parameter no wrapper covers are averaged by one flat all-reduce
before the optimizer step, so a custom step that never calls ``parallel`` still trains
correctly, only without DDP's overlap of communication with the backward pass.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, nullcontext
from typing import Any

import numpy as np
import torch

from genzoo.backends.common import (valid_interpolate_args, valid_sample_args, check_state_matches,
                                    describe, num_classes, random_seed, sample_conditions,
                                    slerp, strip_labels)
from genzoo.backends.text import TextSampling
from genzoo.config import TrainConfig
from genzoo.distributed import all_average, average_gradients, world
from genzoo.backends.torch_setup import _NO_BUFFER_SYNC, make_optimizer, resolve_device, versions
from genzoo.backends.torch_state import load_trainer_state, trainer_state
from genzoo.errors import ConfigError, PluginError
from genzoo.protocols import DataInfo
from genzoo.registry import ModelSpec, import_object


class TorchGenerator:
    """Wraps a plugin's ``nn.Module`` in the core's Generator protocol."""

    def __init__(self, spec: ModelSpec, config: Any, info: DataInfo,
                 module: torch.nn.Module, device: torch.device):
        self.spec = spec
        self.config = config
        self.info = info
        # A plugin's module: its sample/noise/render/loss methods are duck-typed.
        self.module: Any = module.to(device)
        self.device = device

    __repr__ = describe

    def to_tensor(self, batch: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(batch)).to(self.device, non_blocking=True)

    @property
    def num_classes(self) -> int:
        """The classes a conditional model draws; 0 for an unconditional one."""
        return num_classes(self)

    def _labels(self, rows: np.ndarray | None) -> dict[str, torch.Tensor]:
        return {} if rows is None else {"labels": self.to_tensor(rows)}

    @torch.no_grad()
    def sample(self, n: int, *, seed: int | None = None, labels: Any = None) -> np.ndarray:
        n, seed = valid_sample_args(n, seed)
        seed = random_seed() if seed is None else seed
        condition = self._labels(sample_conditions(self, n, seed, labels))
        rng = torch.Generator(device=self.device)
        rng.manual_seed(seed)
        was_training = self.module.training
        self.module.eval()
        try:
            out = self.module.sample(n, rng, **condition)
        finally:
            self.module.train(was_training)
        return out.float().cpu().numpy()

    @torch.no_grad()
    def interpolate(self, seed_a: int, seed_b: int, steps: int, *,
                    labels: Any = None) -> np.ndarray:
        """Images along the arc between the latents of two seeds (their first samples).

        A conditional model keeps one class (``labels=7``; by default the class the
        first seed draws) or moves from one to another (``labels=(3, 8)``: give the same
        seed twice to change only the class)."""
        seed_a, seed_b, steps = valid_interpolate_args(self.module, self.spec.name, seed_a, seed_b,
                                                  steps)
        condition = self._labels(strip_labels(self, seed_a, steps, labels))
        ends = []
        for seed in (seed_a, seed_b):
            rng = torch.Generator(device=self.device).manual_seed(seed)
            ends.append(self.module.noise(1, rng).cpu().numpy())
        z = self.to_tensor(slerp(ends[0], ends[1], steps))
        was_training = self.module.training
        self.module.eval()
        try:
            return self.module.render(z, **condition).float().cpu().numpy()
        finally:
            self.module.train(was_training)

    def state(self) -> dict[str, np.ndarray]:
        # copies: on the CPU .numpy() would share memory with the live weights
        return {k: v.detach().cpu().numpy().copy() for k, v in self.module.state_dict().items()}

    def load_state(self, tensors: Mapping[str, np.ndarray]) -> None:
        upgrade = getattr(self.module, "upgrade_state", None)  # names an older version saved
        if upgrade is not None:
            tensors = upgrade(tensors)
        expected = {k: tuple(v.shape) for k, v in self.module.state_dict().items()}
        check_state_matches(expected, tensors, f"{self.spec.name} ({self.spec.backend})")
        self.module.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in tensors.items()})

    def average_weights(self) -> Any:
        """A moving average of the weights (``genzoo.ema``), starting from them."""
        from genzoo.backends.torch_ema import TorchAverage

        return TorchAverage(self.module)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.module.parameters() if p.requires_grad)

    def prepare_eval(self, x: np.ndarray) -> np.ndarray:
        prepare = getattr(self.module, "prepare_eval", None)
        return prepare(x) if prepare is not None else x


class TorchTextGenerator(TextSampling, TorchGenerator):
    """A torch text model: adds ``generate`` and ``stream`` (the core's sampler)."""

    def _prefill(self, ids: Any) -> tuple[np.ndarray, Any]:
        with torch.no_grad():  # a plugin's prefill need not say so itself
            return self.module.prefill(ids)

    def _extend(self, token: int, cache: Any, position: int) -> tuple[np.ndarray, Any]:
        with torch.no_grad():
            return self.module.extend(token, cache, position)

    @contextmanager
    def _eval_mode(self) -> Iterator[None]:
        was_training = self.module.training
        self.module.eval()
        try:
            yield
        finally:
            self.module.train(was_training)


def build(spec: ModelSpec, config: Any, info: DataInfo, *, seed: int,
          device: str = "auto") -> TorchGenerator:
    """Build a plugin's module with seeded weights on the requested device."""
    torch.manual_seed(seed)
    module = import_object(spec.builder, f"builder of model '{spec.name}'")(config, info)
    cls = TorchTextGenerator if spec.kind == "text" else TorchGenerator
    return cls(spec, config, info, module, resolve_device(device))


class _Loss(torch.nn.Module):
    """A model's ``loss`` as a module's forward pass, so DDP can wrap it."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model: Any = model

    def forward(self, x: torch.Tensor, **labels: torch.Tensor) -> Any:
        return self.model.loss(x, **labels)


class TorchTrainer:
    """Optimises a ``TorchGenerator``; one class serves every torch model."""

    def __init__(self, generator: TorchGenerator, cfg: TrainConfig):
        self.generator = generator
        self.module = generator.module
        self.cfg = cfg
        configure = getattr(self.module, "configure_optimizers", None)
        if configure is not None:
            self.optimizers = dict(configure(
                lambda params, lr_scale=1.0: make_optimizer(params, cfg, lr_scale)))
        else:
            self.optimizers = {"opt": make_optimizer(self.module.parameters(), cfg)}
        self._custom_step: Callable[..., Mapping[str, Any]] | None = getattr(
            self.module, "train_step", None)
        self._wrapped: dict[int, torch.nn.Module] = {}  # id(network) -> its DDP wrapper
        self._synced: set[int] = set()  # ids of the parameters DDP averages
        self._float_buffers: list[torch.Tensor] | None = None  # averaged across ranks
        loss = getattr(self.module, "loss", None)  # models with a custom step may have none
        if loss is None and self._custom_step is None:
            raise PluginError(f"model '{generator.spec.name}' (torch): its module has neither "
                              "loss(x) nor train_step(x, trainer), so it cannot be trained")
        if loss is not None and self._custom_step is None and world().enabled:
            loss = self.parallel(_Loss(self.module))
        self._loss: Callable[..., Any] | None = (torch.compile(loss) if cfg.compile and loss is not None
                                                   else loss)
        if cfg.accumulate > 1 and self._custom_step is not None:
            raise ConfigError(f"accumulate={cfg.accumulate} needs a model trained through its "
                              f"loss; '{generator.spec.name}' has its own train_step")
        if cfg.compile and self._custom_step is not None:
            warnings.warn(f"compile=True compiles a model's loss; '{generator.spec.name}' trains "
                          "through its own train_step, which runs eagerly", UserWarning,
                          stacklevel=2)

    def parallel(self, network: torch.nn.Module) -> torch.nn.Module:
        """``network`` wrapped in DistributedDataParallel under torchrun; itself otherwise.

        A custom ``train_step`` calls each network it trains through this wrapper, so
        DDP averages its gradients during the backward pass. The wrapper is made once.
        """
        if not world().enabled:
            return network
        if id(network) not in self._wrapped:
            from torch.nn.parallel import DistributedDataParallel

            device = self.generator.device
            if device.type == "cuda":
                # Batch norm over the global batch, as one process would compute it
                # (converted in place: the optimizer keeps the same parameters). On the
                # CPU, where SyncBatchNorm cannot run, train_step averages the buffers.
                torch.nn.SyncBatchNorm.convert_sync_batchnorm(network)
            self._wrapped[id(network)] = DistributedDataParallel(
                network, device_ids=[device] if device.type == "cuda" else None,
                find_unused_parameters=self.cfg.find_unused_parameters, **_NO_BUFFER_SYNC)
            self._synced.update(id(p) for p in network.parameters())
        return self._wrapped[id(network)]

    @functools.cached_property
    def precision(self) -> str:
        """``bf16`` or ``fp32``: the config's ``precision`` resolved on this device (``auto``
        is bf16 on a CUDA GPU that supports it, as meta.json records)."""
        device = self.generator.device
        if self.cfg.precision == "auto":
            if device.type != "cuda":
                return "fp32"
            # Native bf16 only (Ampere, compute capability 8, and later; ROCm GPUs): older
            # GPUs emulate it, slowly. Asked of this trainer's GPU, not the current one.
            native = bool(torch.version.hip) or torch.cuda.get_device_capability(device)[0] >= 8
            return "bf16" if native else "fp32"
        return self.cfg.precision

    def autocast(self) -> Any:
        """bf16 autocast for the forward pass when ``precision`` resolves to bf16."""
        if self.precision != "bf16":
            return nullcontext()
        return torch.autocast(self.generator.device.type, dtype=torch.bfloat16)

    def backward(self, loss: torch.Tensor, optimizer: torch.optim.Optimizer) -> None:
        """Zero, backpropagate, average over ranks, clip and step one optimizer.

        Custom steps (the GAN's two updates) call this too, so data-parallel training
        works for every model.
        """
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self._step(optimizer)

    def _step(self, optimizer: torch.optim.Optimizer) -> None:
        """Average the gradients over ranks, clip, step."""
        params = [p for group in optimizer.param_groups for p in group["params"]]
        # DDP averaged its parameters' gradients during backward; average the rest (a
        # no-op in a single process).
        average_gradients([p for p in params if id(p) not in self._synced])
        if self.cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(params, self.cfg.grad_clip)
        optimizer.step()

    def _inputs(self, batch: Any) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The batch as tensors: images or ids, and a conditional model's ``labels``."""
        if isinstance(batch, tuple):
            x, labels = batch
            return self.generator.to_tensor(x), {"labels": self.generator.to_tensor(labels)}
        return self.generator.to_tensor(batch), {}

    def train_step(self, batch: Any) -> Mapping[str, Any]:
        x, labels = self._inputs(batch)
        self.module.train()
        if self._custom_step is not None:
            with self.autocast():
                metrics = self._custom_step(x, self, **labels)
        elif self.cfg.accumulate > 1:
            metrics = self._accumulated_step(x, labels)
        else:
            assert self._loss is not None  # checked in __init__
            with self.autocast():
                loss, parts = self._loss(x, **labels)
            self.backward(loss, self.optimizers["opt"])
            metrics = {"loss": loss, **parts}
        if world().enabled:
            self._average_buffers()
        return {k: v.detach() for k, v in metrics.items()}

    def _accumulated_step(self, x: torch.Tensor,
                          labels: dict[str, torch.Tensor]) -> dict[str, Any]:
        """``accumulate`` micro-batches, one update: each loss (a mean over its
        micro-batch) is backpropagated divided by their number, so the summed gradient is
        the whole batch's; DDP averages over ranks only on the last one."""
        assert self._loss is not None
        k, opt = self.cfg.accumulate, self.optimizers["opt"]
        opt.zero_grad(set_to_none=True)
        totals: dict[str, torch.Tensor] = {}
        label_chunks = labels["labels"].chunk(k) if labels else [None] * k
        for i, (chunk, y) in enumerate(zip(x.chunk(k), label_chunks)):
            last = i == k - 1
            sync = getattr(self._loss, "no_sync", None) if not last else None
            with sync() if sync is not None else nullcontext(), self.autocast():
                loss, parts = self._loss(chunk, **({} if y is None else {"labels": y}))
                (loss / k).backward()
            for name, value in {"loss": loss, **parts}.items():
                value = value.detach() / k
                totals[name] = totals[name] + value if name in totals else value
        self._step(opt)
        return totals

    def _average_buffers(self) -> None:
        """Running statistics (batch norm's) averaged over ranks after each step, so every
        rank holds the same state; for equal shards the running mean is exactly the
        global batch's."""
        if self._float_buffers is None:  # the same tensors for the whole run
            self._float_buffers = [b for b in self.module.buffers() if b.is_floating_point()]
        for b, mean in zip(self._float_buffers, all_average(self._float_buffers)):
            b.copy_(mean)

    @torch.no_grad()
    def eval_step(self, batch: Any) -> Mapping[str, Any]:
        x, labels = self._inputs(batch)
        cuda = [self.generator.device] if self.generator.device.type == "cuda" else []
        # Evaluation draws from a forked RNG, so how often a run evaluates never changes
        # what it trains to (and a resumed run matches an uninterrupted one).
        with torch.random.fork_rng(devices=cuda):
            return self._eval(x, labels)

    def _eval(self, x: torch.Tensor, labels: dict[str, torch.Tensor]) -> Mapping[str, Any]:
        self.module.eval()
        try:
            custom = getattr(self.module, "evaluate", None)
            if custom is not None:  # models without a single loss (the GAN)
                return custom(x, **labels)
            loss, metrics = self.module.loss(x, **labels)
        finally:
            self.module.train()
        return {"loss": loss, **metrics}

    def to_floats(self, metrics: Mapping[str, Any]) -> dict[str, float]:
        names = list(metrics)
        values = torch.stack([torch.as_tensor(metrics[k], dtype=torch.float32).reshape(())
                              .to("cpu") for k in names]).tolist()  # one sync
        return dict(zip(names, values))

    def set_lr(self, lr: float) -> None:
        for opt in self.optimizers.values():
            for group in opt.param_groups:
                group["lr"] = lr * group.get("lr_scale", 1.0)

    # -- checkpoint state ------------------------------------------------------------------
    def state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        return trainer_state(self.optimizers, self.generator.device)

    def load_state(self, tensors: Mapping[str, np.ndarray], values: Mapping[str, Any]) -> None:
        load_trainer_state(self.optimizers, self.generator.device, tensors, values)


def make_trainer(generator: TorchGenerator, cfg: TrainConfig) -> TorchTrainer:
    return TorchTrainer(generator, cfg)


__all__ = ["TorchGenerator", "TorchTrainer", "build", "make_optimizer", "make_trainer",
           "resolve_device", "versions"]
