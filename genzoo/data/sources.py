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


def _is_file(path: Path) -> bool:
    """``path.is_file()``, but a folder that cannot be searched is an error naming it."""
    try:
        return path.is_file()
    except OSError as exc:
        raise DataError(f"cannot read {path.parent}: {exc.strerror or exc}") from None


def _is_dir(path: Path) -> bool:
    try:
        return path.is_dir()
    except OSError:
        return False


def _verify(directory: Path, subdir: str, files: tuple[str, ...], remedy: str) -> Path:
    for name in files:
        known = KNOWN_FILES.get(f"{subdir}/{name}")
        if known is not None:
            verify_file(directory / name, known, remedy)
    return directory


def locate(name: str, subdir: str, files: tuple[str, ...], fetch: bool = True) -> Path:
    """Return a directory holding every (verified) file of a dataset, downloading if need be."""
    local = data_dir()
    for directory in candidates(subdir):
        if all(_is_file(directory / f) for f in files):
            in_data_dir = local is not None and directory == local / subdir
            return _verify(directory, subdir, files, "replace it" if in_data_dir else
                           "delete it to fetch it again")
    if not fetch:
        raise DataError(f"dataset '{name}' is not available locally")
    cache = cache_dir()
    try:
        for filename in files:
            target = cache / subdir / filename
            known = KNOWN_FILES[f"{subdir}/{filename}"]
            if _is_file(target):
                verify_file(target, known)
            else:
                download(known, cache)
    except DownloadFailed as exc:
        where = f"GENZOO_DATA_DIR={local}" if local else "GENZOO_DATA_DIR (unset)"
        missing = ([f for f in files if not _is_file(local / subdir / f)]
                   if local is not None and _is_dir(local / subdir) else [])
        if missing:  # a partial copy: say what it lacks
            where += f" (its {subdir}/ lacks {', '.join(missing)})"
        failure = "; ".join(exc.failures) or "no mirror"
        raise DataError(
            f"dataset '{name}' "
            + ("could not be downloaded" if exc.reached else "is not available offline")
            + f": it is not in {where} or the cache ({cache / subdir}), and the download "
            f"failed ({failure}). Set GENZOO_DATA_DIR to a directory holding {subdir}/, or "
            f"use a bundled dataset: {', '.join(OFFLINE_DATASETS)}"
        ) from None
    return cache / subdir


def status(subdir: str, files: tuple[str, ...]) -> str:
    """``local`` (in GENZOO_DATA_DIR), ``cached``, or ``download``; nothing is verified."""
    for directory, label in zip(candidates(subdir), ("local", "cached") if data_dir() else ("cached",)):
        try:
            if all((directory / f).is_file() for f in files):
                return label
        except OSError:  # an unreadable folder: loading it will say so
            continue
    return "download"
