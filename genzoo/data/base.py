"""Datasets as numpy arrays, and deterministic batch streams over them.

A batch stream is a pure function of the step number: the order of an epoch comes from
``numpy.random.default_rng([seed, epoch])``. Resuming at step ``s`` therefore needs no
saved RNG state, and every rank of a distributed run can compute its own shard.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any
from dataclasses import dataclass, field

import numpy as np

from genzoo.conditioning import class_names, one_hot
from genzoo.errors import DataError
from genzoo.protocols import DataInfo


@dataclass
class ImageData:
    """An image dataset: float32 NHWC arrays in [0, 1], split three ways.

    A dataset plugin's loader returns one, e.g.
    ``ImageData("speckle", x[:200], x[200:250], x[250:], source="generated")``.

    Attributes:
        name: the dataset's name, as `genzoo datasets` lists it.
        train: the training images, shape ``(n, height, width, channels)``.
        val: the validation images (evaluated during training).
        test: the test images (the final test pass and `genzoo eval`).
        train_labels: integer class labels of ``train``, or ``None``; `genzoo eval`'s
            domain classifier needs the labels of every split.
        val_labels: the labels of ``val``, or ``None``.
        test_labels: the labels of ``test``, or ``None``.
        source: where the data came from (a path or a description), for ``meta.json``.
        classes: the class names, in label order; empty: ``"0"``, ``"1"``, ... up to the
            largest label (``info.classes``).
    """

    name: str
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    train_labels: np.ndarray | None = None
    val_labels: np.ndarray | None = None
    test_labels: np.ndarray | None = None
    source: str = ""
    classes: tuple[str, ...] = ()
    _checksum: str | None = field(default=None, init=False, repr=False)

    kind = "image"

    @property
    def info(self) -> DataInfo:
        """Shape and, for labelled images, the class names (``num_classes`` reaches the
        largest label of any split)."""
        shape = tuple(int(d) for d in self.train.shape[1:])
        if self.train_labels is None:
            return DataInfo("image", shape)
        found = class_names([self.train_labels, self.val_labels, self.test_labels])
        names = self.classes if len(self.classes) >= len(found) else found
        return DataInfo("image", shape, classes=tuple(names))

    def labels_of(self, split: str) -> np.ndarray | None:
        """The labels of ``"train"``, ``"val"`` or ``"test"`` (``None``: unlabelled)."""
        return getattr(self, f"{split}_labels")

    @property
    def checksum(self) -> str:
        """sha256 of the training images as float32 bytes (recorded in meta.json)."""
        if self._checksum is None:
            self._checksum = hashlib.sha256(np.ascontiguousarray(self.train).data).hexdigest()
        return self._checksum

    def split(self, name: str) -> np.ndarray:
        """Deprecated: read the attribute (``data.train``, ``data.val``, ``data.test``)."""
        import warnings

        warnings.warn("ImageData.split(name) is deprecated and will be removed in genzoo "
                      "0.3; read data.train, data.val or data.test", DeprecationWarning,
                      stacklevel=2)
        if name not in ("train", "val", "test"):
            raise ValueError(f"unknown split {name!r}")
        return getattr(self, name)

    def train_batches(self, batch_size: int, seed: int, labelled: bool = False) -> ImageBatches:
        """Training batches; ``labelled``: ``(images, one-hot labels)`` pairs, for a
        conditional model."""
        labels = None
        if labelled:
            assert self.train_labels is not None  # conditioning.check_labelled said so
            labels = one_hot(self.train_labels, self.info.num_classes)
        return ImageBatches(self.train, batch_size, seed, what=f"dataset '{self.name}'",
                            labels=labels)


class ImageBatches:
    """Shuffled mini-batches of an array, as a pure function of the step number.

    The last incomplete batch of each epoch is dropped, so every step sees
    ``batch_size`` examples. With ``labels`` (one row per example), each batch is the
    pair ``(x, labels)`` in the same order.
    """

    def __init__(self, x: np.ndarray, batch_size: int, seed: int, what: str = "dataset",
                 labels: np.ndarray | None = None):
        if len(x) < batch_size:
            raise DataError(
                f"{what} has {len(x)} training examples, fewer than one batch of "
                f"{batch_size}; lower --batch-size"
            )
        self.x = x
        self.labels = labels
        self.batch_size = batch_size
        self.seed = seed
        self.steps_per_epoch = len(x) // batch_size
        self._epoch = -1
        self._order = np.arange(0)

    def order(self, epoch: int) -> np.ndarray:
        """The permutation of the training set used in ``epoch``."""
        if epoch != self._epoch:
            self._order = np.random.default_rng([self.seed, epoch]).permutation(len(self.x))
            self._epoch = epoch
        return self._order

    def __call__(self, step: int) -> Any:
        epoch, i = divmod(step, self.steps_per_epoch)
        idx = self.order(epoch)[i * self.batch_size : (i + 1) * self.batch_size]
        if self.labels is not None:
            return self.x[idx], self.labels[idx]
        return self.x[idx]


def fixed_batches(x: np.ndarray, batch_size: int, limit: int = 0,
                  labels: np.ndarray | None = None) -> Iterator[Any]:
    """Consecutive batches of ``x`` in order (the last may be short); evaluation uses these.
    With ``labels``, ``(x, labels)`` pairs."""
    n = len(x) if limit <= 0 else min(len(x), limit * batch_size)
    for start in range(0, n, batch_size):
        if labels is not None:
            yield x[start : start + batch_size], labels[start : start + batch_size]
        else:
            yield x[start : start + batch_size]
