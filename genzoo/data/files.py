"""Opening the files users name as data, safely: what a path is, and reading it.

A dataset path may be anything the filesystem holds: a named pipe (opening one for
reading waits for a writer, for ever), a device such as ``/dev/null`` or ``/dev/zero``
(empty, or endless), a socket, an empty file, a binary file (an image, an archive)
given where text is expected. Each is told apart from a ``stat`` or from the first
bytes, never by blocking on a read, so the error can say what the path is.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from genzoo.errors import DataError

HEAD = 8192  # bytes read to tell binary from text

# The first bytes of common binary formats someone may hand to a text model by mistake.
SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF87a", "a GIF image"),
    (b"GIF89a", "a GIF image"),
    (b"II*\x00", "a TIFF image"),
    (b"MM\x00*", "a TIFF image"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"PK\x03\x04", "a zip archive"),
    (b"BZh", "a bzip2 archive"),
    (b"\xfd7zXZ\x00", "an xz archive"),
    (b"%PDF-", "a PDF document"),
    (b"\x7fELF", "a program (ELF)"),
    (b"\x93NUMPY", "a NumPy array file"),
)
_IDX_TYPES = {0x08, 0x09, 0x0B, 0x0C, 0x0D, 0x0E}
_CONTROL = set(range(0x20)) - {0x08, 0x09, 0x0A, 0x0C, 0x0D, 0x1B}  # not in text files


def special_kind(mode: int) -> str | None:
    """What a non-regular, non-directory file is (``None`` for a file or a folder).

    Examples:
        >>> import stat
        >>> special_kind(stat.S_IFIFO), special_kind(stat.S_IFREG)
        ('a named pipe (FIFO)', None)
    """
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        return None
    return "not a regular file"


def not_a_file(path: Path | str, kind: str) -> DataError:
    """The error for data at ``path``, which is ``kind`` (a pipe, a device, ...)."""
    return DataError(f"{path} is {kind}, not a file or folder; genzoo reads datasets from "
                     "regular files (text) and folders (IDX images)")


def path_stat(path: Path) -> os.stat_result:
    """``os.stat(path)``; a path that cannot be looked at is a ``DataError`` naming it."""
    try:
        return os.stat(path)
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror or exc}") from None


def check_regular(path: Path) -> os.stat_result:
    """Refuse a path that is a pipe, a device or a socket, without opening it."""
    found = path_stat(path)
    kind = special_kind(found.st_mode)
    if kind is not None:
        raise not_a_file(path, kind)
    return found


def read_file(path: Path, limit: int | None = None) -> bytes:
    """The bytes of the regular file ``path`` (its first ``limit`` bytes when given).

    The file is opened without blocking and checked to be a regular file before it is
    read, so a named pipe put in its place is refused rather than waited on.
    """
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0)
                     | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        if exc.errno == errno.ENXIO:  # what opening a socket says
            raise not_a_file(path, "a socket") from None
        raise DataError(f"cannot read {path}: {exc.strerror or exc}") from None
    with os.fdopen(fd, "rb") as f:
        mode = os.fstat(f.fileno()).st_mode
        if stat.S_ISDIR(mode):
            raise DataError(f"{path} is a folder, not a file")
        kind = special_kind(mode)
        if kind is not None:
            raise not_a_file(path, kind)
        try:
            return f.read() if limit is None else f.read(limit)
        except OSError as exc:
            raise DataError(f"cannot read {path}: {exc.strerror or exc}") from None


def binary_kind(head: bytes) -> str | None:
    """What the first bytes of a file say it is, when that is not text: a known binary
    format, text in another encoding than UTF-8, or bytes no text holds. ``None`` for
    what may be text.

    Examples:
        >>> binary_kind(b"\\x89PNG\\r\\n\\x1a\\n...."), binary_kind(b"To be, or not to be")
        ('a PNG image', None)
        >>> binary_kind(b"\\xff\\xfeh\\x00i\\x00")
        'UTF-16 text'
    """
    for magic, what in SIGNATURES:
        if head.startswith(magic):
            return what
    if len(head) >= 4 and head[:2] == b"\x00\x00" and head[2] in _IDX_TYPES and 1 <= head[3] <= 4:
        return "an IDX file"
    if head.startswith((b"\xff\xfe\x00\x00", b"\x00\x00\xfe\xff")):
        return "UTF-32 text"
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "UTF-16 text"
    if b"\x00" in head:
        return "a binary file"
    controls = sum(1 for byte in head if byte in _CONTROL)
    if head and controls > len(head) // 10:  # text has tabs and newlines, not these
        return "a binary file"
    return None


def describe_binary(path: Path | str, what: str) -> str:
    """``path is <what>, not text`` for a text model's error message."""
    if what.endswith(" text"):  # UTF-16, UTF-32: text, in another encoding
        return (f"{path} is {what}, not UTF-8; save it as UTF-8 (for example with "
                f"`iconv -f {what.split()[0]} -t UTF-8`)")
    kind = what if what == "a binary file" else f"a binary file ({what})"
    return f"{path} is {kind}, not text"
