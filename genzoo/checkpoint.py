"""The run directory and checkpoint I/O: safetensors plus JSON, written atomically.

Nothing here unpickles: tensors are read with safetensors, everything else is JSON.
Every file is written to a temporary name and renamed into place; a checkpoint is a
directory written under a temporary name and renamed, and ``checkpoints/latest`` names
the newest complete one. A crash at any moment leaves the previous checkpoint loadable.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from genzoo.config import is_whole
from genzoo.errors import CheckpointError
from genzoo.runlock import LOCK_NAME, RunLock, is_locked

FORMAT_VERSION = 1
WEIGHTS = "model.safetensors"
TRAINER = "trainer.safetensors"
STATE = "state.json"


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


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
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


def read_json(path: Path) -> Any:
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise CheckpointError(f"{path} does not exist") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path} is not valid JSON ({exc})") from None


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


# -- checkpoints ---------------------------------------------------------------------------

def checkpoint_name(step: int) -> str:
    return f"step-{step:08d}"


def checkpoint_step(path: Path) -> int:
    """The step a checkpoint folder holds, read from its name.

    Examples:
        >>> checkpoint_step(Path("runs/x/checkpoints") / checkpoint_name(1500))
        1500
    """
    return int(path.name.split("-")[-1])


def write_checkpoint(
    directory: Path,
    step: int,
    model: Mapping[str, np.ndarray],
    trainer: Mapping[str, np.ndarray],
    state: Mapping[str, Any],
    keep: int,
) -> Path:
    """Write ``directory/step-N`` atomically, point ``latest`` at it, keep the last ``keep``."""
    directory.mkdir(parents=True, exist_ok=True)
    name = checkpoint_name(step)
    final = directory / name
    tmp = directory / f".tmp-{name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        files = {}
        for filename, tensors in ((WEIGHTS, model), (TRAINER, trainer)):
            data = tensors_to_bytes(tensors, {"genzoo.format": str(FORMAT_VERSION)})
            atomic_write_bytes(tmp / filename, data)
            files[filename] = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
        atomic_write_json(tmp / STATE, {**state, "step": step, "files": files,
                                         "format": FORMAT_VERSION})
        if final.exists():  # the same step written again (after a resume): swap it out
            old = directory / f".old-{name}-{os.getpid()}"
            os.replace(final, old)
            os.replace(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final)
        _fsync_dir(directory)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    atomic_write_bytes(directory / "latest", (name + "\n").encode())
    _prune(directory, keep)
    return final


def _prune(directory: Path, keep: int) -> None:
    steps = sorted(p for p in directory.glob("step-*") if p.is_dir())
    for old in steps[:-keep] if keep > 0 else []:
        shutil.rmtree(old, ignore_errors=True)


def latest_checkpoint(directory: Path) -> Path | None:
    """The checkpoint named by ``latest``, or the newest complete one if that is broken."""
    found = complete_checkpoints(directory)
    return found[0] if found else None


def complete_checkpoints(directory: Path) -> list[Path]:
    """Every checkpoint with its ``state.json``, the one ``latest`` names first, then the
    others from newest to oldest (the order to try them in when one fails to verify)."""
    complete = sorted((p for p in directory.glob("step-*") if (p / STATE).is_file()),
                      reverse=True)
    pointer = directory / "latest"
    named = directory / pointer.read_text().strip() if pointer.is_file() else None
    if named in complete:
        complete.remove(named)
        complete.insert(0, named)
    return complete


def remove_unfinished_checkpoints(directory: Path) -> None:
    """Tidy up after a checkpoint writer that was killed mid-write.

    A temporary folder that is complete (it has its ``state.json``) and whose step has no
    checkpoint (the kill fell between the two renames that replace a checkpoint) is put
    in place; any other temporary or replaced folder is removed.
    """
    for unfinished in sorted(directory.glob(".tmp-step-*")):
        name = unfinished.name.removeprefix(".tmp-").rsplit("-", 1)[0]  # step-00000020
        if (unfinished / STATE).is_file() and not (directory / name).exists():
            os.replace(unfinished, directory / name)
        else:
            shutil.rmtree(unfinished, ignore_errors=True)
    for replaced in directory.glob(".old-step-*"):
        shutil.rmtree(replaced, ignore_errors=True)


def read_checkpoint(path: Path) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict]:
    """Load and verify a checkpoint: each tensor file must match its recorded sha256."""
    state = read_json(path / STATE)
    if not isinstance(state, dict) or state.get("format") != FORMAT_VERSION:
        raise CheckpointError(f"{path / STATE} is not a genzoo checkpoint (format {FORMAT_VERSION})")
    if not is_whole(state.get("step"), 0):
        raise CheckpointError(f"{path / STATE} is damaged: its step is {state.get('step')!r}")
    loaded = []
    for filename in (WEIGHTS, TRAINER):
        file = path / filename
        expected = state.get("files", {}).get(filename, {}).get("sha256")
        if not file.is_file():
            raise CheckpointError(f"{file} is missing")
        if expected is None or sha256_file(file) != expected:
            raise CheckpointError(
                f"{file} is corrupt: its sha256 does not match the one recorded in {STATE}"
            )
        loaded.append(load_tensors(file))
    return loaded[0], loaded[1], state


# -- the run directory ---------------------------------------------------------------------

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

    def __init__(self, path: Path | str):
        self.path = Path(path).expanduser()
        self.lock = RunLock(self.path)  # held while this process trains the run
        self.replacing = False  # prepare(overwrite=True) met a run: replace() removes it

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    def holds_run(self) -> bool:
        return (self.path / self.CONFIG).is_file()

    def prepare(self, *, overwrite: bool = False) -> None:
        """Create the directory, check it is writable, take its lock, and refuse to clobber
        a run (or, even with ``overwrite``, another tool's folder that has a
        ``config.json``, or a run another process is training).

        With ``overwrite``, the old run stays until ``replace()``: the new run calls it
        once its data and model are ready, so a run that cannot start destroys nothing.
        The caller releases ``self.lock`` when training ends.
        """
        if self.holds_run():
            self.read_config()  # a folder genzoo did not write is never overwritten
            if not overwrite:
                raise CheckpointError(
                    f"{self.path} already holds a run; replace it (--overwrite, or "
                    f"overwrite=True) or continue it (--resume {self.path}, or genzoo.resume)"
                )
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            probe = self.path / f".write-test-{os.getpid()}"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            raise CheckpointError(
                f"cannot write to {self.path}: {exc.strerror or exc}"
            ) from None
        self.lock.acquire()
        self.replacing = overwrite

    def replace(self) -> None:
        """Remove the run that ``prepare(overwrite=True)`` kept (a no-op otherwise)."""
        if not self.replacing:
            return
        for name in self.RUN_FILES:
            (self.path / name).unlink(missing_ok=True)
        self.remove_derived()
        shutil.rmtree(self.checkpoints, ignore_errors=True)
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
                path.unlink(missing_ok=True)

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
        line = json.dumps(record, sort_keys=True) + "\n"
        try:
            with open(self.path / self.METRICS, "a") as f:
                f.write(line)
        except OSError as exc:
            raise CheckpointError(f"cannot write {self.path / self.METRICS}: "
                                  f"{exc.strerror or exc}") from exc

    def events(self) -> list[dict[str, Any]]:
        """Every event in metrics.jsonl, in order (a line cut short by a kill, or any other
        line that is not a JSON object, is skipped)."""
        path = self.path / self.METRICS
        if not path.is_file():
            return []
        events = []
        for line in path.read_bytes().decode("utf-8", "replace").splitlines():
            with contextlib.suppress(json.JSONDecodeError):
                event = json.loads(line)
                if isinstance(event, dict):
                    events.append(event)
        return events

    def truncate_log(self, step: int) -> None:
        """Drop events after ``step`` (a resumed run logs those steps again), and any test
        pass (a run that finishes logs its own)."""
        path = self.path / self.METRICS
        if not path.is_file():
            return
        kept = [json.dumps(e, sort_keys=True) + "\n" for e in self.events()
                if e.get("step", 0) <= step and e.get("event") != "test"]
        atomic_write_bytes(path, "".join(kept).encode())
