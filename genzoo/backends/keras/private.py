"""Every use of Keras's private or undocumented API in genzoo, in one place.

Each was checked on the Keras version in ``CHECKED_ON``; a test fails when another
version is installed, so that each use is re-checked before genzoo relies on it:

- ``Layer._flatten_layers`` and ``Layer._seed_generators``: every seed generator of a
  model (Keras keeps no public list), to give replicas and ranks their own streams;
- ``Optimizer._clip_gradients``: where Keras clips each replica's gradients;
- ``Model.train_function`` and ``Model.make_train_function``: a training step without
  ``train_on_batch``'s host sync, and one that takes per-replica batches;
- replacing ``Optimizer.apply`` and ``Model.compute_loss`` on an instance."""

from __future__ import annotations

from typing import Any

import keras

from genzoo.backends import KERAS_MULTIPROCESS
from genzoo.distributed import all_average
from genzoo.errors import ConfigError

CHECKED_ON = "3.15"  # the Keras release (major.minor) these uses were checked on


def average_before_apply(optimizer: keras.optimizers.Optimizer) -> None:
    """Data-parallel Keras on its torch backend: average gradients over ranks first."""
    if keras.backend.backend() != "torch":
        raise ConfigError(KERAS_MULTIPROCESS)
    apply = optimizer.apply

    def averaged(grads: Any, trainable_variables: Any = None) -> Any:
        return apply(all_average(list(grads)), trainable_variables)

    optimizer.apply = averaged


def offset_seed_streams(model: keras.Model, marker: str, offset: Any) -> None:
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


def distinct_rank_streams(model: keras.Model, rank: int) -> None:
    """Each torchrun rank its own random numbers (Keras on torch under DDP)."""
    if rank:
        offset_seed_streams(model, "_genzoo_per_rank", lambda seed: keras.ops.convert_to_tensor(
            [rank * _REPLICA_SEED_STRIDE, 0], dtype=seed.dtype))


def distinct_replica_streams(model: keras.Model) -> None:
    """Each MirroredStrategy replica its own random numbers."""
    import tensorflow as tf

    def offset(seed: Any) -> Any:
        context = tf.distribute.get_replica_context()
        if context is None or context.num_replicas_in_sync == 1:
            return None
        replica = tf.cast(context.replica_id_in_sync_group, seed.dtype)
        return tf.stack([replica * _REPLICA_SEED_STRIDE, 0 * replica])

    offset_seed_streams(model, "_genzoo_per_replica", offset)


_REPLICA_SEED_STRIDE = 1_000_003  # a prime: replica r's seeds sit far from replica 0's


def scale_losses_for_replicas(model: keras.Model, replicas: int) -> None:
    """Keras sums the replicas' gradients and expects each replica's loss divided by the
    number of replicas (its built-in losses do this); genzoo's models return the mean
    over their own slice, so the trainer divides it here."""
    compute_loss = model.compute_loss

    def scaled(*args: Any, **kwargs: Any) -> Any:
        return compute_loss(*args, **kwargs) / replicas

    model.compute_loss = scaled


def combine_across_replicas(optimizer: keras.optimizers.Optimizer, replicas: int) -> None:
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


def train_without_sync(model: keras.Model, batch: Any) -> Any:
    """``train_on_batch``'s work without its host sync: the metrics stay tensors on the
    device until a log line converts them, as in the torch trainer. Keras's train
    function takes an iterator of batches on TensorFlow, a list on torch (as
    ``train_on_batch`` passes them). Needs a first ``train_on_batch`` to have built it."""
    model.reset_metrics()
    data = [(batch, None, None)]
    return model.train_function(data if keras.backend.backend() == "torch" else iter(data))


def train_on_replicas(model: keras.Model, strategy: Any, batch: Any,
                      replicas: int) -> dict[str, float]:
    """One step of a MirroredStrategy: each replica gets its slice of the global batch
    (``train_on_batch`` would hand every replica the whole batch)."""
    import tensorflow as tf

    from genzoo.conditioning import split_batch

    shards = split_batch(batch, replicas)  # an array's, or an (images, labels) pair's
    per_replica = strategy.experimental_distribute_values_from_function(
        lambda ctx: tf.nest.map_structure(tf.constant, shards[ctx.replica_id_in_sync_group]))
    model.make_train_function()
    model.reset_metrics()
    logs = model.train_function(iter([(per_replica, None, None)]))
    return {k: float(v) for k, v in logs.items()}
