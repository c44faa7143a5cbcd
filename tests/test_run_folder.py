"""A run folder is genzoo's alone: nothing outside it is written or deleted through a
link, another tool's files survive --overwrite, damaged state is refused by name, and a
run killed before its first checkpoint is never stuck."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import genzoo
from genzoo.checkpoint import (atomic_write_bytes, checkpoint_step, complete_checkpoints,
                               latest_checkpoint, load_tensors, read_json, write_checkpoint)
from genzoo.rundir import RunDir
from genzoo.errors import CheckpointError
from genzoo.runlock import RunLock

CONFIG = {"model": "vae", "backend": "torch", "preset": "tiny", "dataset": "digits",
          "model_config": {}, "train_config": {},
          "data_info": {"kind": "image", "shape": [8, 8, 1]}}


def _ckpt(directory, step, keep=3):
    return write_checkpoint(directory, step, {"w": np.full(3, step, np.float32)},
                            {"opt.0.m": np.zeros(3, np.float32)}, {"model": "vae"}, keep=keep)


def _run(path, **files):
    """A genzoo run folder (config.json, a checkpoint) and no process holding it."""
    run = RunDir(path)
    run.prepare()
    run.write_json(RunDir.CONFIG, CONFIG)
    run.write_json(RunDir.META, {"status": "complete"})
    _ckpt(run.checkpoints, 10)
    for name, text in files.items():
        (path / name).write_text(text)
    run.lock.release()
    return run


def _outside(tmp_path):
    """A file and a folder outside every run, and a way to check they are untouched."""
    outside = tmp_path / "outside"
    (outside / "step-00000001").mkdir(parents=True)
    (outside / "step-00000001" / "state.json").write_text("{}")
    (outside / "file.txt").write_text("precious\n")

    def untouched() -> bool:
        return (sorted(p.relative_to(outside).as_posix() for p in outside.rglob("*"))
                == ["file.txt", "step-00000001", "step-00000001/state.json"]
                and (outside / "file.txt").read_text() == "precious\n")
    return outside, untouched


# -- 1. a run folder is genzoo's alone --------------------------------------------------

@pytest.mark.parametrize("overwrite", [False, True])
def test_a_folder_that_is_not_a_run_is_refused_unless_empty(tmp_path, overwrite) -> None:
    folder = tmp_path / "theirs"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(b"another tool's weights")
    with pytest.raises(CheckpointError, match=r"is not empty and is not a genzoo run \(it "
                                              r"holds model.safetensors\)"):
        RunDir(folder).prepare(overwrite=overwrite)
    assert [p.name for p in folder.iterdir()] == ["model.safetensors"]
    empty = RunDir(tmp_path / "empty")
    empty.path.mkdir()
    empty.prepare()  # an empty folder, or one holding only genzoo's own lock, is fine
    empty.lock.release()
    RunDir(tmp_path / "empty").prepare()


def test_overwrite_deletes_only_what_genzoo_wrote(tmp_path) -> None:
    run = _run(tmp_path / "run", **{"notes.txt": "mine", "eval.json": "{}",
                                    "samples.png": "png"})
    (run.checkpoints / "other-tool").mkdir()
    (run.checkpoints / "step-00000010-backup").mkdir()
    (run.checkpoints / "step-00000010-backup" / "state.json").write_text("{}")
    again = RunDir(run.path)
    again.prepare(overwrite=True)
    again.replace()
    left = sorted(p.relative_to(run.path).as_posix() for p in run.path.rglob("*"))
    assert left == [".lock", "checkpoints", "checkpoints/other-tool",
                    "checkpoints/step-00000010-backup",
                    "checkpoints/step-00000010-backup/state.json", "notes.txt"]


def test_a_folder_where_genzoo_writes_a_file_is_refused(tmp_path) -> None:
    run = _run(tmp_path / "run")
    (run.path / "model.safetensors").mkdir()
    with pytest.raises(CheckpointError, match="model.safetensors is a folder"):
        RunDir(run.path).prepare(overwrite=True)


# -- 2. no write or delete follows a link out of the run folder ---------------------------

def test_a_lock_file_that_is_a_link_is_refused_and_its_target_untouched(tmp_path) -> None:
    outside, untouched = _outside(tmp_path)
    run = tmp_path / "run"
    run.mkdir()
    (run / ".lock").symlink_to(outside / "file.txt")
    with pytest.raises(CheckpointError, match=r"\.lock is a symbolic link"):
        RunLock(run).acquire()
    with pytest.raises(CheckpointError, match=r"\.lock is a symbolic link"):
        RunDir(run).prepare()
    assert untouched()


def test_a_checkpoints_link_is_refused_and_nothing_outside_changes(tmp_path) -> None:
    outside, untouched = _outside(tmp_path)
    run = _run(tmp_path / "run")
    for entry in run.checkpoints.iterdir():
        (run.checkpoints / entry.name).unlink() if entry.is_file() else None
    import shutil
    shutil.rmtree(run.checkpoints)
    run.checkpoints.symlink_to(outside, target_is_directory=True)
    with pytest.raises(CheckpointError, match=r"checkpoints is a symbolic link"):
        RunDir(run.path).prepare(overwrite=True)
    with pytest.raises(CheckpointError, match=r"checkpoints is a symbolic link"):
        _ckpt(run.checkpoints, 20, keep=1)  # would also prune outside's step-00000001
    assert complete_checkpoints(run.checkpoints) == []
    assert untouched()


def test_writes_replace_links_and_never_write_through_them(tmp_path) -> None:
    outside, untouched = _outside(tmp_path)
    run = _run(tmp_path / "run")
    target = run.path / "meta.json"
    target.unlink()
    target.symlink_to(outside / "file.txt")
    (run.path / ".meta.json.tmp-1").symlink_to(outside / "file.txt")  # a planted temporary
    atomic_write_bytes(target, b"{}")
    assert not target.is_symlink() and target.read_bytes() == b"{}"
    metrics = run.path / "metrics.jsonl"
    metrics.symlink_to(outside / "file.txt")
    with pytest.raises(CheckpointError, match="metrics.jsonl: it is a symbolic link"):
        run.log({"event": "train", "step": 1})
    run.truncate_log(5)  # a resume: the link becomes the run's own file
    assert not metrics.is_symlink()
    run.log({"event": "train", "step": 1})
    assert untouched()


def test_pruning_leaves_links_and_foreign_entries_alone(tmp_path) -> None:
    outside, untouched = _outside(tmp_path)
    directory = tmp_path / "checkpoints"
    directory.mkdir()
    (directory / "step-00000002").symlink_to(outside / "step-00000001")
    (directory / "step-00000003-backup").mkdir()
    (directory / "step-abc").write_text("x")
    for step in (4, 5, 6):
        _ckpt(directory, step, keep=1)
    assert sorted(p.name for p in directory.iterdir()) == [
        "latest", "step-00000002", "step-00000003-backup", "step-00000006", "step-abc"]
    assert latest_checkpoint(directory).name == "step-00000006"
    assert untouched()


# -- 3. damaged state is recovered or refused, never a traceback -------------------------

@pytest.mark.parametrize("pointer", [b"\xff\xfe\x00garbage", b"../../etc/passwd\n", b"",
                                     b"step-00000010\x00", b"x" * 100_000])
def test_a_damaged_latest_pointer_falls_back_to_the_newest_checkpoint(tmp_path, pointer) -> None:
    _ckpt(tmp_path, 10)
    _ckpt(tmp_path, 20)
    (tmp_path / "latest").write_bytes(pointer)
    assert [p.name for p in complete_checkpoints(tmp_path)] == ["step-00000020", "step-00000010"]


def test_a_foreign_name_is_not_a_checkpoint_step(tmp_path) -> None:
    with pytest.raises(CheckpointError, match="not a genzoo checkpoint"):
        checkpoint_step(tmp_path / "step-00000010-backup")


@pytest.mark.parametrize("text", ["[" * 200_000, '{"a": ' * 100_000, "1" * 5000])
def test_deeply_nested_or_unparseable_json_names_the_file(tmp_path, text) -> None:
    path = tmp_path / "meta.json"
    path.write_text(text)
    with pytest.raises(CheckpointError, match=r"meta.json is not valid JSON"):
        read_json(path)


def test_huge_json_and_special_files_are_refused_by_name(tmp_path) -> None:
    huge = tmp_path / "config.json"
    with open(huge, "wb") as f:
        f.truncate((64 << 20) + 1)  # sparse: no disk used
    with pytest.raises(CheckpointError, match="too large to be a JSON file genzoo wrote"):
        read_json(huge)
    fifo = tmp_path / "eval.json"
    os.mkfifo(fifo)
    with pytest.raises(CheckpointError, match="is not a regular file"):
        read_json(fifo)  # never blocks


def test_stray_metric_lines_are_skipped_whatever_their_step(tmp_path) -> None:
    run = RunDir(tmp_path)
    lines = [{"event": "train", "step": 5}, {"event": "train", "step": "x"},
             {"event": "train", "step": None}, [1, 2], {"event": "train", "step": 10}]
    (tmp_path / "metrics.jsonl").write_text(
        "\n".join(json.dumps(x) for x in lines) + '\n{"step": 1e400}\n' + "[" * 100_000 + "\n")
    assert [e["step"] for e in run.events()] == [5, 10]
    run.truncate_log(7)
    assert [e["step"] for e in run.events()] == [5]


# -- 4. no run is stuck ------------------------------------------------------------------

def _killed_before_checkpoint(run_path):
    """Make a finished tiny run look like one SIGKILLed before its first checkpoint."""
    import shutil

    shutil.rmtree(run_path / "checkpoints")
    for name in ("model.safetensors", "samples.png"):
        (run_path / name).unlink()
    meta = json.loads((run_path / "meta.json").read_text())
    (run_path / "meta.json").write_text(json.dumps({**meta, "status": "running"}))
    (run_path / f".model.safetensors.tmp-{2**22 + 12345}").write_bytes(b"half")
    (run_path / ".notes.tmp-1").write_bytes(b"another tool's")


def test_a_run_killed_before_its_first_checkpoint_resumes_from_step_0(tmp_path) -> None:
    args = dict(preset="tiny", steps=12, checkpoint_every=0, log_every=4)
    fresh = genzoo.train("vae", out=tmp_path / "fresh", **args)
    genzoo.train("vae", out=tmp_path / "killed", **args)
    _killed_before_checkpoint(tmp_path / "killed")
    with pytest.raises(CheckpointError, match=r"no final weights yet \(killed\)"):
        genzoo.load(tmp_path / "killed")
    assert json.loads((tmp_path / "killed" / "meta.json").read_text())["status"] == "killed"
    resumed = genzoo.resume(tmp_path / "killed")
    assert resumed.metrics["test"] == fresh.metrics["test"]
    a, b = load_tensors(fresh.path / "model.safetensors"), load_tensors(resumed.path /
                                                                        "model.safetensors")
    assert all(np.array_equal(a[k], b[k]) for k in a)
    left = sorted(p.name for p in resumed.path.iterdir() if p.name.startswith("."))
    assert left == [".lock", ".notes.tmp-1"]  # genzoo's dead temporary went, not the other
    steps = [e["step"] for e in RunDir(resumed.path).events() if e["event"] == "train"]
    assert steps == sorted(set(steps))  # the killed attempt's records are gone


def test_training_into_a_run_killed_before_its_first_checkpoint_needs_no_overwrite(
        tmp_path) -> None:
    genzoo.train("vae", preset="tiny", steps=4, out=tmp_path / "run")
    _killed_before_checkpoint(tmp_path / "run")
    run = genzoo.train("vae", preset="tiny", steps=4, out=tmp_path / "run")
    assert RunDir(run.path).status() == "complete"
    assert (run.path / ".notes.tmp-1").exists()


def test_the_cli_refuses_a_foreign_out_folder_in_one_line(tmp_path) -> None:
    folder = tmp_path / "theirs"
    folder.mkdir()
    (folder / "samples.png").write_bytes(b"their picture")
    done = subprocess.run([sys.executable, "-m", "genzoo", "train", "vae", "--preset", "tiny",
                           "--out", str(folder)], capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().count("\n") == 0 and "is not a genzoo run" in done.stderr
    assert (folder / "samples.png").read_bytes() == b"their picture"
