"""Checkpoints: safetensors plus JSON, written atomically (the run directory is
``genzoo.rundir.RunDir``, the file primitives are in ``genzoo.files``).

Nothing here unpickles: tensors are read with safetensors, everything else is JSON.
Every file is written to a temporary name and renamed into place; a checkpoint is a
directory written under a temporary name and renamed, and ``checkpoints/latest`` names
the newest complete one. A crash at any moment leaves the previous checkpoint loadable.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from genzoo.config import is_whole
from genzoo.errors import CheckpointError
from genzoo.files import (JSON_LIMIT, atomic_write_bytes, atomic_write_json, load_tensors,
                          open_new, parse_json, read_json, remove_file, remove_path,
                          save_tensors, sha256_file, tensor_metadata, tensors_sha256,
                          tensors_to_bytes, _fsync_dir)  # importable from here too


FORMAT_VERSION = 1
WEIGHTS = "model.safetensors"
TRAINER = "trainer.safetensors"
STATE = "state.json"


# -- checkpoints ---------------------------------------------------------------------------

CHECKPOINT_NAME = re.compile(r"step-(\d{8,})")  # checkpoint_name(); anything else is foreign


def checkpoint_name(step: int) -> str:
    return f"step-{step:08d}"


def checkpoint_step(path: Path) -> int:
    """The step a checkpoint folder holds, read from its name.

    Examples:
        >>> checkpoint_step(Path("runs/x/checkpoints") / checkpoint_name(1500))
        1500
    """
    found = CHECKPOINT_NAME.fullmatch(path.name)
    if found is None:
        raise CheckpointError(f"{path} is not a genzoo checkpoint (its name is not step-N)")
    return int(found.group(1))


def check_checkpoint_folder(directory: Path) -> None:
    """Refuse a ``checkpoints`` folder that is a link or a file: genzoo writes and prunes
    checkpoints only inside the run's own folder."""
    if directory.is_symlink():
        raise CheckpointError(f"{directory} is a symbolic link; genzoo keeps a run's "
                              "checkpoints inside its folder (replace the link with a folder)")
    if directory.exists() and not directory.is_dir():
        raise CheckpointError(f"{directory} is a file, not genzoo's checkpoints folder")


def _checkpoint_folders(directory: Path) -> list[Path]:
    """genzoo's checkpoint folders (named step-N, not links), oldest first; another tool's
    entries (``step-00000010-backup``, a link, a file) are left alone."""
    if not directory.is_dir() or directory.is_symlink():
        return []
    return sorted(p for p in directory.iterdir() if CHECKPOINT_NAME.fullmatch(p.name)
                  and not p.is_symlink() and p.is_dir())


def write_checkpoint(
    directory: Path,
    step: int,
    model: Mapping[str, np.ndarray],
    trainer: Mapping[str, np.ndarray],
    state: Mapping[str, Any],
    keep: int,
) -> Path:
    """Write ``directory/step-N`` atomically, point ``latest`` at it, keep the last ``keep``."""
    check_checkpoint_folder(directory)
    directory.mkdir(parents=True, exist_ok=True)
    name = checkpoint_name(step)
    final = directory / name
    tmp = directory / f".tmp-{name}-{os.getpid()}"
    remove_path(tmp)
    tmp.mkdir()
    try:
        files = {}
        for filename, tensors in ((WEIGHTS, model), (TRAINER, trainer)):
            data = tensors_to_bytes(tensors, {"genzoo.format": str(FORMAT_VERSION)})
            atomic_write_bytes(tmp / filename, data)
            files[filename] = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
        atomic_write_json(tmp / STATE, {**state, "step": step, "files": files,
                                         "format": FORMAT_VERSION})
        if final.exists() or final.is_symlink():  # the same step again (after a resume)
            old = directory / f".old-{name}-{os.getpid()}"
            remove_path(old)
            os.replace(final, old)
            os.replace(tmp, final)
            remove_path(old)
        else:
            os.replace(tmp, final)
        _fsync_dir(directory)
    except BaseException:
        remove_path(tmp)
        raise
    atomic_write_bytes(directory / "latest", (name + "\n").encode())
    _prune(directory, keep)
    return final


def _prune(directory: Path, keep: int) -> None:
    steps = _checkpoint_folders(directory)
    for old in steps[:-keep] if keep > 0 else []:
        remove_path(old)


def latest_checkpoint(directory: Path) -> Path | None:
    """The checkpoint named by ``latest``, or the newest complete one if that is broken."""
    found = complete_checkpoints(directory)
    return found[0] if found else None


def _pointer(directory: Path) -> str | None:
    """The checkpoint name in ``directory/latest``; ``None`` when it holds anything else
    (bytes that are not a name, a link, a folder)."""
    pointer = directory / "latest"
    if pointer.is_symlink() or not pointer.is_file():
        return None
    try:
        with open(pointer, "rb") as f:
            text = f.read(64).decode("ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return text if CHECKPOINT_NAME.fullmatch(text) else None


def complete_checkpoints(directory: Path) -> list[Path]:
    """Every checkpoint with its ``state.json``, the one ``latest`` names first, then the
    others from newest to oldest (the order to try them in when one fails to verify)."""
    complete = [p for p in reversed(_checkpoint_folders(directory)) if (p / STATE).is_file()]
    named = _pointer(directory)
    if named is not None and directory / named in complete:
        complete.remove(directory / named)
        complete.insert(0, directory / named)
    return complete


def remove_unfinished_checkpoints(directory: Path) -> None:
    """Tidy up after a checkpoint writer that was killed mid-write.

    A temporary folder that is complete (it has its ``state.json``) and whose step has no
    checkpoint (the kill fell between the two renames that replace a checkpoint) is put
    in place; any other temporary or replaced folder is removed.
    """
    if not directory.is_dir() or directory.is_symlink():
        return
    for unfinished in sorted(directory.glob(".tmp-step-*")):
        name = unfinished.name.removeprefix(".tmp-").rsplit("-", 1)[0]  # step-00000020
        if (CHECKPOINT_NAME.fullmatch(name) and not unfinished.is_symlink()
                and (unfinished / STATE).is_file() and not os.path.lexists(directory / name)):
            os.replace(unfinished, directory / name)
        else:
            remove_path(unfinished)
    for replaced in directory.glob(".old-step-*"):
        remove_path(replaced)


def read_checkpoint(path: Path) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict]:
    """Load and verify a checkpoint: each tensor file must match its recorded sha256."""
    state = read_json(path / STATE)
    if not isinstance(state, dict) or state.get("format") != FORMAT_VERSION:
        raise CheckpointError(f"{path / STATE} is not a genzoo checkpoint (format {FORMAT_VERSION})")
    if not is_whole(state.get("step"), 0):
        raise CheckpointError(f"{path / STATE} is damaged: its step is {state.get('step')!r}")
    files = state.get("files")
    for key, kind in (("files", dict), ("trainer", dict)):
        if not isinstance(state.get(key, {}), kind):
            raise CheckpointError(f"{path / STATE} is damaged: its '{key}' is not an object")
    loaded = []
    for filename in (WEIGHTS, TRAINER):
        file = path / filename
        record = (files or {}).get(filename)
        expected = record.get("sha256") if isinstance(record, dict) else None
        if file.is_symlink() or not file.is_file():
            raise CheckpointError(f"{file} is missing")
        if not isinstance(expected, str) or sha256_file(file) != expected:
            raise CheckpointError(
                f"{file} is corrupt: its sha256 does not match the one recorded in {STATE}"
            )
        loaded.append(load_tensors(file))
    return loaded[0], loaded[1], state
