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
from pathlib import Path
from typing import Any, cast

import numpy as np

from genzoo.testing_base import ConformanceError, Context, _check_draw, _synthetic_data
from genzoo.testing_conditional import CONDITIONAL_PRESET, check_conditional
from genzoo.testing_data import synthetic_images, synthetic_text  # public here too


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
    """Samples have the right shape, dtype and range at every batch size drawn (5, then
    1, 3 and 8), and obey the seed.

    Images: float32 (n, H, W, C) in [0, 1]. Text: int64 (n, block_size) token ids, and
    the model's cache (``extend``) gives the logits a whole prefix (``prefill``) gives.
    """
    gen = ctx.run.generator
    x = gen.sample(5, seed=3)
    _check_draw(gen, x, 5)
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


def _draw_other_shapes(gen: Any, what: str = "samples") -> None:
    """Draw other batch sizes than the checks compare (each must be valid) and, for
    text, other prompt lengths, with and without the cache, so that a model whose traced
    sampling depends on the shapes it saw before (``tf.function(reduce_retracing=True)``
    relaxes a second shape into a graph that rounds differently) is caught."""
    for n in (1, 3, 8):
        _check_draw(gen, gen.sample(n, seed=7 + n), n, f"{what}: sample({n})")
    if gen.info.kind == "text":
        vocab = gen.info.vocab
        for length in sorted({2, max(2, gen.config.block_size // 2), gen.config.block_size + 3}):
            prompt = "".join(vocab[i % len(vocab)] for i in range(length))
            for cache in (True, False):
                gen.generate(prompt, max_new_tokens=3, temperature=1.0, top_k=None, seed=9,
                             cache=cache)


def check_latent_space(ctx: Context) -> None:
    """An image network with ``noise(n, rng)`` and ``render(z)`` (``genzoo sample
    --interpolate`` uses both) draws ``n`` latents, the same for a seed, that render as
    valid images, and ``interpolate`` gives a valid strip, the same for the same seeds;
    one of the two alone is refused (a network with neither is not checked)."""
    gen = ctx.run.generator
    network = gen.module if ctx.backend == "torch" else getattr(gen, "model", None)
    has = [m for m in ("noise", "render") if hasattr(network, m)]
    if gen.info.kind == "text" or not has:
        return
    if len(has) == 1:
        other = "render" if has[0] == "noise" else "noise"
        raise ConformanceError(f"latent space: the network has {has[0]}() but not {other}(): "
                               "define both (genzoo sample --interpolate uses them) or neither")
    if ctx.backend in ("torch", "keras"):
        (z, images), (z_again, again) = _render_noise(gen, 3, 5), _render_noise(gen, 3, 5)
        if z.shape[0] != 3:
            raise ConformanceError(f"latent space: noise(3, rng) gave {z.shape[0]} latents")
        _check_draw(gen, images, 3, "latent space: render(noise(3, rng))")
        if not (np.array_equal(z, z_again) and np.array_equal(images, again)):
            raise ConformanceError("latent space: the same seed gave different noise or images")
    strip = gen.interpolate(3, 4, 4)
    _check_draw(gen, strip, 4, "latent space: interpolate")
    if not np.array_equal(strip, gen.interpolate(3, 4, 4)):
        raise ConformanceError("latent space: the same seeds gave different interpolations")


def _render_noise(gen: Any, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A torch or Keras network's ``noise(n, rng seeded with seed)``, and its render."""
    if gen.spec.backend == "torch":
        import torch

        module, was_training = gen.module, gen.module.training
        module.eval()
        try:
            with torch.no_grad():
                z = module.noise(n, torch.Generator(device=gen.device).manual_seed(seed))
                return z.float().cpu().numpy(), module.render(z).float().cpu().numpy()
        finally:
            module.train(was_training)
    import keras

    from genzoo.backends.keras.generator import _no_grad

    with _no_grad():
        z = gen.model.noise(n, keras.random.SeedGenerator(seed))
        out = keras.ops.convert_to_numpy(gen.model.render(z))
        return np.asarray(keras.ops.convert_to_numpy(z)), np.asarray(out, dtype=np.float32)


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
    _draw_other_shapes(again, "round trip")
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
    """Resuming from the checkpoint at step 20 of 40 ends bitwise where 40 straight steps
    do, with EMA weights on (``ema_decay``, the model's own or 0.9): the trained weights
    match, the average covers every float weight, and it matches too when the model
    enables EMA itself."""
    import shutil

    import genzoo
    from genzoo.checkpoint import checkpoint_name, load_tensors

    out = ctx.tmp_path / "run-resumed"
    own = any(k.startswith("ema.") for k in load_tensors(ctx.run.path / "model.safetensors"))
    genzoo.train(ctx.name, ctx.backend, "tiny", data=_synthetic_data(ctx), out=out,
                 log_every=1, steps=40, checkpoint_every=10, keep_checkpoints=10,
                 **({} if own else {"ema_decay": 0.9}))  # type: ignore[arg-type]
    checkpoints = out / "checkpoints"
    if not (checkpoints / checkpoint_name(20)).is_dir():
        raise ConformanceError("resume: no checkpoint was written at step 20")
    for step in (30, 40):  # as if the run had been killed after step 20
        shutil.rmtree(checkpoints / checkpoint_name(step), ignore_errors=True)
    (checkpoints / "latest").write_text(checkpoint_name(20) + "\n")
    (out / "model.safetensors").unlink()
    genzoo.resume(out)
    before, after = (load_tensors(p / "model.safetensors") for p in (ctx.run.path, out))
    if any(not np.array_equal(before[k], after[k]) for k in before):
        raise ConformanceError("resume: a resumed run differs from an uninterrupted one")
    average = {k[4:] for k in after if k.startswith("ema.")}
    if average != {k for k in before if np.issubdtype(before[k].dtype, np.floating)} - {
            k for k in before if k.startswith("ema.")}:
        raise ConformanceError("resume: the EMA weights (ema.<name>) do not cover every "
                               "floating-point weight of the model")


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
    check_samples: "samples", check_latent_space: "latent space",
    check_round_trip: "round trip", check_reproducible: "reproducible", check_resume: "resume",
    check_conditional: "conditional",
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
