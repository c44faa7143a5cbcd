"""Reading and verifying IDX files (the MNIST format), gzip-compressed or not.

An IDX file is a 4-byte magic number (two zero bytes, a type code, the number of
dimensions), one big-endian uint32 per dimension, then the payload. Every file is
checked against its header before numpy sees it, so a broken file is an error that
names the file and what was expected.
"""

from __future__ import annotations

import gzip
import math
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import numpy.typing as npt

from genzoo.data.files import not_a_file, read_file, special_kind
from genzoo.errors import DataError

# The four files of an MNIST-style dataset: training and test images and labels.
IDX_FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
             "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")

_DTYPES: dict[int, npt.DTypeLike] = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_bytes(path: Path) -> bytes:
    """Read a file, decompressing it if it is gzip; a broken archive names the file."""
    raw = read_file(path)  # a named pipe in its place is refused, never waited on
    if raw[:2] == b"\x1f\x8b":
        try:
            return gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as exc:
            raise DataError(f"{path} is not a valid gzip file ({exc})") from None
    return raw


def parse_idx(data: bytes, path: Path | str = "<bytes>") -> np.ndarray:
    """Parse IDX bytes into an array, checking the magic, dimensions and payload length."""
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _DTYPES:
        raise DataError(f"{path} is not an IDX file (bad magic number {data[:4].hex() or 'empty'})")
    ndim = data[3]
    header = 4 + 4 * ndim
    if ndim == 0 or len(data) < header:
        raise DataError(f"{path} has a truncated IDX header")
    dims = struct.unpack(f">{ndim}I", data[4:header])
    dtype = np.dtype(_DTYPES[data[2]])
    expected = math.prod(dims) * dtype.itemsize  # Python ints: a crafted header cannot wrap
    if len(data) - header != expected:
        raise DataError(
            f"{path} is truncated or padded: header says {'x'.join(map(str, dims))} "
            f"({expected} payload bytes) but the file holds {len(data) - header}"
        )
    return np.frombuffer(data, dtype=dtype, offset=header).reshape(dims)


def read_idx(path: Path) -> np.ndarray:
    """Read and verify one IDX file (``.gz`` or raw)."""
    return parse_idx(read_bytes(path), path)


def find_idx_file(directory: Path, stem: str) -> Path | None:
    """Find ``stem`` or ``stem.gz`` in ``directory`` (also accepting ``.`` for ``-``)."""
    for name in (stem + ".gz", stem, stem.replace("-idx", ".idx") + ".gz",
                 stem.replace("-idx", ".idx")):
        candidate = directory / name
        try:
            if candidate.is_file():
                return candidate
            kind = special_kind(os.stat(candidate).st_mode) if candidate.exists() else None
        except OSError as exc:  # a folder that cannot be searched
            raise DataError(f"cannot read {directory}: {exc.strerror or exc}") from None
        if kind is not None:  # a pipe or a device by that name: say so, never open it
            raise not_a_file(candidate, kind)
    return None
