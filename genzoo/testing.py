"""The conformance kit: checks that a (model, backend) honours genzoo's contract.

Use it from a plugin's tests:

```python
from genzoo.testing import check_model

def test_my_model(tmp_path):
    check_model("my-model", "torch", tmp_path)
```

Each check raises ``ConformanceError`` naming the check that failed. genzoo's own
models are tested with exactly this kit (``tests/test_conformance.py``).

The module is also a pytest plugin: with ``pytest_plugins = ["genzoo.testing"]`` in a
``conftest.py``, the ``genzoo_check`` fixture runs the kit:

```python
def test_my_model(genzoo_check):
    genzoo_check("my-model", "torch")
```
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np


class ConformanceError(AssertionError):
    """A model failed one conformance check."""


@dataclass
class Context:
    name: str
    backend: str
    tmp_path: Path
    data: str = ""
    run: Any = None

    @property
    def spec(self) -> Any:
        from genzoo.registry import get_registry

        return get_registry().model(self.name, self.backend)


def synthetic_images(path: Path, shape: tuple[int, int] = (8, 8), n_train: int = 256,
                     n_test: int = 64, seed: int = 0) -> Path:
    """Write a small IDX dataset of noisy bars to ``path`` and return it.

    Each image is one bright horizontal or vertical bar: easy to learn, so a few steps
    must lower any sensible loss.
    """
    from genzoo.checkpoint import atomic_write_bytes

    rng = np.random.default_rng(seed)
    path.mkdir(parents=True, exist_ok=True)
    h, w = shape
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images = np.zeros((n, h, w), dtype=np.uint8)
        labels = rng.integers(0, 2, n).astype(np.uint8)
        for i in range(n):
            pos = rng.integers(0, h if labels[i] == 0 else w)
            if labels[i] == 0:
                images[i, pos, :] = 255
            else:
                images[i, :, pos] = 255
        noise = rng.random(images.shape) < 0.03
        images[noise] = 255 - images[noise]
        header = bytes([0, 0, 8, 3]) + np.array([n, h, w], ">u4").tobytes()
        atomic_write_bytes(path / f"{prefix}-images-idx3-ubyte", header + images.tobytes())
        header = bytes([0, 0, 8, 1]) + np.array([n], ">u4").tobytes()
        atomic_write_bytes(path / f"{prefix}-labels-idx1-ubyte", header + labels.tobytes())
    return path


def synthetic_text(path: Path, seed: int = 0) -> Path:
    """Write a small, very regular UTF-8 corpus to ``path`` and return it."""
    from genzoo.checkpoint import atomic_write_bytes

    rng = np.random.default_rng(seed)
    words = ["abc", "abd", "xyz", "hello", "world", "genzoo"]
    text = "\n".join(" ".join(rng.choice(words, 6)) for _ in range(400)) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, text.encode("utf-8"))
    return path


def _synthetic_data(ctx: Context) -> str:
    if not ctx.data:
        if ctx.spec.kind == "text":
            ctx.data = str(synthetic_text(ctx.tmp_path / "data" / "corpus.txt"))
        else:
            ctx.data = str(synthetic_images(ctx.tmp_path / "data"))
    return ctx.data


def check_builds(ctx: Context) -> None:
    """The spec's default dataset holds what the model makes (``genzoo train NAME`` uses
    it); the ``tiny`` preset builds, and has trainable parameters."""
    import genzoo
    from genzoo.registry import default_dataset_problem, get_registry

    problem = default_dataset_problem(ctx.spec, get_registry().datasets)
    if problem:
        raise ConformanceError(f"builds: the spec {problem}")
    model = genzoo.create(ctx.name, ctx.backend, "tiny", data=_synthetic_data(ctx))
    if model.num_parameters() <= 0:
        raise ConformanceError("builds: the tiny model has no trainable parameters")


def check_learns(ctx: Context) -> None:
    """Training on synthetic data lowers the spec's ``monitor`` metric (``loss`` by
    default): the mean of the first five logged steps against the last five."""
    import genzoo

    ctx.run = genzoo.train(ctx.name, ctx.backend, "tiny", data=_synthetic_data(ctx),
                           out=ctx.tmp_path / "run", log_every=1, steps=40)
    monitor = ctx.spec.monitor
    reported = ctx.run.history.train[0] if ctx.run.history.train else {}
    if monitor not in reported:
        names = ", ".join(k for k in reported if k not in ("event", "step", "epoch", "lr",
                                                           "time"))
        raise ConformanceError(f"learns: the model reports no metric '{monitor}' (the spec's "
                               f"monitor); it reports: {names or 'nothing'}")
    losses = [r[monitor] for r in ctx.run.history.train]
    first, last = np.mean(losses[:5]), np.mean(losses[-5:])
    if not last < first:
        raise ConformanceError(f"learns: loss did not fall ({first:.4g} -> {last:.4g})")


def check_samples(ctx: Context) -> None:
    """Samples have the right shape, dtype and range, and obey the seed.

    Images: float32 (n, H, W, C) in [0, 1]. Text: int64 (n, block_size) token ids, and
    the model's cache (``extend``) gives the logits a whole prefix (``prefill``) gives.
    """
    gen = ctx.run.generator
    x = gen.sample(5, seed=3)
    dtype: type[np.generic]
    low: float
    high: float
    if gen.info.kind == "text":
        expected, dtype, low, high = (5, gen.config.block_size), np.int64, 0, gen.info.vocab_size - 1
    else:
        expected, dtype, low, high = (5, *gen.info.shape), np.float32, 0.0, 1.0
    if x.shape != expected:
        raise ConformanceError(f"samples: shape {x.shape}, expected {expected}")
    if x.dtype != dtype:
        raise ConformanceError(f"samples: dtype {x.dtype}, expected {np.dtype(dtype).name}")
    if not (np.isfinite(x).all() and x.min() >= low and x.max() <= high):
        raise ConformanceError(f"samples: values outside [{low}, {high}] ({x.min()}..{x.max()})")
    _draw_other_shapes(gen)  # what was drawn before must not change a seed's samples
    if not np.array_equal(x, gen.sample(5, seed=3)):
        raise ConformanceError("samples: the same seed gave different samples")
    if np.array_equal(x, gen.sample(5, seed=4)):
        raise ConformanceError("samples: different seeds gave identical samples")
    if gen.info.kind == "text":
        _check_cache(gen)


CACHE_TOLERANCE = 1e-3  # relative: kernels differ with the query's length (and on GPUs)


def _check_cache(gen: Any) -> None:
    """``extend`` with the cache gives the logits ``prefill`` gives for the whole prefix,
    at every position of the window (a model that returns no cache is not checked)."""
    ids = np.random.default_rng(5).integers(0, gen.info.vocab_size, gen.config.block_size)
    ids = [int(i) for i in ids]
    with gen._eval_mode():
        _, cache = gen._prefill(ids[:1])
        for k in range(1, len(ids)):
            if cache is None:
                return
            stepped, cache = gen._extend(ids[k], cache, k)
            whole, _ = gen._prefill(ids[:k + 1])
            stepped, whole = np.asarray(stepped, np.float64), np.asarray(whole, np.float64)
            gap = float(np.max(np.abs(stepped - whole)))
            if not gap <= CACHE_TOLERANCE * max(1.0, float(np.max(np.abs(whole)))):
                raise ConformanceError(
                    f"samples: at position {k}, extend's logits (with the cache) differ from "
                    f"prefill's for the same ids by up to {gap:.3g}: the cache changes what "
                    "the model computes")


def _draw_other_shapes(gen: Any) -> None:
    """Draw with other batch sizes (and, for text, other prompt lengths, with and
    without the cache) than the checks compare, so that a model whose traced or compiled
    sampling depends on the shapes it saw before (``tf.function(reduce_retracing=True)``
    relaxes a second shape into a graph that rounds differently) is caught."""
    for n in (1, 3, 8):
        gen.sample(n, seed=7 + n)
    if gen.info.kind == "text":
        vocab = gen.info.vocab
        for length in sorted({2, max(2, gen.config.block_size // 2), gen.config.block_size + 3}):
            prompt = "".join(vocab[i % len(vocab)] for i in range(length))
            for cache in (True, False):
                gen.generate(prompt, max_new_tokens=3, temperature=1.0, top_k=None, seed=9,
                             cache=cache)


def check_round_trip(ctx: Context) -> None:
    """A reloaded run gives bitwise identical weights and samples for the same seed,
    whatever was drawn before: a reload's first draw is compared with another reload's
    draw after other batch sizes (and prompt lengths), and with the trained model's."""
    import genzoo

    loaded = genzoo.load(ctx.run.path)
    before, after = ctx.run.generator.state(), loaded.state()
    if set(before) != set(after) or any(not np.array_equal(before[k], after[k]) for k in before):
        raise ConformanceError("round trip: reloaded weights differ")
    first = loaded.sample(4, seed=11)  # the reloaded model's first draw
    again = genzoo.load(ctx.run.path)
    _draw_other_shapes(again)
    if not np.array_equal(first, again.sample(4, seed=11)):
        raise ConformanceError(
            "round trip: a seed's samples depend on what was drawn before (other batch sizes "
            "or prompt lengths first): trace sampling per exact shape (Keras: "
            "genzoo.backends.keras.graph_function), not with reduce_retracing=True")
    if not np.array_equal(ctx.run.generator.sample(4, seed=11), first):
        raise ConformanceError("round trip: reloaded model samples differently")


def check_reproducible(ctx: Context) -> None:
    """A second run with the same seed ends with bitwise identical weights."""
    import genzoo

    again = genzoo.train(ctx.name, ctx.backend, "tiny", data=_synthetic_data(ctx),
                         out=ctx.tmp_path / "run-again", log_every=1, steps=40)
    before, after = ctx.run.generator.state(), again.generator.state()
    if any(not np.array_equal(before[k], after[k]) for k in before):
        raise ConformanceError("reproducible: two runs with the same seed differ")


def check_resume(ctx: Context) -> None:
    """Resuming from the checkpoint at step 20 of 40 ends bitwise where 40 straight steps do."""
    import shutil

    import genzoo
    from genzoo.checkpoint import checkpoint_name

    out = ctx.tmp_path / "run-resumed"
    genzoo.train(ctx.name, ctx.backend, "tiny", data=_synthetic_data(ctx), out=out,
                 log_every=1, steps=40, checkpoint_every=10, keep_checkpoints=10)
    checkpoints = out / "checkpoints"
    if not (checkpoints / checkpoint_name(20)).is_dir():
        raise ConformanceError("resume: no checkpoint was written at step 20")
    for step in (30, 40):  # as if the run had been killed after step 20
        shutil.rmtree(checkpoints / checkpoint_name(step), ignore_errors=True)
    (checkpoints / "latest").write_text(checkpoint_name(20) + "\n")
    (out / "model.safetensors").unlink()
    resumed = genzoo.resume(out)
    before, after = ctx.run.generator.state(), resumed.generator.state()
    if any(not np.array_equal(before[k], after[k]) for k in before):
        raise ConformanceError("resume: a resumed run differs from an uninterrupted one")


def check_listing_imports_no_framework(ctx: Context) -> None:
    """Listing the registry (what `genzoo list` does) imports no framework (torch,
    TensorFlow, Keras or JAX)."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    code = ("import sys; from genzoo.registry import get_registry; "
            f"get_registry().model({ctx.name!r}, {ctx.backend!r}); "
            "print(','.join(m for m in ('torch', 'tensorflow', 'keras', 'jax') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, env=env)
    if out.returncode != 0:
        raise ConformanceError(f"listing: the registry failed to load: {out.stderr[-500:]}")
    if out.stdout.strip():
        raise ConformanceError(f"listing: importing the plugin imported {out.stdout.strip()}; "
                               "import frameworks only in the builder's module")


def check_bad_config_is_refused(ctx: Context) -> None:
    """Unknown keys and values of the wrong type are refused with ConfigError."""
    import dataclasses
    import typing

    import genzoo
    from genzoo.config import field_types
    from genzoo.errors import ConfigError

    probes: list[dict[str, Any]] = [{"no_such_key": "1"}]
    for name, hint in field_types(ctx.spec.config).items():
        if {int, float} & {hint, *typing.get_args(hint)}:  # int, float, int | None, ...
            probes.append({name: "not-a-number"})
    for overrides in probes:
        try:
            genzoo.create(ctx.name, ctx.backend, "tiny", data=_synthetic_data(ctx), **overrides)
        except ConfigError as exc:
            if f"'{next(iter(overrides))}'" not in str(exc):  # refused for another reason
                raise ConformanceError(f"bad config: {overrides} was refused for another "
                                       f"reason: {exc}") from exc
            continue
        raise ConformanceError(f"bad config: {overrides} was accepted")
    defaults = ctx.spec.config()
    if not dataclasses.is_dataclass(defaults):
        raise ConformanceError("bad config: the config class must be a dataclass")
    cast(Any, defaults).validate()  # a ModelConfig


# The checks, in the order they run, and the name each one's failures start with.
LABELS: dict[Callable[[Context], None], str] = {
    check_listing_imports_no_framework: "listing", check_builds: "builds",
    check_bad_config_is_refused: "bad config", check_learns: "learns",
    check_samples: "samples", check_round_trip: "round trip",
    check_reproducible: "reproducible", check_resume: "resume",
}
CHECKS: tuple[Callable[[Context], None], ...] = tuple(LABELS)


def check_model(name: str, backend: str, tmp_path: Path) -> None:
    """Run every conformance check on one (model, backend), in order.

    Any error a check meets (the model raising, a missing method) is reported as a
    ``ConformanceError`` naming the check, chained to the original error.
    """
    ctx = Context(name, backend, Path(tmp_path))
    for check in CHECKS:
        try:
            check(ctx)
        except ConformanceError:
            raise
        except Exception as exc:
            raise ConformanceError(f"{LABELS[check]}: {type(exc).__name__}: {exc}") from exc


try:  # the pytest plugin part: only when pytest is there
    import pytest

    @pytest.fixture
    def genzoo_check(tmp_path: Path) -> Callable[[str, str], None]:
        """Run the conformance kit on a (model, backend): ``genzoo_check("vae", "torch")``."""
        return lambda name, backend: check_model(name, backend, tmp_path)
except ImportError:  # pragma: no cover
    pass
