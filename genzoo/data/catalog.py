"""genzoo's own datasets, registered through the same hook a plugin uses."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from genzoo.data.base import ImageData
from genzoo.data.idx import IDX_FILES
from genzoo.data.images import load_digits, load_idx_dir
from genzoo.data.sources import locate
from genzoo.data.text import TextData, decode_utf8
from genzoo.hookspecs import hookimpl
from genzoo.registry import DatasetSpec

DIGITS = tuple("0123456789")
FASHION = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
           "Sneaker", "Bag", "Ankle boot")  # Xiao et al.'s names, in label order


def python_docs_text() -> str:
    """CPython's reference text (``pydoc_data.topics``), topics in sorted order."""
    from pydoc_data.topics import topics

    return "".join(topics[key] for key in sorted(topics))


def load_digits_spec(spec: DatasetSpec) -> ImageData:
    data = load_digits()
    data.classes = spec.classes
    return data


def load_idx_spec(spec: DatasetSpec) -> ImageData:
    data = load_idx_dir(locate(spec.name, spec.folder, spec.files), spec.name)
    data.classes = spec.classes
    return data


def load_python_docs(spec: DatasetSpec) -> TextData:
    import pydoc_data

    return TextData("python-docs", python_docs_text(), source=str(Path(pydoc_data.__file__).parent))


def load_text_spec(spec: DatasetSpec) -> TextData:
    path = locate(spec.name, spec.folder, spec.files) / spec.files[0]
    return TextData(spec.name, decode_utf8(path.read_bytes(), path), source=str(path))


DATASETS = (
    DatasetSpec(
        name="digits", kind="image", loader="genzoo.data.catalog:load_digits_spec",
        summary="scikit-learn's 1,797 handwritten digits, 8x8 grey (bundled, offline)",
        shape=(8, 8, 1), offline=True, classes=DIGITS,
        source="scikit-learn (UCI optical recognition of handwritten digits)",
        license="CC BY 4.0; Alpaydin & Kaynak, UCI ML Repository (1998)",
    ),
    DatasetSpec(
        name="mnist", kind="image", loader="genzoo.data.catalog:load_idx_spec",
        summary="70,000 handwritten digits, 28x28 grey", shape=(28, 28, 1), files=IDX_FILES,
        classes=DIGITS,
        source="LeCun, Cortes & Burges, the MNIST database (canonical IDX files)",
        license="CC BY-SA 3.0; LeCun et al. (1998)",
    ),
    DatasetSpec(
        name="fashion-mnist", kind="image", loader="genzoo.data.catalog:load_idx_spec",
        summary="70,000 Zalando article images in 10 classes, 28x28 grey", shape=(28, 28, 1),
        files=IDX_FILES, classes=FASHION,
        source="Xiao, Rasul & Vollgraf (2017), zalandoresearch/fashion-mnist",
        license="MIT",
    ),
    DatasetSpec(
        name="python-docs", kind="text", loader="genzoo.data.catalog:load_python_docs",
        summary="CPython's language reference topics (pydoc_data), ~465k characters (bundled)",
        offline=True, source="CPython's pydoc_data.topics, shipped with Python",
        license="PSF License (Python documentation)",
    ),
    DatasetSpec(
        name="tiny-shakespeare", kind="text", loader="genzoo.data.catalog:load_text_spec",
        summary="Shakespeare's plays, 1,115,394 characters (char-rnn / nanoGPT)",
        vocab_size=65, directory="tinyshakespeare", files=("input.txt",),
        source="Karpathy, char-rnn (2015)", license="public domain text",
    ),
)


@hookimpl
def register_datasets(register: Callable[[DatasetSpec], None]) -> None:
    for spec in DATASETS:
        register(spec)
