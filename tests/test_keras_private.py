"""genzoo's uses of Keras's private API (genzoo.backends.keras.private), each pinned to
the Keras release it was checked on: another release fails here first, by name."""

from __future__ import annotations

import keras
import pytest

from genzoo.backends.keras import private


def test_keras_is_the_release_the_private_uses_were_checked_on() -> None:
    release = ".".join(keras.version().split(".")[:2])
    assert release == private.CHECKED_ON, (
        f"Keras {keras.version()} is installed; genzoo.backends.keras.private was checked on "
        f"Keras {private.CHECKED_ON}: re-check each use listed in its docstring (the tests "
        "below and the MirroredStrategy and resume tests), then update CHECKED_ON")


@pytest.mark.parametrize(("owner", "name"), [
    (keras.layers.Layer, "_flatten_layers"),  # every layer: seed generators per replica
    (keras.optimizers.Optimizer, "_clip_gradients"),  # clipping after the replicas' sum
    (keras.Model, "make_train_function"),  # a step without train_on_batch's host sync
])
def test_each_private_method_genzoo_uses_is_there(owner, name) -> None:
    assert callable(getattr(owner, name, None)), f"{owner.__name__}.{name} is gone"


def test_seed_generators_and_the_train_function_are_where_genzoo_reads_them() -> None:
    layer = keras.layers.Dropout(0.5, seed=1)
    assert [type(g).__name__ for g in layer._seed_generators] == ["SeedGenerator"]
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer="adam", loss="mse")
    model.train_on_batch(keras.ops.ones((2, 2)), keras.ops.ones((2, 1)))
    assert callable(model.train_function)
