"""The shared data layer: datasets by name or path, as numpy arrays, for every backend."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from genzoo.data.base import ImageBatches, ImageData, fixed_batches
from genzoo.data.files import (HEAD, binary_kind, describe_binary, not_a_file, read_file,
                               special_kind)
from genzoo.data.text import CharTokenizer, TextBatches, TextData, decode_utf8
from genzoo.errors import DataError, LookupFailed, did_you_mean

__all__ = ["CharTokenizer", "ImageBatches", "ImageData", "TextBatches", "TextData",
           "dataset_ref", "fixed_batches", "load_dataset", "recorded_dataset"]


def load_dataset(name_or_path: str, kind: str | None = None) -> ImageData | TextData:
    """Load a registered dataset by name, or your own data by path.

    A directory is read as IDX files (``train-images-idx3-ubyte[.gz]`` and so on); a
    file is read as UTF-8 text. A named pipe, a device, an empty or a binary file is
    refused, saying what it is (a pipe is never opened).

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
    try:
        mode = os.stat(path).st_mode  # never opens: a named pipe would block a reader
    except (FileNotFoundError, NotADirectoryError):
        raise LookupFailed(
            f"unknown dataset '{name_or_path}' (not a registered name or an existing path)."
            f"{did_you_mean(name_or_path, registry.datasets)}"
        ) from None
    if stat.S_ISDIR(mode):
        if kind == "text":
            from genzoo.data.idx import find_idx_file

            what = ("a directory of IDX files" if find_idx_file(path, "train-images-idx3-ubyte")
                    else "a directory")
            raise DataError(f"{path} is {what}, but this model needs text ({TEXT_FILE})")
        from genzoo.data.images import load_idx_dir

        return load_idx_dir(path)
    special = special_kind(mode)
    if special is not None:
        raise not_a_file(path, special)
    if kind == "image":
        raise DataError(_not_images(path, read_file(path, HEAD)))
    data = read_file(path)
    if not data:
        raise DataError(f"{path} is an empty file; a text model needs UTF-8 text of at least "
                        "two characters")
    binary = binary_kind(data[:HEAD])
    if binary is not None:
        raise DataError(f"{describe_binary(path, binary)}; a text model trains on UTF-8 text")
    return TextData(path.name, decode_utf8(data, path), source=str(path))


TEXT_FILE = "a UTF-8 text file"
IDX_FILES = "train-images-idx3-ubyte[.gz], t10k-images-idx3-ubyte[.gz] and their labels"


def _not_images(path: Path, head: bytes) -> str:
    """Why the file ``path`` (starting with ``head``) is not image data, and what is."""
    what = binary_kind(head) if head else "an empty file"
    if what == "an IDX file" or (what == "a gzip archive" and "idx" in path.name.lower()):
        return (f"{path} is one IDX file; give the directory that holds it ({path.parent}), "
                f"with {IDX_FILES}")
    if what is not None and what.endswith(" image"):
        return (f"{path} is {what}; this model trains on a directory of IDX files "
                f"({IDX_FILES}), not on image files")
    found = "a text file" if what is None else what
    return (f"{path} is {found}, but this model needs images: a directory of IDX files "
            f"({IDX_FILES})")


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
