"""Data-parallel training on torch.distributed, for every torch model and for Keras
models on Keras's torch backend.

Launch with ``torchrun --nproc_per_node N -m genzoo train ...`` or
``genzoo train ... --nproc N``. Each process trains on its slice of every global batch
under ``DistributedDataParallel`` (gloo on CPU, NCCL on GPUs; the torch trainer wraps
the networks), so the gradients are averaged across processes before clipping and the
optimizer step, and every rank holds identical weights after every step. What DDP does
not cover (Keras models on the torch backend) is averaged with ``all_average()``. All ranks start
from the same seed and keep identical random streams; models that draw their noise for
the global batch (``global_draw()``) train exactly as one process would.
Rank 0 alone writes logs, checkpoints and samples.
"""

from __future__ import annotations

import atexit
import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from genzoo.config import seconds_from_env
from genzoo.errors import ConfigError


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


_WORLD = World()


def world() -> World:
    """This process's place in the job (a single process when not launched by torchrun)."""
    return _WORLD


def timeout_s() -> float:
    """How long a collective may wait for a dead or stuck rank before the job fails."""
    return seconds_from_env("GENZOO_DIST_TIMEOUT", 60)


def init_from_env() -> World:
    """Join the process group described by torchrun's environment variables, if any."""
    global _WORLD
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1 or _WORLD.enabled:
        return _WORLD
    import torch
    import torch.distributed as dist

    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    backend = os.environ.get("GENZOO_DIST_BACKEND") or (
        "nccl" if torch.cuda.is_available() else "gloo")
    if backend not in ("nccl", "gloo"):
        raise ConfigError(f"GENZOO_DIST_BACKEND must be nccl or gloo, not {backend!r}")
    if backend == "nccl":
        if not torch.cuda.is_available():
            raise ConfigError("GENZOO_DIST_BACKEND=nccl needs CUDA GPUs; this machine has "
                              "none (use gloo)")
        torch.cuda.set_device(local_rank)
    dist.init_process_group(backend, timeout=timedelta(seconds=timeout_s()))
    _WORLD = World(dist.get_rank(), dist.get_world_size(), local_rank)
    # A script that never calls shutdown() must still leave the group while Python is
    # whole: gloo's threads abort the process if the group outlives the interpreter.
    atexit.register(shutdown, wait=False)
    return _WORLD


def shutdown(*, wait: bool = True) -> None:
    """Leave the process group; with ``wait``, once every rank has finished.

    The barrier keeps a rank from tearing down its connections while a peer is still
    inside the last collective: gloo aborts a process whose peer vanishes mid-operation
    ("terminate called without an active exception"). At exit there is no waiting: a
    peer may already be gone.
    """
    global _WORLD
    if _WORLD.enabled:
        import torch.distributed as dist

        if dist.is_initialized():
            if wait:
                dist.barrier()
            dist.destroy_process_group()
        _WORLD = World()


def check_split(global_batch: int, size: int) -> None:
    """Refuse a global batch that ``size`` processes cannot share evenly."""
    if global_batch % size:
        raise ConfigError(f"the batch of {global_batch} does not split evenly over {size} "
                          f"processes; choose a multiple of {size}")


def local_batch(global_batch: int) -> int:
    """Each rank's share of a global batch, which must divide evenly."""
    w = world()
    check_split(global_batch, w.size)
    return global_batch // w.size


class Sharded:
    """A rank's slice of every global batch of a batch stream."""

    def __init__(self, batches: Any):
        self.batches = batches
        self.steps_per_epoch = batches.steps_per_epoch
        self.per_rank = local_batch(batches.batch_size)

    def __call__(self, step: int) -> Any:
        w = world()
        part = slice(w.rank * self.per_rank, (w.rank + 1) * self.per_rank)
        batch = self.batches(step)
        if isinstance(batch, tuple):  # (images, labels): the same rows of each
            return tuple(a[part] for a in batch)
        return batch[part]


def all_average(tensors: list[Any]) -> list[Any]:
    """The mean of each tensor over ranks: one flat all-reduce for all of them."""
    if not world().enabled or not tensors:
        return tensors
    import torch
    import torch.distributed as dist

    flat = torch.cat([t.reshape(-1) for t in tensors])
    dist.all_reduce(flat)
    flat /= world().size
    out, offset = [], 0
    for t in tensors:
        out.append(flat[offset:offset + t.numel()].view_as(t))
        offset += t.numel()
    return out


def _collective_device() -> Any:
    import torch
    import torch.distributed as dist

    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def any_rank(flag: bool) -> bool:
    """Whether ``flag`` is true on any rank (every rank must call this at the same step)."""
    if not world().enabled:
        return flag
    import torch

    box = torch.tensor([1.0 if flag else 0.0], device=_collective_device())
    return bool(all_average([box])[0].item() > 0)


def average_values(values: dict[str, Any]) -> dict[str, Any]:
    """Scalar metrics (tensors or numbers) averaged over ranks, as 0-d tensors: the logged
    figures of a job are its global batch's, as one process would log them."""
    if not world().enabled or not values:
        return values
    import torch

    device = _collective_device()
    tensors = [torch.as_tensor(v, dtype=torch.float64, device=device).detach().reshape(())
               for v in values.values()]
    return dict(zip(values, all_average(tensors)))


def average_gradients(params: list[Any]) -> None:
    """Average the gradients of ``params`` over ranks, in place, before clipping."""
    if not world().enabled:
        return
    import torch

    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    for p, g in zip(params, all_average(grads)):
        p.grad = g


def broadcast_object(obj: Any) -> Any:
    """Rank 0's value of ``obj`` on every rank."""
    if not world().enabled:
        return obj
    import torch.distributed as dist

    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier() -> None:
    if world().enabled:
        import torch.distributed as dist

        dist.barrier()


def global_draw(draw: Any, local_shape: tuple[int, ...]) -> Any:
    """Draw noise for the global batch and return this rank's slice.

    ``draw(shape)`` is called with the global shape (the first dimension times the world
    size). Every rank draws the same numbers (their random streams are identical), so a
    model whose noise comes from here trains the same on N processes as on one.
    """
    w = world()
    if not w.enabled:
        return draw(local_shape)
    n = local_shape[0]
    full = draw((n * w.size, *local_shape[1:]))
    return full[w.rank * n:(w.rank + 1) * n]
