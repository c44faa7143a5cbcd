"""Image datasets: scikit-learn's bundled digits, and IDX directories (MNIST and friends)."""

from __future__ import annotations

import gzip
import importlib.util
from pathlib import Path

import numpy as np

from genzoo.data.base import ImageData
from genzoo.data.idx import find_idx_file, read_idx
from genzoo.errors import DataError

IDX_STEMS = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
VAL_FRACTION = 0.1  # the last 10% of the training file is the validation split


def _digits_csv() -> Path:
    # Locate the CSV without importing sklearn, whose import costs a second.
    spec = importlib.util.find_spec("sklearn")
    if spec is None or not spec.submodule_search_locations:
        raise DataError("the 'digits' dataset needs scikit-learn: pip install scikit-learn")
    path = Path(spec.submodule_search_locations[0]) / "datasets" / "data" / "digits.csv.gz"
    if not path.is_file():
        raise DataError(f"scikit-learn's digits file is missing: {path}")
    return path


def load_digits(spec: object = None) -> ImageData:
    """scikit-learn's 1,797 8x8 digits (values 0..16), split 80/10/10 with a fixed seed."""
    path = _digits_csv()
    with gzip.open(path, "rt") as f:
        table = np.loadtxt(f, delimiter=",", dtype=np.float32)
    if table.shape != (1797, 65):
        raise DataError(f"{path}: expected 1797 rows of 65 values, found {table.shape}")
    images = (table[:, :64] / 16.0).reshape(-1, 8, 8, 1).astype(np.float32)
    labels = table[:, 64].astype(np.int64)
    order = np.random.default_rng(0).permutation(len(images))  # fixed: splits never move
    n_test = n_val = len(images) // 10
    test, val, train = np.split(order, [n_test, n_test + n_val])
    return ImageData(
        "digits", images[train], images[val], images[test],
        labels[train], labels[val], labels[test], source=str(path),
    )


def _read_pair(directory: Path, split: str) -> tuple[np.ndarray, np.ndarray | None]:
    image_stem, label_stem = IDX_STEMS[split]
    image_path = find_idx_file(directory, image_stem)
    if image_path is None:
        raise DataError(f"{directory} holds no {image_stem}[.gz] file")
    images = read_idx(image_path)
    if images.ndim not in (3, 4) or images.dtype != np.uint8 or 0 in images.shape[1:]:
        raise DataError(
            f"{image_path}: expected uint8 images (N, H, W), found {images.dtype.name} "
            f"{images.shape}"
        )
    label_path = find_idx_file(directory, label_stem)
    labels = None
    if label_path is not None:
        raw = read_idx(label_path)
        if not np.issubdtype(raw.dtype, np.integer):
            raise DataError(f"{label_path}: labels must be whole numbers, found "
                            f"{raw.dtype.name} values")
        if raw.size and raw.min() < 0:
            raise DataError(f"{label_path}: labels must be whole numbers from 0, found "
                            f"{raw.min()}")
        labels = raw.astype(np.int64)
        if labels.shape != (len(images),):
            raise DataError(
                f"{label_path}: expected {len(images)} labels, found shape {labels.shape}"
            )
    return images, labels


def _to_float(images: np.ndarray) -> np.ndarray:
    x = images.astype(np.float32) / 255.0
    return x[..., None] if x.ndim == 3 else x


def load_idx_dir(directory: Path, name: str | None = None) -> ImageData:
    """Load a directory holding ``train-*`` and ``t10k-*`` IDX files (gzip or raw)."""
    directory = Path(directory)
    train_x, train_y = _read_pair(directory, "train")
    test_x, test_y = _read_pair(directory, "test")
    if train_x.shape[1:] != test_x.shape[1:]:
        raise DataError(
            f"{directory}: training images are {train_x.shape[1:]} but test images are "
            f"{test_x.shape[1:]}"
        )
    n_val = max(1, int(len(train_x) * VAL_FRACTION))
    x = _to_float(train_x)
    return ImageData(
        name or directory.name,
        x[:-n_val], x[-n_val:], _to_float(test_x),
        None if train_y is None else train_y[:-n_val],
        None if train_y is None else train_y[-n_val:],
        test_y,
        source=str(directory),
    )
