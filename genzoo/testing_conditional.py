"""The conformance kit's check of conditional models (``genzoo.testing`` runs it)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import numpy as np

from genzoo.testing_base import ConformanceError, Context, _check_draw, _synthetic_data
from genzoo.testing_data import synthetic_images


CONDITIONAL_PRESET = "tiny-conditional"  # a family's conditional variant of "tiny"


def check_conditional(ctx: Context) -> None:
    """Labels, for every image model: an unconditional one refuses them; a family with a
    ``tiny-conditional`` preset trains it on labelled data, refuses an unlabelled
    dataset before training, and its samples follow the label: a label changes them,
    the same (seed, labels) reproduce them (after a reload too), a seed alone draws the
    same classes, and out-of-range labels are refused."""
    from genzoo.errors import ConfigError, DataError

    gen = ctx.run.generator
    if gen.info.kind == "text":
        return
    if gen.num_classes == 0:
        _refuses(lambda: gen.sample(2, seed=0, labels=0), ConfigError,
                 "an unconditional model accepted labels")
    if CONDITIONAL_PRESET not in ctx.spec.presets:
        return
    import genzoo

    unlabelled = str(synthetic_images(ctx.tmp_path / "data-unlabelled", labels=False))
    _refuses(lambda: genzoo.train(ctx.name, ctx.backend, CONDITIONAL_PRESET, data=unlabelled,
                                  out=ctx.tmp_path / "run-unlabelled", steps=2),
             DataError, "a conditional model trained on a dataset without labels")
    if (ctx.tmp_path / "run-unlabelled" / "model.safetensors").exists():
        raise ConformanceError("conditional: the refused run still wrote weights")
    run = genzoo.train(ctx.name, ctx.backend, CONDITIONAL_PRESET, data=_synthetic_data(ctx),
                       out=ctx.tmp_path / "run-conditional", log_every=5, steps=20)
    cond = run.generator
    if cond.num_classes != 2:
        raise ConformanceError(f"conditional: num_classes is {cond.num_classes}; the data "
                               "has 2 classes")
    zero = cond.sample(4, seed=5, labels=0)
    _check_draw(cond, zero, 4, "conditional: sample(labels=0)")
    if np.array_equal(zero, cond.sample(4, seed=5, labels=1)):
        raise ConformanceError("conditional: labels 0 and 1 gave identical samples: the "
                               "model ignores its labels")
    mixed = [0, 1, 1, 0]
    if not np.array_equal(cond.sample(4, seed=5, labels=mixed),
                          cond.sample(4, seed=5, labels=np.array(mixed))):
        raise ConformanceError("conditional: the same seed and labels gave different samples")
    if not np.array_equal(cond.sample(6, seed=8), cond.sample(6, seed=8)):
        raise ConformanceError("conditional: the same seed without labels gave different "
                               "samples")
    bad: Any
    for bad in (2, -1, [0, 5, 0, 0]):
        _refuses(functools.partial(cond.sample, 4, seed=0, labels=bad), ConfigError,
                 f"labels={bad!r} (out of range) were accepted")
    if not np.array_equal(genzoo.load(run.path).sample(4, seed=5, labels=mixed),
                          cond.sample(4, seed=5, labels=mixed)):
        raise ConformanceError("conditional: the reloaded model samples differently for "
                               "the same seed and labels")


def _refuses(call: Callable[[], Any], error: type[Exception], what: str) -> None:
    try:
        call()
    except error:
        return
    raise ConformanceError(f"conditional: {what}")
