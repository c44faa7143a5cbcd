"""Fetching dataset files: mirrors in order, a progress bar, verification, atomic placement.

A download goes to a temporary file beside its destination, is checked against the
known size and sha256, and only then renamed into place, so the cache never holds a
partial or corrupt file. ``GENZOO_MIRROR=URL`` replaces the canonical mirrors with one
base URL laid out like ``../shared/data`` (``URL/mnist/train-images-idx3-ubyte.gz``).
"""

from __future__ import annotations

import hashlib
import os
import socket
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from genzoo.config import seconds_from_env
from genzoo.errors import ConfigError, DataError


@dataclass(frozen=True)
class RemoteFile:
    """A file of a downloadable dataset, with what it must be."""

    path: str  # relative to the data directory, e.g. "mnist/t10k-labels-idx1-ubyte.gz"
    size: int
    sha256: str


# The canonical files: sizes and sha256 from ../shared/data/SHA256SUMS.
KNOWN_FILES = {f.path: f for f in (
    RemoteFile("mnist/train-images-idx3-ubyte.gz", 9912422,
               "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609"),
    RemoteFile("mnist/train-labels-idx1-ubyte.gz", 28881,
               "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c"),
    RemoteFile("mnist/t10k-images-idx3-ubyte.gz", 1648877,
               "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6"),
    RemoteFile("mnist/t10k-labels-idx1-ubyte.gz", 4542,
               "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6"),
    RemoteFile("fashion-mnist/train-images-idx3-ubyte.gz", 26421880,
               "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84"),
    RemoteFile("fashion-mnist/train-labels-idx1-ubyte.gz", 29515,
               "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845"),
    RemoteFile("fashion-mnist/t10k-images-idx3-ubyte.gz", 4422102,
               "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073"),
    RemoteFile("fashion-mnist/t10k-labels-idx1-ubyte.gz", 5148,
               "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5"),
    RemoteFile("tinyshakespeare/input.txt", 1115394,
               "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"),
)}

# Canonical mirrors per directory, tried in order.
MIRRORS = {
    "mnist": ("https://ossci-datasets.s3.amazonaws.com/mnist/",
              "https://storage.googleapis.com/cvdf-datasets/mnist/"),
    "fashion-mnist": ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
                      "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/"
                      "master/data/fashion/"),
    "tinyshakespeare": ("https://raw.githubusercontent.com/karpathy/char-rnn/master/data/"
                        "tinyshakespeare/",
                        "https://cdn.jsdelivr.net/gh/karpathy/char-rnn@master/data/"
                        "tinyshakespeare/"),
}


def urls_for(path: str) -> list[str]:
    """Where ``path`` can be fetched from, in order (``GENZOO_MIRROR`` replaces all)."""
    mirror = os.environ.get("GENZOO_MIRROR")
    if mirror:
        if not mirror.startswith(("http://", "https://", "file://")):
            raise ConfigError(f"GENZOO_MIRROR must be a URL starting with http://, https:// "
                              f"or file://, not {mirror!r}")
        return [mirror.rstrip("/") + "/" + path]
    subdir, _, name = path.partition("/")
    return [base + name for base in MIRRORS.get(subdir, ())]


def timeout() -> float:
    """Seconds a download attempt waits for the server: ``GENZOO_DOWNLOAD_TIMEOUT``, 30."""
    return seconds_from_env("GENZOO_DOWNLOAD_TIMEOUT", 30)


def verify_file(path: Path, expected: RemoteFile, remedy: str = "delete it to fetch it again"
                ) -> None:
    """Check a file's size and sha256; a mismatch names the file and what was expected.

    ``remedy`` ends the message: a cached file can be deleted and fetched again, a file in
    ``GENZOO_DATA_DIR`` must be replaced.
    """
    try:
        size = path.stat().st_size
        if size != expected.size:
            raise DataError(f"{path} has {size} bytes, expected {expected.size} (truncated or "
                            f"wrong file; {remedy})")
        digest = hashlib.sha256()
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror or exc}") from None
    if digest.hexdigest() != expected.sha256:
        raise DataError(f"{path} is corrupt: sha256 {digest.hexdigest()[:12]}..., expected "
                        f"{expected.sha256[:12]}... ({remedy})")


class _Progress:
    def __init__(self, label: str, total: int):
        self.bar = None
        if sys.stderr.isatty():
            from rich.progress import (BarColumn, DownloadColumn, Progress, TextColumn,
                                       TransferSpeedColumn)

            self.bar = Progress(TextColumn(label), BarColumn(), DownloadColumn(),
                                TransferSpeedColumn(), transient=True)
            self.bar.start()
            self.task = self.bar.add_task(label, total=total)
        else:
            print(f"genzoo: downloading {label} ({total:,} bytes)", file=sys.stderr)

    def advance(self, n: int) -> None:
        if self.bar is not None:
            self.bar.advance(self.task, n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


def _fetch(url: str, dest: Path, expected: RemoteFile, wait: float) -> None:
    tmp = dest.with_name(f".{dest.name}.part-{os.getpid()}")
    progress = None
    try:
        with urllib.request.urlopen(url, timeout=wait) as response, open(tmp, "wb") as f:
            progress = _Progress(f"{expected.path} from {url.split('/')[2]}", expected.size)
            digest = hashlib.sha256()
            received = 0
            while chunk := response.read(1 << 16):
                f.write(chunk)
                digest.update(chunk)
                received += len(chunk)
                progress.advance(len(chunk))
                if received > expected.size:
                    raise DataError(f"{url} sent more than the expected {expected.size} bytes")
            f.flush()
            os.fsync(f.fileno())
        if received != expected.size:
            raise DataError(f"{url} sent {received} bytes, expected {expected.size}")
        if digest.hexdigest() != expected.sha256:
            raise DataError(f"{url} sent a file whose sha256 does not match")
        os.replace(tmp, dest)
    finally:
        if progress is not None:
            progress.close()
        tmp.unlink(missing_ok=True)


def download(expected: RemoteFile, root: Path) -> Path:
    """Fetch one file into ``root`` (the cache), trying each mirror in turn."""
    dest = root / expected.path
    wait = timeout()  # a bad GENZOO_DOWNLOAD_TIMEOUT is refused before anything is done
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"cannot create the cache folder {dest.parent}: "
                        f"{exc.strerror or exc}; set XDG_CACHE_HOME to a writable folder, or "
                        "GENZOO_DATA_DIR to a folder holding the dataset") from None
    remove_stale_parts(dest)
    failures, reached = [], False
    for url in urls_for(expected.path):
        try:
            _fetch(url, dest, expected, wait)
            return dest
        except DataError as exc:  # the server answered, with the wrong file
            failures.append(str(exc))
            reached = True
        except urllib.error.HTTPError as exc:  # the server answered, without the file
            failures.append(f"{url}: HTTP {exc.code} {exc.reason}")
            reached = True
        except (urllib.error.URLError, OSError, socket.timeout) as exc:
            reason = getattr(exc, "reason", exc)
            failures.append(f"{url}: {reason}")
    raise DownloadFailed(expected.path, failures, reached)


def remove_stale_parts(dest: Path) -> None:
    """Remove temporary files of downloads into ``dest`` whose process has died (killed
    mid-transfer: ``.NAME.part-PID``); a live process's download is left alone."""
    for part in dest.parent.glob(f".{dest.name}.part-*"):
        pid = part.name.rpartition("-")[2]
        if pid.isdigit() and not _alive(int(pid)):
            part.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, owned by someone else
        return True
    return True


class DownloadFailed(DataError):
    """Every mirror failed; ``reached``: at least one answered, with the wrong file."""

    def __init__(self, path: str, failures: list[str], reached: bool = False):
        self.path = path
        self.failures = failures
        self.reached = reached
        super().__init__(f"could not download {path}: " + "; ".join(failures or ["no mirror"]))
