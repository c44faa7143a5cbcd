"""Conditional generation: class labels from the data, through training, to sampling.

A family makes a model conditional with a boolean field ``conditional`` in its model
config (the VAE's and the GAN's ``--set conditional=true``, their ``cvae`` and ``cgan``
presets). The number of classes is the dataset's (``DataInfo.num_classes``). Then:

- training batches are ``(images, labels)`` pairs, the labels one-hot float32
  ``(n, num_classes)``, from any labelled dataset; an unlabelled one is refused before
  training starts (``check_labelled``);
- ``Generator.sample(n, seed=..., labels=...)`` draws the given classes (an int for all
  ``n``, or one label per sample); without labels a conditional model draws them
  uniformly from ``draw_labels(n, num_classes, seed)``, so a seed alone still fixes
  the samples. An unconditional model refuses labels.

Networks receive labels as one-hot rows, never as integers: a mixture of two rows (what
``interpolate`` passes between two labels) is then as valid an input as a class.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from genzoo.errors import ConfigError, DataError

LABEL_STREAM = 0x1ABE1  # keeps the labels' draw apart from the model's own noise


def is_conditional(config: Any) -> bool:
    """Whether a model config (or a saved one, a mapping) asks for a conditional model:
    its ``conditional`` field."""
    if isinstance(config, Mapping):
        return bool(config.get("conditional", False))
    return bool(getattr(config, "conditional", False))


def class_names(labels: Sequence[np.ndarray | None]) -> tuple[str, ...]:
    """``("0", "1", ...)``: one name per class up to the largest label in ``labels``."""
    found = [int(a.max()) for a in labels if a is not None and len(a)]
    return tuple(str(i) for i in range(max(found) + 1)) if found else ()


def check_labelled(data: Any, model: str) -> None:
    """Refuse, before training, a dataset a conditional ``model`` cannot train on: one
    without a label for every image of every split, or with a single class."""
    missing = [split for split in ("train", "val", "test")
               if getattr(data, f"{split}_labels", None) is None]
    if getattr(data, "kind", "image") != "image":
        raise DataError(f"{model} is conditional on class labels, which only image datasets "
                        "have")
    if missing:
        raise DataError(f"{model} is conditional, but dataset '{data.name}' has no labels for "
                        f"its {', '.join(missing)} split{'s' * (len(missing) > 1)}; train it on a "
                        "labelled dataset, or without conditional=true")
    if data.info.num_classes < 2:
        raise DataError(f"{model} is conditional, but dataset '{data.name}' holds a single "
                        "class; conditioning needs at least two")


def one_hot(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """Integer labels ``(n,)`` as float32 one-hot rows ``(n, num_classes)``.

    Examples:
        >>> one_hot(np.array([2, 0]), 3).tolist()
        [[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]]
    """
    out = np.zeros((len(labels), num_classes), np.float32)
    out[np.arange(len(labels)), np.asarray(labels, np.int64)] = 1.0
    return out


def draw_labels(n: int, num_classes: int, seed: int) -> np.ndarray:
    """The classes a conditional model draws for ``sample(n, seed=seed)`` without labels:
    uniform, from a stream of the seed's own.

    Examples:
        >>> draw_labels(5, 10, 0).tolist() == draw_labels(5, 10, 0).tolist()
        True
    """
    return np.random.default_rng([LABEL_STREAM, seed]).integers(0, num_classes, n)


def balanced_labels(n: int, num_classes: int) -> np.ndarray:
    """``0, 1, ..., K-1, 0, 1, ...``: ``n`` labels, each class as often as possible.

    Examples:
        >>> balanced_labels(5, 3).tolist()
        [0, 1, 2, 0, 1]
    """
    return np.arange(n, dtype=np.int64) % num_classes


def class_rows(num_classes: int, per_class: int) -> np.ndarray:
    """``per_class`` labels of class 0, then of class 1, ...: a class grid's labels.

    Examples:
        >>> class_rows(2, 3).tolist()
        [0, 0, 0, 1, 1, 1]
    """
    return np.repeat(np.arange(num_classes, dtype=np.int64), per_class)


def _one_label(value: Any, num_classes: int, what: str) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise ConfigError(f"{what} must be whole numbers (class indices), not {value!r}")
    if not 0 <= int(value) < num_classes:
        raise ConfigError(f"{what} {int(value)} is out of range: this model has "
                          f"{num_classes} classes, 0 to {num_classes - 1}")
    return int(value)


def valid_labels(labels: Any, n: int, num_classes: int, model: str) -> np.ndarray:
    """``sample``'s ``labels`` as int64 ``(n,)``, checked: an int stands for ``n`` copies
    of itself; a sequence must hold ``n`` labels, each in ``[0, num_classes)``.

    Raises:
        ConfigError: labels given to an unconditional model (``num_classes == 0``), a
            label out of range, or a count other than ``n``.
    """
    if num_classes == 0:
        raise ConfigError(f"{model} is unconditional; it takes no labels (train it with "
                          "conditional=true to draw chosen classes)")
    if isinstance(labels, (numbers.Integral, np.integer)) and not isinstance(labels, bool):
        return np.full(n, _one_label(labels, num_classes, "label"), np.int64)
    array = np.asarray(labels)
    if array.ndim == 0:  # a single value that is not an int
        _one_label(labels, num_classes, "labels")
    if array.ndim != 1:
        raise ConfigError(f"labels must be one class index per sample, shape ({n},), not "
                          f"shape {array.shape}")
    if len(array) != n:
        raise ConfigError(f"{len(array)} labels for {n} samples; give one per sample (or one "
                          "int for all)")
    if array.dtype.kind not in "iu":
        for value in array.tolist():
            _one_label(value, num_classes, "labels")
    bad = array[(array < 0) | (array >= num_classes)]
    if len(bad):
        _one_label(int(bad[0]), num_classes, "label")
    return array.astype(np.int64)


def label_ends(labels: Any, num_classes: int, model: str) -> tuple[int, int] | None:
    """``interpolate``'s ``labels``: ``None`` (a conditional model draws one class from
    the first seed), one label for the whole strip, or a pair ``(a, b)`` to morph from
    class ``a`` to class ``b``."""
    if labels is None:
        return None
    if isinstance(labels, (numbers.Integral, np.integer)) and not isinstance(labels, bool):
        label = int(valid_labels(labels, 1, num_classes, model)[0])
        return label, label
    pair = valid_labels(list(labels) if not isinstance(labels, np.ndarray) else labels,
                        len(labels), num_classes, model)
    if len(pair) != 2:
        raise ConfigError(f"interpolate takes one label or two (the ends), not {len(pair)}")
    return int(pair[0]), int(pair[1])


def strip_conditions(ends: tuple[int, int], steps: int, num_classes: int) -> np.ndarray:
    """One-hot rows moving linearly from class ``a`` to class ``b`` in ``steps`` points.

    Examples:
        >>> strip_conditions((0, 1), 3, 2).tolist()
        [[1.0, 0.0], [0.5, 0.5], [0.0, 1.0]]
    """
    t = np.linspace(0.0, 1.0, steps, dtype=np.float32)[:, None]
    a, b = one_hot(np.array(ends[:1]), num_classes), one_hot(np.array(ends[1:]), num_classes)
    return ((1 - t) * a + t * b).astype(np.float32)


def split_batch(batch: Any, parts: int) -> list[Any]:
    """``np.split`` of a batch into ``parts``, for an array or an ``(images, labels)``
    pair (each part a pair again)."""
    if isinstance(batch, tuple):
        pieces = [np.split(np.asarray(a), parts) for a in batch]
        return [tuple(p[i] for p in pieces) for i in range(parts)]
    return np.split(np.asarray(batch), parts)


def batch_size_of(batch: Any) -> int:
    """The number of examples in a batch or an ``(images, labels)`` pair."""
    return len(batch[0]) if isinstance(batch, tuple) else len(batch)
