"""The shared data layer: datasets by name or path, as numpy arrays, for every backend."""

from __future__ import annotations

from pathlib import Path

from genzoo.data.base import ImageBatches, ImageData, fixed_batches
from genzoo.data.text import CharTokenizer, TextBatches, TextData, decode_utf8
from genzoo.errors import DataError, LookupFailed, did_you_mean

__all__ = ["CharTokenizer", "ImageBatches", "ImageData", "TextBatches", "TextData",
           "dataset_ref", "fixed_batches", "load_dataset", "recorded_dataset"]


def load_dataset(name_or_path: str, kind: str | None = None) -> ImageData | TextData:
    """Load a registered dataset by name, or your own data by path.

    A directory is read as IDX files (``train-images-idx3-ubyte[.gz]`` and so on); a
    file is read as UTF-8 text.

    Args:
        name_or_path: a name from ``genzoo datasets`` or a filesystem path.
        kind: if given (``"image"`` or ``"text"``), the dataset must be of this kind.

    Examples:
        >>> from genzoo.data import load_dataset
        >>> load_dataset("digits").train.shape
        (1439, 8, 8, 1)
    """
    try:
        return _load(name_or_path, kind)
    except OSError as exc:  # a file or folder that cannot be read: one line, no traceback
        raise DataError(f"cannot read {exc.filename or name_or_path}: "
                        f"{exc.strerror or exc}") from None


def _load(name_or_path: str, kind: str | None) -> ImageData | TextData:
    from genzoo.registry import get_registry, import_object

    registry = get_registry()
    if name_or_path in registry.datasets:
        spec = registry.dataset(name_or_path)
        if kind is not None and spec.kind != kind:
            raise DataError(f"dataset '{spec.name}' holds {spec.kind}s, but this model needs {kind}s")
        return import_object(spec.loader, f"loader of dataset '{spec.name}'")(spec)
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        _expect(kind, "image", path)
        from genzoo.data.images import load_idx_dir

        return load_idx_dir(path)
    if path.is_file():
        _expect(kind, "text", path)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise DataError(f"cannot read {path}: {exc.strerror or exc}") from None
        return TextData(path.name, decode_utf8(data, path), source=str(path))
    raise LookupFailed(
        f"unknown dataset '{name_or_path}' (not a registered name or an existing path)."
        f"{did_you_mean(name_or_path, registry.datasets)}"
    )


def dataset_ref(name_or_path: str) -> str:
    """How a run records its dataset: a registered name as it is, a path made absolute, so
    that ``genzoo eval`` and ``--resume`` find it from any working directory."""
    from genzoo.registry import get_registry

    if name_or_path in get_registry().datasets:
        return name_or_path
    return str(Path(name_or_path).expanduser().absolute())


def recorded_dataset(ref: str, run: Path, other: str = "") -> str:
    """A run's recorded dataset, checked: a relative path (runs made before paths were
    recorded absolute) that does not resolve from here is an error saying why.

    ``other`` ends that message with another way out (``genzoo eval``'s ``--data``).
    """
    from genzoo.registry import get_registry

    path = Path(ref).expanduser()
    if ref in get_registry().datasets or path.is_absolute() or path.exists():
        return ref
    raise LookupFailed(f"{run} was trained on '{ref}', a path relative to the folder it was "
                       "trained from (older runs recorded paths so); run this from that "
                       f"folder{other}")


def _expect(kind: str | None, found: str, path: Path) -> None:
    if kind is not None and kind != found:
        what = {"image": "a directory of IDX files", "text": "a UTF-8 text file"}
        raise DataError(f"{path} is {what[found]}, but this model needs {kind}s "
                        f"({what[kind]})")
