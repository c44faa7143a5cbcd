"""Small synthetic datasets for the conformance kit (``genzoo.testing`` re-exports
them): images with one bright bar, and text with a few repeated words."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def synthetic_images(path: Path, shape: tuple[int, int] = (8, 8), n_train: int = 256,
                     n_test: int = 64, seed: int = 0, labels: bool = True) -> Path:
    """Write a small IDX dataset of noisy bars to ``path`` and return it.

    Each image is one bright horizontal (class 0) or vertical (class 1) bar: easy to
    learn, so a few steps must lower any sensible loss. ``labels=False`` leaves out the
    label files (an unlabelled dataset).
    """
    write_labels = labels
    from genzoo.checkpoint import atomic_write_bytes

    rng = np.random.default_rng(seed)
    path.mkdir(parents=True, exist_ok=True)
    h, w = shape
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images = np.zeros((n, h, w), dtype=np.uint8)
        classes = rng.integers(0, 2, n).astype(np.uint8)
        for i in range(n):
            pos = rng.integers(0, h if classes[i] == 0 else w)
            if classes[i] == 0:
                images[i, pos, :] = 255
            else:
                images[i, :, pos] = 255
        noise = rng.random(images.shape) < 0.03
        images[noise] = 255 - images[noise]
        header = bytes([0, 0, 8, 3]) + np.array([n, h, w], ">u4").tobytes()
        atomic_write_bytes(path / f"{prefix}-images-idx3-ubyte", header + images.tobytes())
        if write_labels:
            header = bytes([0, 0, 8, 1]) + np.array([n], ">u4").tobytes()
            atomic_write_bytes(path / f"{prefix}-labels-idx1-ubyte", header + classes.tobytes())
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
