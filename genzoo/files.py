"""Files written whole or not at all: atomic writes that never follow a link, JSON read
defensively, safetensors without pickle.

Every file is written to a new temporary name (never through an existing link) and
renamed into place, so a crash or a full disk leaves the old file, and a link at the
target is replaced rather than written through. Reading JSON refuses what genzoo would
never have written (a FIFO, a file of gigabytes, nesting too deep to parse) by name.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from genzoo.errors import CheckpointError, one_line
from genzoo.runlock import NOFOLLOW

# -- atomic primitives ---------------------------------------------------------------------

def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def open_new(path: Path, flags: int = os.O_WRONLY) -> int:
    """A new file at ``path``, never through a symbolic link: a stale file or link of the
    same name (a temporary file left by a killed process) is removed first."""
    flags |= os.O_CREAT | os.O_EXCL | NOFOLLOW
    try:
        return os.open(path, flags, 0o644)
    except FileExistsError:
        os.unlink(path)  # removes a link itself, never its target
        return os.open(path, flags, 0o644)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename.

    Neither the temporary file nor ``path`` is followed if it is a symbolic link: the
    rename replaces a link at ``path`` with the new file, and its target is untouched.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with os.fdopen(open_new(tmp), "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):  # e.g. its folder is a file: nothing was made
            tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError):  # a full disk, a missing folder: one clear line
            raise CheckpointError(f"cannot write {path}: {exc.strerror or exc}") from exc
        raise
    _fsync_dir(path.parent)


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())


JSON_LIMIT = 64 << 20  # bytes: far above any JSON file genzoo writes (they are kilobytes)


def read_json(path: Path, limit: int = JSON_LIMIT) -> Any:
    """A JSON file's contents; anything else (missing, not a regular file, over ``limit``
    bytes, nested too deeply to parse, not JSON) is a ``CheckpointError`` naming it."""
    path = Path(path)
    try:
        info = os.stat(path)
        if not stat.S_ISREG(info.st_mode):  # a FIFO would block, a device never end
            raise CheckpointError(f"{path} is not a regular file")
        if info.st_size > limit:
            raise CheckpointError(f"{path} is {info.st_size:,} bytes, too large to be a "
                                  f"JSON file genzoo wrote (at most {limit:,})")
        return parse_json(Path(path).read_bytes(), path)
    except FileNotFoundError:
        raise CheckpointError(f"{path} does not exist") from None
    except OSError as exc:
        raise CheckpointError(f"cannot read {path}: {exc.strerror or exc}") from None


def parse_json(text: str | bytes, path: Path | str) -> Any:
    """``json.loads``, with every failure a ``CheckpointError`` naming ``path``."""
    try:
        return json.loads(text)
    except RecursionError:
        raise CheckpointError(f"{path} is not valid JSON (nested too deeply)") from None
    except (UnicodeDecodeError, ValueError) as exc:  # ValueError: JSONDecodeError, huge ints
        raise CheckpointError(f"{path} is not valid JSON ({one_line(str(exc))[:200]})") from None


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


# -- tensors -------------------------------------------------------------------------------

def tensors_to_bytes(tensors: Mapping[str, np.ndarray], metadata: Mapping[str, str]) -> bytes:
    from safetensors.numpy import save

    # np.ascontiguousarray would turn 0-d arrays (step counters) into shape (1,).
    arrays = {k: np.require(v, requirements="C") for k, v in tensors.items()}
    return _canonical_header(save(arrays, metadata=dict(metadata) or None))


def tensors_sha256(tensors: Mapping[str, np.ndarray]) -> str:
    """The sha256 of named tensors' contents (names, dtypes, shapes, bytes), whatever
    file format or header holds them: equal weights give equal digests.

    Examples:
        >>> a = {"w": np.zeros((2, 3), np.float32), "b": np.ones(3, np.float32)}
        >>> tensors_sha256(a) == tensors_sha256(dict(reversed(a.items())))
        True
        >>> tensors_sha256(a) == tensors_sha256({**a, "w": np.zeros((3, 2), np.float32)})
        False
        >>> tensors_sha256({"x": np.float32(1)}) == tensors_sha256({"x": np.ones(1, np.float32)})
        False
    """
    digest = hashlib.sha256()
    for name in sorted(tensors):
        value = np.asarray(tensors[name])  # (ascontiguousarray would make a scalar 1-d)
        head = json.dumps([name, value.dtype.str, list(value.shape)]).encode()
        digest.update(len(head).to_bytes(8, "little") + head)
        digest.update(value.tobytes())  # C order, whatever the array's layout
    return digest.hexdigest()


def _canonical_header(data: bytes) -> bytes:
    """The same file with its JSON header's keys sorted.

    safetensors writes the header from a hash map, so the same tensors and metadata can
    give different bytes; sorted keys make equal checkpoints byte-identical (sha256 and
    ``cmp`` agree). The data section and its offsets are untouched.
    """
    size = int.from_bytes(data[:8], "little")
    header = json.loads(data[8:8 + size])
    text = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # the format pads the header to 8 bytes with spaces
    return len(text).to_bytes(8, "little") + text + data[8 + size:]


def save_tensors(path: Path, tensors: Mapping[str, np.ndarray],
                 metadata: Mapping[str, str] | None = None) -> None:
    atomic_write_bytes(path, tensors_to_bytes(tensors, metadata or {}))


def load_tensors(path: Path) -> dict[str, np.ndarray]:
    """Read a safetensors file; a missing, truncated or foreign file names the path."""
    from safetensors.numpy import load

    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise CheckpointError(f"{path} does not exist") from None
    except OSError as exc:
        raise CheckpointError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        return load(data)
    except Exception as exc:  # safetensors raises its own error types
        raise CheckpointError(f"{path} is not a valid safetensors file ({exc})") from None


def tensor_metadata(path: Path) -> dict[str, str]:
    """The string metadata in a safetensors header."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="numpy") as f:
            return dict(f.metadata() or {})
    except Exception as exc:
        raise CheckpointError(f"{path} is not a valid safetensors file ({exc})") from None


# -- removing ---------------------------------------------------------------------------

def remove_path(path: Path) -> None:
    """Remove a file, a link (never what it points to) or a folder tree, if it exists."""
    if path.is_symlink() or (path.exists() and not path.is_dir()):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
    elif path.is_dir():  # (a real folder: not a link)
        shutil.rmtree(path, ignore_errors=True)  # rmtree never follows links inside


def remove_file(path: Path) -> None:
    """Remove a file or a link (never its target); a real folder there is left alone."""
    if path.is_symlink() or path.is_file():
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
