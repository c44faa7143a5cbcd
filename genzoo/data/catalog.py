"""genzoo's own datasets, registered through the same hook a plugin uses."""

from __future__ import annotations

from collections.abc import Callable

from genzoo.data.images import IDX_STEMS, load_digits, load_idx_dir
from genzoo.data.sources import locate
from genzoo.hookspecs import hookimpl
from genzoo.registry import DatasetSpec

IDX_FILES = tuple(stem + ".gz" for pair in IDX_STEMS.values() for stem in pair)

DATASETS = (
    DatasetSpec(
        name="digits",
        kind="image",
        loader="genzoo.data.catalog:load_digits_spec",
        summary="scikit-learn's 1,797 handwritten digits, 8x8 grey (bundled, offline)",
        shape=(8, 8, 1),
        source="scikit-learn (UCI optical recognition of handwritten digits)",
        license="CC BY 4.0; Alpaydin & Kaynak, UCI ML Repository (1998)",
        offline=True,
    ),
    DatasetSpec(
        name="mnist",
        kind="image",
        loader="genzoo.data.catalog:load_idx_spec",
        summary="70,000 handwritten digits, 28x28 grey",
        shape=(28, 28, 1),
        source="LeCun, Cortes & Burges, the MNIST database (canonical IDX files)",
        license="CC BY-SA 3.0; LeCun et al. (1998)",
        files=IDX_FILES,
    ),
    DatasetSpec(
        name="fashion-mnist",
        kind="image",
        loader="genzoo.data.catalog:load_idx_spec",
        summary="70,000 Zalando article images in 10 classes, 28x28 grey",
        shape=(28, 28, 1),
        source="Xiao, Rasul & Vollgraf (2017), zalandoresearch/fashion-mnist",
        license="MIT",
        files=IDX_FILES,
    ),
)


def load_digits_spec(spec: DatasetSpec):  # noqa: ANN201 - ImageData
    return load_digits()


def load_idx_spec(spec: DatasetSpec):  # noqa: ANN201 - ImageData
    return load_idx_dir(locate(spec.name, spec.name, spec.files), spec.name)


@hookimpl
def register_datasets(register: Callable[[DatasetSpec], None]) -> None:
    for spec in DATASETS:
        register(spec)
