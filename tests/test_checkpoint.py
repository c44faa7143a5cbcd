"""Run-directory and checkpoint I/O: atomic, verified, never pickle."""

from __future__ import annotations

import numpy as np
import pytest
from safetensors.numpy import load

from genzoo.checkpoint import (atomic_write_bytes, latest_checkpoint, load_tensors,
                               read_checkpoint, save_tensors, tensors_to_bytes,
                               write_checkpoint)
from genzoo.rundir import RunDir
from genzoo.errors import CheckpointError


def _ckpt(directory, step, value=1.0, keep=3):
    weights = {"w": np.full((2, 3), value, np.float32)}
    return write_checkpoint(directory, step, weights, {"opt.0.m": np.zeros(3, np.float32)},
                            {"model": "vae"}, keep=keep)


def test_checkpoint_round_trip_and_latest(tmp_path) -> None:
    _ckpt(tmp_path, 10, 1.0)
    path = _ckpt(tmp_path, 20, 2.0)
    assert latest_checkpoint(tmp_path) == path
    weights, trainer, state = read_checkpoint(path)
    assert np.array_equal(weights["w"], np.full((2, 3), 2.0, np.float32))
    assert state["step"] == 20 and state["model"] == "vae"
    assert "opt.0.m" in trainer


def test_only_the_last_k_are_kept(tmp_path) -> None:
    for step in (1, 2, 3, 4):
        _ckpt(tmp_path, step, keep=2)
    assert sorted(p.name for p in tmp_path.glob("step-*")) == ["step-00000003", "step-00000004"]


def test_a_tampered_tensor_file_is_refused_by_name(tmp_path) -> None:
    path = _ckpt(tmp_path, 5)
    data = bytearray((path / "model.safetensors").read_bytes())
    data[-1] ^= 0xFF
    (path / "model.safetensors").write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=r"model.safetensors is corrupt"):
        read_checkpoint(path)


def test_a_truncated_safetensors_file_names_the_file(tmp_path) -> None:
    save_tensors(tmp_path / "w.safetensors", {"a": np.arange(10, dtype=np.float32)})
    data = (tmp_path / "w.safetensors").read_bytes()
    (tmp_path / "w.safetensors").write_bytes(data[:-7])
    with pytest.raises(CheckpointError, match="w.safetensors is not a valid safetensors"):
        load_tensors(tmp_path / "w.safetensors")


def test_atomic_write_leaves_the_old_file_when_writing_fails(tmp_path, monkeypatch) -> None:
    target = tmp_path / "f.bin"
    atomic_write_bytes(target, b"old")

    def broken_replace(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("genzoo.checkpoint.os.replace", broken_replace)
    with pytest.raises(CheckpointError, match=r"^cannot write .*f.bin: No space left on device$"):
        atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.bin"]


def test_a_file_where_the_folder_should_be_is_one_clear_error(tmp_path) -> None:
    (tmp_path / "afile").write_text("")
    with pytest.raises(CheckpointError, match="cannot write .*afile/x.png: Not a directory"):
        atomic_write_bytes(tmp_path / "afile" / "x.png", b"png")


def test_equal_tensors_and_metadata_give_byte_identical_files() -> None:
    tensors = {"w": np.arange(6, dtype=np.float32).reshape(2, 3), "step": np.array(3),
               "b": np.ones(4, np.float64)}
    metadata = {f"key{i}": str(i) for i in range(12)}  # safetensors' hash map shuffles these
    files = {tensors_to_bytes(tensors, metadata) for _ in range(10)}
    assert len(files) == 1
    loaded = load(files.pop())
    assert set(loaded) == set(tensors) and all(np.array_equal(loaded[k], v)
                                               for k, v in tensors.items())


def test_run_dir_refuses_to_clobber_a_run(tmp_path) -> None:
    run = RunDir(tmp_path / "run")
    run.prepare()
    run.write_json(RunDir.CONFIG, {"model": "vae", "backend": "torch", "preset": "tiny",
                                   "dataset": "digits", "model_config": {}, "train_config": {},
                                   "data_info": {"kind": "image", "shape": [8, 8, 1]}})
    with pytest.raises(CheckpointError, match=r"already holds a run; replace it \(--overwrite"):
        RunDir(tmp_path / "run").prepare()
    with pytest.raises(CheckpointError, match="being trained by another process"):
        RunDir(tmp_path / "run").prepare(overwrite=True)  # run still holds the lock
    assert (tmp_path / "run" / RunDir.CONFIG).exists()
    run.lock.release()
    replacing = RunDir(tmp_path / "run")
    replacing.prepare(overwrite=True)
    assert (tmp_path / "run" / RunDir.CONFIG).exists()  # kept until the new run can start
    replacing.replace()
    assert not (tmp_path / "run" / RunDir.CONFIG).exists()


def test_run_dir_must_be_writable(tmp_path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(CheckpointError, match="cannot write to"):
        RunDir(blocker / "run").prepare()


def test_a_failed_start_never_removes_a_lock_it_does_not_hold(tmp_path) -> None:
    winner, loser = RunDir(tmp_path / "run"), RunDir(tmp_path / "run")
    winner.prepare()  # another process made the folder and trains into it
    with pytest.raises(CheckpointError, match="being trained by another process"):
        loser.prepare()
    loser.remove_if_empty()  # the loser's clean-up after its failed start
    assert (tmp_path / "run" / ".lock").is_file() and winner.lock.held
    winner.remove_if_empty(folder=False)  # the winner fails before writing: no stray lock
    assert list((tmp_path / "run").iterdir()) == []


def test_without_flock_runs_train_unlocked(tmp_path, monkeypatch) -> None:
    import errno

    import genzoo.runlock as runlock

    def unsupported(fd, op):
        raise OSError(errno.ENOSYS, "Function not implemented")

    monkeypatch.setattr(runlock.fcntl, "flock", unsupported)
    first, second = RunDir(tmp_path / "a"), RunDir(tmp_path / "a")
    first.prepare()
    second.prepare(overwrite=True)  # nothing can be locked: neither is refused
    assert runlock.is_locked(tmp_path / "a") is None
    second.write_json(RunDir.META, {"status": "running"})
    assert second.status() == "running"  # not inferred "killed"


def test_a_lock_holds_when_the_disk_refuses_its_pid(tmp_path, monkeypatch) -> None:
    import errno

    import genzoo.runlock as runlock

    def full(fd, data, offset):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(runlock.os, "pwrite", full)
    first = RunDir(tmp_path / "a")
    first.prepare()
    assert first.lock.held and runlock.is_locked(tmp_path / "a")
    with pytest.raises(CheckpointError, match=r"being trained by another process; wait"):
        RunDir(tmp_path / "a").prepare(overwrite=True)  # refused, without a pid to name
    first.lock.release()
    assert runlock.is_locked(tmp_path / "a") is False


def test_weights_of_unnamed_keras_layers_get_a_hint() -> None:
    """Keras numbers unnamed layers per process (dense_1, dense_2, ...): weights saved in
    one process then miss in another, and the error says to name every layer."""
    import numpy as np

    from genzoo.backends.common import check_state_matches

    saved = {"dense_2/kernel": np.zeros((2, 2)), "dense_2/bias": np.zeros(2)}
    with pytest.raises(CheckpointError, match="they lack 'dense_1/bias', 'dense_1/kernel'; "
                                              ".*: name every layer"):
        check_state_matches({"dense_1/kernel": (2, 2), "dense_1/bias": (2,)}, saved, "m",
                            keras_names=True)
    for expected, keras_names in (({"encoder/kernel": (2, 2), "dense_2/bias": (2,)}, True),
                                  ({"dense_1/kernel": (2, 2), "dense_1/bias": (2,)}, False)):
        with pytest.raises(CheckpointError) as other:  # another difference, or torch's names
            check_state_matches(expected, saved, "m", keras_names=keras_names)
        assert "name every layer" not in str(other.value)


GOLDEN = __import__("pathlib").Path(__file__).parent / "golden" / "tensor_names.json"


def test_built_in_models_keep_their_tensor_names_and_shapes() -> None:
    """Checkpoints address tensors by name: a renamed layer would make every saved run
    unloadable. The names and shapes of each built-in model's tiny preset are pinned;
    after a deliberate change, regenerate with GENZOO_UPDATE_GOLDEN=1, knowing that runs
    saved before it no longer load."""
    import json
    import os

    import genzoo
    from genzoo.registry import get_registry

    registry = get_registry()
    found = {}
    for (name, backend), spec in sorted(registry.models.items()):
        if spec.plugin not in ("vae", "gan", "transformer"):
            continue  # only the built-in families
        state = genzoo.create(name, backend, "tiny").state()
        found[f"{name}/{backend}"] = {k: "x".join(map(str, v.shape)) or "scalar"
                                      for k, v in sorted(state.items())}
    if os.environ.get("GENZOO_UPDATE_GOLDEN"):
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text(json.dumps(found, indent=1, sort_keys=True) + "\n")
    assert found == json.loads(GOLDEN.read_text())
    assert len(found) == 6


def test_gan_weights_saved_under_the_old_network_names_still_load() -> None:
    """The GAN's networks were renamed generator -> g_net and discriminator -> d_net
    (one meaning per word): weights an older genzoo saved load under the new names, and
    sample the same images."""
    import numpy as np

    import genzoo

    source = genzoo.create("gan", "torch", "tiny", seed=3)
    old = {k.replace("g_net.", "generator.", 1).replace("d_net.", "discriminator.", 1): v
           for k, v in source.state().items()}
    assert any(k.startswith("generator.") for k in old)
    target = genzoo.create("gan", "torch", "tiny", seed=4)
    target.load_state(old)
    np.testing.assert_array_equal(target.sample(4, seed=0), source.sample(4, seed=0))
