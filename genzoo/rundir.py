"""One training run on disk: its folder, its files and its lock (``RunDir``).

A run folder is genzoo's alone: a folder that is not a run is never written into (unless
empty), ``--overwrite`` deletes only the files genzoo writes, and no write or delete
follows a link out of the folder (see the docs' "Checkpoints and resume" page).
"""

from __future__ import annotations

import contextlib
import fnmatch
import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from genzoo.checkpoint import (CHECKPOINT_NAME, WEIGHTS, check_checkpoint_folder,
                               complete_checkpoints)
from genzoo.config import is_whole
from genzoo.errors import CheckpointError
from genzoo.files import (atomic_write_bytes, atomic_write_json, open_new, read_json,
                          remove_file, remove_path)
from genzoo.runlock import LOCK_NAME, NOFOLLOW, RunLock, is_locked


def _alive(pid: int) -> bool:
    """Whether a process with this pid exists (another user's counts)."""
    if pid == os.getpid():
        return False  # this process writes no temporary file while it tidies up
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True
    return True


def _config_problem(config: Mapping[str, Any]) -> str | None:
    """What is wrong with the shape of a run's config.json (edited by hand, or damaged), or
    ``None``: the values themselves are checked where they are used."""
    for key in ("model", "backend", "preset", "dataset"):
        if not isinstance(config[key], str) or not config[key]:
            return f"'{key}' is {config[key]!r}, not a name"
    for key in ("model_config", "train_config"):
        if not isinstance(config[key], dict):
            return f"'{key}' is {type(config[key]).__name__}, not an object"
    info = config["data_info"]
    if not isinstance(info, dict) or info.get("kind") not in ("image", "text"):
        return "'data_info' has no kind ('image' or 'text')"
    if info["kind"] == "image":
        shape = info.get("shape")
        if not isinstance(shape, list) or len(shape) != 3 or not all(is_whole(d, 1)
                                                                        for d in shape):
            return f"'data_info' shape is {shape!r}, not [height, width, channels]"
    elif not isinstance(info.get("vocab"), str) or not info["vocab"]:
        return "'data_info' has no vocabulary"
    classes = info.get("classes", [])
    if not isinstance(classes, list) or not all(isinstance(c, str) for c in classes):
        return f"'data_info' classes is {classes!r}, not a list of class names"
    return None


class RunDir:
    """One training run on disk (see the docs' "Checkpoints and resume" page)."""

    CONFIG = "config.json"
    META = "meta.json"
    METRICS = "metrics.jsonl"
    RUN_FILES = (CONFIG, META, WEIGHTS, METRICS, "best.safetensors", "samples.png",
                 "samples.txt")
    # Made from a run's final weights after training: stale once the weights change.
    DERIVED_FILES = ("eval.json", "eval-*.json", "sample-seed*.png", "interpolate-*-*.png")

    # What genzoo writes into a run folder besides those: its lock, its temporary files
    # (``.model.safetensors.tmp-PID``, a write probe) and ``checkpoints/``.
    TEMPORARY = re.compile(r"\.(?P<name>.+)\.tmp-(?P<pid>\d+)|\.write-test-(?P<probe>\d+)")

    def __init__(self, path: Path | str):
        self.path = Path(path).expanduser()
        self.lock = RunLock(self.path)  # held while this process trains the run
        self.replacing = False  # prepare(overwrite=True) met a run: replace() removes it

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    def holds_run(self) -> bool:
        return (self.path / self.CONFIG).is_file()

    @classmethod
    def owns(cls, name: str) -> bool:
        """Whether genzoo writes a file of this name into a run folder."""
        return name in cls.RUN_FILES or any(fnmatch.fnmatchcase(name, pattern)
                                            for pattern in cls.DERIVED_FILES)

    def _temporary_pid(self, name: str) -> int | None:
        """The writer's pid if ``name`` is one of genzoo's temporary files, else ``None``."""
        found = self.TEMPORARY.fullmatch(name)
        if found is None or (found["name"] is not None and not self.owns(found["name"])):
            return None
        return int(found["pid"] or found["probe"])

    def prepare(self, *, overwrite: bool = False) -> None:
        """Create the directory, check it is writable, take its lock, and refuse to clobber
        a run (or, even with ``overwrite``, another tool's folder, or a run another
        process is training).

        A folder that is not a genzoo run must be new or empty. A run killed before its
        first checkpoint (nothing to resume, nothing kept) is replaced without
        ``overwrite``. With ``overwrite``, the old run stays until ``replace()``: the new
        run calls it once its data and model are ready, so a run that cannot start
        destroys nothing. The caller releases ``self.lock`` when training ends.
        """
        if self.holds_run():
            with contextlib.suppress(CheckpointError):  # (check_target names what is wrong)
                self.read_config()
                self.record_killed()
        stuck = self.check_target(overwrite=overwrite)
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            probe = self.path / f".write-test-{os.getpid()}"
            os.close(open_new(probe))
            probe.unlink()
        except OSError as exc:
            raise CheckpointError(
                f"cannot write to {self.path}: {exc.strerror or exc}"
            ) from None
        self.lock.acquire()
        self.remove_temporaries()
        self.replacing = stuck

    def check_target(self, *, overwrite: bool = False) -> bool:
        """Refuse, without touching anything, what ``prepare`` refuses: a file, another
        tool's folder, a run unless ``overwrite``. Whether a run there is replaced (it
        is overwritten, or was killed before its first checkpoint)."""
        if self.path.exists() and not self.path.is_dir():
            raise CheckpointError(f"{self.path} is a file; give a folder for the run")
        if self.path.is_dir() and not self.holds_run():
            foreign = sorted(p.name for p in self.path.iterdir()
                             if p.name != LOCK_NAME and self._temporary_pid(p.name) is None)
            if foreign:
                shown = ", ".join(foreign[:3]) + (", ..." if len(foreign) > 3 else "")
                raise CheckpointError(
                    f"{self.path} is not empty and is not a genzoo run (it holds {shown}); "
                    "give a new or empty folder for the run")
        stuck = False
        if self.holds_run():
            self.read_config()  # a folder genzoo did not write is never overwritten
            stuck = self.killed_before_checkpoint()
            if not overwrite and not stuck:
                raise CheckpointError(
                    f"{self.path} already holds a run; replace it (--overwrite, or "
                    f"overwrite=True) or continue it (--resume {self.path}, or genzoo.resume)"
                )
        self.check_layout()
        return self.holds_run() and (overwrite or stuck)

    def check_layout(self) -> None:
        """Refuse a run folder whose genzoo-named entries are not what genzoo writes there:
        ``checkpoints`` a link or a file, a folder where genzoo writes a file."""
        check_checkpoint_folder(self.checkpoints)
        latest = self.checkpoints / "latest"
        if latest.is_dir() and not latest.is_symlink():
            raise CheckpointError(f"{latest} is a folder, and genzoo writes a file of that "
                                  "name; move it out of the run folder")
        if self.path.is_dir():
            for entry in self.path.iterdir():
                if self.owns(entry.name) and entry.is_dir() and not entry.is_symlink():
                    raise CheckpointError(f"{entry} is a folder, and genzoo writes a file "
                                          "of that name; move it out of the run folder")

    def killed_before_checkpoint(self) -> bool:
        """Whether this run's process died before it wrote a checkpoint or its weights:
        nothing to resume and nothing kept, so training into it again loses nothing."""
        if os.path.lexists(self.path / WEIGHTS) or complete_checkpoints(self.checkpoints):
            return False
        meta = self.meta()
        return (meta is None or meta.get("status") in ("running", "killed")) \
            and is_locked(self.path) is False

    def record_killed(self) -> None:
        """Write "killed" into meta.json of a run whose process died without recording why
        (it still says "running" and nobody holds its lock). Best effort: a run folder
        that cannot be written is left as it is."""
        meta = self.meta()
        if not meta or meta.get("status") != "running" or is_locked(self.path) is not False:
            return
        lock = RunLock(self.path)
        with contextlib.suppress(CheckpointError):
            with lock:  # nobody starts training it meanwhile
                if lock.held and (self.meta() or {}).get("status") == "running":
                    self.write_json(self.META, {**meta, "status": "killed", "error": (
                        "the training process ended without recording why (killed, out of "
                        "memory, or the machine stopped)")})

    def remove_temporaries(self) -> None:
        """Remove the temporary files of genzoo writers that died mid-write."""
        for entry in self.path.iterdir() if self.path.is_dir() else ():
            pid = self._temporary_pid(entry.name)
            if pid is not None and not entry.is_dir() and not _alive(pid):
                with contextlib.suppress(OSError):
                    entry.unlink()

    def replace(self) -> None:
        """Remove the run that ``prepare(overwrite=True)`` kept (a no-op otherwise): only
        the files genzoo wrote; another tool's files in the folder stay."""
        if not self.replacing:
            return
        for name in self.RUN_FILES:
            remove_file(self.path / name)
        self.remove_derived()
        directory = self.checkpoints
        if directory.is_dir() and not directory.is_symlink():
            for entry in directory.iterdir():
                name = entry.name
                if (name == "latest" or CHECKPOINT_NAME.fullmatch(name)
                        or name.startswith((".tmp-step-", ".old-step-", "corrupt-step-"))):
                    remove_path(entry)
            with contextlib.suppress(OSError):
                directory.rmdir()  # kept when another tool's files are in it
        self.replacing = False

    def meta(self) -> dict[str, Any] | None:
        """``meta.json``, or ``None`` if there is none to read."""
        try:
            meta = read_json(self.path / self.META)
        except CheckpointError:
            return None
        return meta if isinstance(meta, dict) else None

    def status(self, meta: Mapping[str, Any] | None = None) -> str | None:
        """The ``status`` in meta.json (``None`` if there is none to read), with one
        inference: "running" while no process holds the run's lock is "killed" (the
        process ended without recording why: ``kill -9``, out of memory, power loss).

        ``meta`` saves reading meta.json again when the caller has it.
        """
        status = (meta if meta is not None else self.meta() or {}).get("status")
        if status == "running" and is_locked(self.path) is False:
            return "killed"
        return status

    def remove_derived(self) -> None:
        """Remove evaluations and samples made from the run's earlier weights."""
        for pattern in self.DERIVED_FILES:
            for path in self.path.glob(pattern):
                remove_file(path)

    def remove_if_empty(self, *, folder: bool = True) -> None:
        """After a failed start: remove the lock file this process holds if nothing else
        was written, then (``folder``: it was made for this run) the folder if empty."""
        try:
            if self.lock.held and [p.name for p in self.path.iterdir()] == [LOCK_NAME]:
                (self.path / LOCK_NAME).unlink()  # while still held: nobody takes it meanwhile
            self.lock.release()  # before rmdir, for file systems that refuse open files
            if folder:
                self.path.rmdir()
        except OSError:  # not empty, or already gone
            pass
        finally:
            self.lock.release()

    REQUIRED = ("model", "backend", "preset", "dataset", "model_config", "train_config",
                "data_info")

    def read_config(self) -> dict[str, Any]:
        """The run's ``config.json``; a folder that holds none, or another tool's, is an error."""
        if not self.holds_run():
            raise CheckpointError(f"{self.path} does not exist" if not self.path.exists() else
                                  f"{self.path} is not a genzoo run (no {self.CONFIG})")
        config = read_json(self.path / self.CONFIG)
        if not isinstance(config, dict) or any(k not in config for k in self.REQUIRED):
            raise CheckpointError(f"{self.path} is not a genzoo run (its {self.CONFIG} was not "
                                  "written by genzoo)")
        problem = _config_problem(config)
        if problem:
            raise CheckpointError(f"{self.path / self.CONFIG} is damaged: {problem}")
        return config

    def write_json(self, name: str, obj: Any) -> None:
        atomic_write_json(self.path / name, obj)

    def log(self, record: Mapping[str, Any]) -> None:
        """Append one event to metrics.jsonl (a line is written whole or not at all)."""
        line = (json.dumps(record, sort_keys=True) + "\n").encode()
        path = self.path / self.METRICS
        try:  # never through a link (a resume replaces one with the run's own file first)
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | NOFOLLOW, 0o644)
            try:
                os.write(fd, line)
            finally:
                os.close(fd)
        except OSError as exc:
            why = "it is a symbolic link" if path.is_symlink() else exc.strerror or exc
            raise CheckpointError(f"cannot write {path}: {why}") from exc

    def events(self) -> list[dict[str, Any]]:
        """Every event in metrics.jsonl, in order. A stray line is skipped: one cut short by
        a kill, one that is not a JSON object, or one whose step is not a whole number."""
        path = self.path / self.METRICS
        if not path.is_file():
            return []
        events = []
        for line in path.read_bytes().decode("utf-8", "replace").splitlines():
            try:
                event = json.loads(line)
            except (ValueError, RecursionError):
                continue
            if isinstance(event, dict) and ("step" not in event or is_whole(event["step"], 0)):
                events.append(event)
        return events

    def truncate_log(self, step: int) -> None:
        """Drop events after ``step`` (a resumed run logs those steps again), and any test
        pass (a run that finishes logs its own). A link there is replaced by the run's
        own file."""
        path = self.path / self.METRICS
        if not os.path.lexists(path):
            return
        kept = [json.dumps(e, sort_keys=True) + "\n" for e in self.events()
                if e.get("step", 0) <= step and e.get("event") != "test"]
        atomic_write_bytes(path, "".join(kept).encode())
