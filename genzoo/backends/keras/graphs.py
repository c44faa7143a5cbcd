"""Keras steps on every Keras backend: gradients of a function, and inference steps traced
into graphs (one per exact input shape)."""

from __future__ import annotations

import functools
from typing import Any

import keras

from genzoo.errors import ConfigError


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

    def tracing_count() -> int:  # as tf.function's: traces over every shape's graph
        return sum(graph.experimental_get_tracing_count() for graph in graphs.values())

    call.graphs = graphs  # type: ignore[attr-defined]  # for tests: one per shape
    call.experimental_get_tracing_count = tracing_count  # type: ignore[attr-defined]
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
