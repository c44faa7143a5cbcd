"""Helpers shared by the backend adapters (no framework imports)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import numpy as np

from genzoo.conditioning import (draw_labels, label_ends, one_hot, strip_conditions,
                                 valid_labels)
from genzoo.config import MAX_SEED, valid_count, valid_seed
from genzoo.errors import CheckpointError, ConfigError


def check_state_matches(
    expected: Mapping[str, tuple[int, ...]], tensors: Mapping[str, np.ndarray], what: str,
    *, keras_names: bool = False
) -> None:
    """Refuse weights whose names or shapes differ from the model's, naming the first few
    (``keras_names``: with a hint when only Keras's automatic layer numbers differ)."""
    missing = sorted(set(expected) - set(tensors))
    extra = sorted(set(tensors) - set(expected))
    if missing or extra:
        def some(names: list[str]) -> str:
            more = f" and {len(names) - 3} more" if len(names) > 3 else ""
            return ", ".join(repr(n) for n in names[:3]) + more

        problems = ([f"they lack {some(missing)}"] if missing else []) + \
                   ([f"the model has no {some(extra)}"] if extra else [])
        if keras_names and _unnumbered(missing) == _unnumbered(extra):  # dense_1, dense_2
            problems.append("the names differ only in numbers Keras gives unnamed layers "
                            "(they depend on what else the process built): name every layer")
        raise CheckpointError(f"these weights do not fit {what}: {'; '.join(problems)}")
    for name, shape in expected.items():
        got = tuple(tensors[name].shape)
        if got != tuple(shape):
            raise CheckpointError(
                f"these weights do not fit {what}: '{name}' has shape {got}, the model "
                f"expects {tuple(shape)}"
            )


def _unnumbered(names: list[str]) -> list[str]:
    """Weight names without Keras's automatic ``_N`` suffixes (``dense_2/kernel`` ->
    ``dense/kernel``), sorted.

    Examples:
        >>> _unnumbered(["dense_2/bias", "block/dense_10/kernel"])
        ['block/dense/kernel', 'dense/bias']
    """
    return sorted(re.sub(r"_\d+(?=/|$)", "", name) for name in names)


def valid_sample_args(n: Any, seed: Any) -> tuple[int, int | None]:
    """The arguments of ``sample(n, seed=...)`` as Python ints, checked before any
    framework sees them."""
    return valid_count(n), valid_seed(seed)


def valid_interpolate_args(network: Any, name: str, seed_a: Any, seed_b: Any,
                      steps: Any) -> tuple[int, int, int]:
    """``interpolate``'s arguments as Python ints; it needs a model with a latent space
    (``noise`` and ``render``)."""
    if not (hasattr(network, "noise") and hasattr(network, "render")):
        raise ConfigError(f"{name} has no latent space to interpolate in")
    a, b = valid_seed(seed_a, "seed_a"), valid_seed(seed_b, "seed_b")
    if a is None or b is None:
        raise ConfigError("interpolate needs two seeds")
    return a, b, valid_count(steps, "steps", 2)


def describe(generator: Any) -> str:
    """A generator's repr: model, backend, size."""
    spec = generator.spec
    return (f"<{type(generator).__name__} {spec.name} ({spec.backend}), "
            f"{generator.num_parameters():,} parameters>")


def random_seed() -> int:
    """A fresh seed for sampling when the caller gave none (at most ``MAX_SEED``)."""
    return int(np.random.SeedSequence().generate_state(1)[0]) % (MAX_SEED + 1)


def slerp(a: np.ndarray, b: np.ndarray, steps: int) -> np.ndarray:
    """Spherical interpolation between two latent vectors, ``steps`` points, ends included.

    Gaussian latents concentrate near a sphere; a straight line between two of them
    passes through improbable low-norm points, an arc does not.
    """
    a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    t = np.linspace(0.0, 1.0, steps)[:, None]
    cos = np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b))
    omega = np.arccos(np.clip(cos, -1.0, 1.0))
    if omega < 1e-6:  # (nearly) parallel: the line is the arc
        return ((1 - t) * a + t * b).astype(np.float32)
    out = (np.sin((1 - t) * omega) * a + np.sin(t * omega) * b) / np.sin(omega)
    return out.astype(np.float32)


def num_classes(generator: Any) -> int:
    """The classes a generator draws: its data's, when its config is conditional; else 0."""
    from genzoo.conditioning import is_conditional

    return generator.info.num_classes if is_conditional(generator.config) else 0


def sample_conditions(generator: Any, n: int, seed: int, labels: Any) -> np.ndarray | None:
    """The one-hot rows ``sample(n, seed=seed, labels=labels)`` hands a conditional
    network (labels drawn from the seed when none are given), ``None`` for an
    unconditional one; labels given to an unconditional model are refused."""
    k = generator.num_classes
    what = f"{generator.spec.name} ({generator.spec.backend})"
    if labels is None:
        return None if k == 0 else one_hot(draw_labels(n, k, seed), k)
    return one_hot(valid_labels(labels, n, k, what), k)


def strip_labels(generator: Any, seed_a: int, steps: int, labels: Any) -> np.ndarray | None:
    """The one-hot rows of an interpolation strip: one class throughout, or moving from
    one class to another (``labels=(a, b)``); ``None`` for an unconditional model."""
    k = generator.num_classes
    what = f"{generator.spec.name} ({generator.spec.backend})"
    if labels is None and k == 0:
        return None
    if k == 0:
        valid_labels(labels, 1, k, what)  # raises: unconditional
    ends = label_ends(labels, k, what)
    if ends is None:  # the class of the first seed's draw
        label = int(draw_labels(1, k, seed_a)[0])
        ends = (label, label)
    return strip_conditions(ends, steps, k)
