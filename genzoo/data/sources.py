"""Where dataset files come from: ``GENZOO_DATA_DIR``, then the user cache, then a download.

Every file with a known size and sha256 is verified before use, wherever it was found.
"""

from __future__ import annotations

import os
from pathlib import Path

from genzoo.data.download import KNOWN_FILES, DownloadFailed, download, verify_file
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


def _verify(directory: Path, subdir: str, files: tuple[str, ...]) -> Path:
    for name in files:
        known = KNOWN_FILES.get(f"{subdir}/{name}")
        if known is not None:
            verify_file(directory / name, known)
    return directory


def locate(name: str, subdir: str, files: tuple[str, ...], fetch: bool = True) -> Path:
    """Return a directory holding every (verified) file of a dataset, downloading if need be."""
    for directory in candidates(subdir):
        if all((directory / f).is_file() for f in files):
            return _verify(directory, subdir, files)
    if not fetch:
        raise DataError(f"dataset '{name}' is not available locally")
    cache = cache_dir()
    try:
        for filename in files:
            target = cache / subdir / filename
            known = KNOWN_FILES[f"{subdir}/{filename}"]
            if target.is_file():
                verify_file(target, known)
            else:
                download(known, cache)
    except DownloadFailed as exc:
        where = f"GENZOO_DATA_DIR={data_dir()}" if data_dir() else "GENZOO_DATA_DIR (unset)"
        raise DataError(
            f"dataset '{name}' is not available offline: it is not in {where} or the cache "
            f"({cache / subdir}), and the download failed ({exc.failures[0] if exc.failures else 'no mirror'}). "
            f"Set GENZOO_DATA_DIR to a directory holding {subdir}/, or use a bundled dataset: "
            f"{', '.join(OFFLINE_DATASETS)}"
        ) from None
    return cache / subdir


def status(subdir: str, files: tuple[str, ...]) -> str:
    """``local`` (in GENZOO_DATA_DIR), ``cached``, or ``download``; nothing is verified."""
    for directory, label in zip(candidates(subdir), ("local", "cached") if data_dir() else ("cached",)):
        if all((directory / f).is_file() for f in files):
            return label
    return "download"
