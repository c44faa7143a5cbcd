"""One process trains a run directory at a time.

The process that trains a run holds an advisory lock (``flock``) on ``RUN/.lock``.
A second ``genzoo train --overwrite`` or ``--resume`` of the same folder is refused
instead of deleting or interleaving the first one's files. The kernel drops the lock
when its process ends, however it ends (``kill -9`` and the out-of-memory killer
included), so the lock also tells a run that is being trained from one whose process
died before it could record why: ``meta.json`` still says "running", nobody holds the
lock, and ``RunDir.status()`` reports "killed".

Where ``fcntl`` is missing (Windows), or the file system does not support ``flock``
(some network file systems), nothing is locked and nothing is inferred.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from types import TracebackType

from genzoo.errors import CheckpointError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

LOCK_NAME = ".lock"
NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


class RunLock:
    """The exclusive lock on one run directory, held by the process that trains it."""

    def __init__(self, directory: Path | str):
        self.directory = Path(directory)
        self.path = self.directory / LOCK_NAME
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock, or raise ``CheckpointError`` naming the process that holds it."""
        if fcntl is None or self._fd is not None:
            return
        try:  # never through a link: the holder's pid would be written into its target
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | NOFOLLOW, 0o644)
        except OSError as exc:
            if os.path.islink(self.path):
                raise CheckpointError(f"{self.path} is a symbolic link; genzoo's lock file "
                                      "is a plain file in the run folder (remove the link)"
                                      ) from None
            raise CheckpointError(f"cannot write to {self.directory}: "
                                  f"{exc.strerror or exc}") from None
        for attempt in range(5):  # is_locked() holds a shared lock for an instant
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if attempt < 4:
                    time.sleep(0.05)
                    continue
                holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
                os.close(fd)
                pid = f" (pid {holder})" if holder.isdigit() else ""
                raise CheckpointError(f"{self.directory} is being trained by another process"
                                      f"{pid}; wait for it to end, or stop it first") from None
            except OSError:  # no flock on this file system: train unlocked
                os.close(fd)
                return
        self._fd = fd
        try:  # the holder's pid is only for the message above: a full disk may refuse it
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except OSError:
            pass

    @property
    def held(self) -> bool:
        """Whether this object holds the lock now."""
        return self._fd is not None

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the lock
            self._fd = None

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()


def is_locked(directory: Path | str) -> bool | None:
    """Whether a process holds the lock of ``directory``; ``None`` where it cannot be told.

    A lock this process holds counts too (``flock`` locks belong to open files).
    """
    if fcntl is None:
        return None
    try:
        fd = os.open(Path(directory) / LOCK_NAME, os.O_RDONLY | NOFOLLOW)
    except FileNotFoundError:
        return False
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:  # no flock on this file system
        return None
    finally:
        os.close(fd)  # also drops the shared lock, if it was granted
    return False
