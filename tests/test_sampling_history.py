"""A seed's samples do not depend on what was drawn before in the process.

``tf.function(reduce_retracing=True)`` traces a second input shape into a graph with
unknown dimensions and runs every later shape through it; such a graph may round
differently (about 1e-6), so a seed's Keras samples would depend on the batch sizes or
prompt lengths drawn earlier. ``genzoo.backends.keras.graph_function`` runs each call
through a graph traced for exactly its shapes; these tests draw other sizes first and
compare bitwise with a fresh model's first draw.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

import genzoo
from genzoo.testing import ConformanceError, Context, check_round_trip, check_samples


def _static_batch(x):  # the batch size the graph was traced for; -1 when unknown
    from keras import ops

    return ops.convert_to_tensor(-1 if x.shape[0] is None else x.shape[0], "int32")


def test_graph_function_runs_each_shape_through_a_graph_of_its_own() -> None:
    import keras
    from keras import ops

    from genzoo.backends.keras import graph_function

    if keras.backend.backend() != "tensorflow":
        pytest.skip("graph_function traces on Keras's TensorFlow backend only")
    seen = graph_function(_static_batch)
    shapes = [(4, 2), (7, 2), (4, 2), (1, 2), (7, 2)]
    got = [int(ops.convert_to_numpy(seen(np.ones(s, "float32")))) for s in shapes]
    assert got == [4, 7, 4, 1, 7]  # reduce_retracing gave [4, -1, 4, -1, -1]
    assert len(seen.graphs) == 3


def _images_after(name: str, draws: list[tuple[int, int]]) -> list[np.ndarray]:
    model = genzoo.create(name, backend="keras", preset="tiny")
    return [model.sample(n, seed=seed) for n, seed in draws]


@pytest.mark.parametrize("name", ["vae", "gan"])
def test_keras_image_samples_do_not_depend_on_earlier_batch_sizes(name: str) -> None:
    fresh_4 = _images_after(name, [(4, 0)])[0]
    fresh_7 = _images_after(name, [(7, 1)])[0]
    mixed = _images_after(name, [(4, 0), (7, 1), (1, 2), (33, 3), (4, 0)])
    assert np.array_equal(mixed[0], fresh_4) and np.array_equal(mixed[4], fresh_4)
    assert np.array_equal(mixed[1], fresh_7)  # drawn second: once a relaxed graph's turn
    model = genzoo.create(name, backend="keras", preset="tiny")
    strip = model.interpolate(0, 1, 5)
    model.interpolate(0, 1, 9)
    model.sample(3, seed=5)
    assert np.array_equal(model.interpolate(0, 1, 5), strip)


def _text_after(prompts: list[str], cache: bool = True) -> list[str]:
    model = genzoo.create("transformer", backend="keras", preset="tiny",
                          data="tiny-shakespeare")
    return [model.generate(p, max_new_tokens=24, temperature=1.0, top_k=None, seed=3,
                           cache=cache) for p in prompts]


def test_keras_text_does_not_depend_on_earlier_prompt_lengths() -> None:
    short, long = "First", "ROMEO:\nBut soft, what light through yonder window"
    fresh_short, fresh_long = _text_after([short])[0], _text_after([long])[0]
    mixed = _text_after([short, long, "a", short])
    assert mixed == [fresh_short, fresh_long, mixed[2], fresh_short]
    assert _text_after([long, short], cache=False) == [fresh_long, fresh_short]


def test_keras_text_logits_do_not_depend_on_earlier_lengths() -> None:
    """The GPT's traced steps, bitwise, for every prompt length in either order."""
    def logits(order: list[int]) -> dict[int, np.ndarray]:
        model = genzoo.create("transformer", backend="keras", preset="tiny",
                              data="tiny-shakespeare")
        ids = list(np.random.default_rng(0).integers(0, model.info.vocab_size, 16))
        out = {}
        for k in order:
            prefix = [int(i) for i in ids[:k]]
            full, cache = model._prefill(prefix)
            step, _ = model._extend(int(ids[k]), cache, k)
            out[k] = np.concatenate([full, step])
        return out

    forward, backward = logits([1, 5, 9, 14]), logits([14, 9, 5, 1])
    assert all(np.array_equal(forward[k], backward[k]) for k in forward)


class _Remembers:
    """A stand-in generator whose samples shift by 1e-6 once it has drawn another batch
    size: what a relaxed retrace does to a seed's samples."""

    info = SimpleNamespace(kind="image", shape=(2, 2, 1))

    def __init__(self) -> None:
        self.sizes: set[int] = set()

    def state(self) -> dict[str, np.ndarray]:
        return {"w": np.zeros(1)}

    def sample(self, n: int, *, seed: int | None = None) -> np.ndarray:
        self.sizes.add(n)
        shift = 1e-6 if len(self.sizes) > 1 else 0.0
        rng = np.random.default_rng(seed)
        return np.clip(rng.random((n, 2, 2, 1)) * 0.5 + shift, 0, 1).astype(np.float32)


def test_the_kit_catches_samples_that_depend_on_earlier_draws(monkeypatch, tmp_path) -> None:
    monkeypatch.setattr(genzoo, "load", lambda path: _Remembers())
    ctx = Context("toy", "keras", Path(tmp_path),
                  run=SimpleNamespace(path=tmp_path, generator=_Remembers()))
    with pytest.raises(ConformanceError, match="round trip: a seed's samples depend on what "
                                               "was drawn before"):
        check_round_trip(ctx)
    with pytest.raises(ConformanceError, match="samples: the same seed gave different"):
        check_samples(ctx)
