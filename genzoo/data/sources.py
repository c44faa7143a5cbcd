"""Where dataset files come from: ``GENZOO_DATA_DIR`` first, then the user cache."""

from __future__ import annotations

import os
from pathlib import Path

from genzoo.errors import DataError

OFFLINE_DATASETS = ("digits", "python-docs")


def data_dir() -> Path | None:
    """The directory named by ``GENZOO_DATA_DIR``, if set."""
    value = os.environ.get("GENZOO_DATA_DIR")
    return Path(value).expanduser() if value else None


def cache_dir() -> Path:
    """``$XDG_CACHE_HOME/genzoo``, by default ``~/.cache/genzoo``."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "genzoo"


def candidates(subdir: str) -> list[Path]:
    """The directories searched for a dataset, in lookup order."""
    found = []
    root = data_dir()
    if root is not None:
        found.append(root / subdir)
    found.append(cache_dir() / subdir)
    return found


def locate(name: str, subdir: str, files: tuple[str, ...]) -> Path:
    """Return the first directory that holds every file of a dataset."""
    for directory in candidates(subdir):
        if all((directory / f).is_file() for f in files):
            return directory
    searched = ", ".join(str(p) for p in candidates(subdir))
    raise DataError(
        f"dataset '{name}' is not available offline (searched {searched}); set "
        f"GENZOO_DATA_DIR to a directory holding {subdir}/, or use a bundled dataset: "
        f"{', '.join(OFFLINE_DATASETS)}"
    )


def is_available(subdir: str, files: tuple[str, ...]) -> bool:
    return any(all((d / f).is_file() for f in files) for d in candidates(subdir))
