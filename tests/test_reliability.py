"""Fault injection: kills, Ctrl-C, full disks, corrupt files, NaNs, mismatched checkpoints.

Every fault is really injected: processes are killed with SIGKILL and SIGINT, bytes are
flipped on disk, writes fail midway.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from genzoo.checkpoint import (latest_checkpoint, load_tensors, read_checkpoint,
                               remove_unfinished_checkpoints, write_checkpoint)
from genzoo.rundir import RunDir
from genzoo.errors import CheckpointError
from helpers import run_genzoo
from test_plugins import install

GENZOO = str(Path(sys.executable).with_name("genzoo"))
# Long enough to be killed mid-run, short enough for CI: the tiny VAE on digits.
RUN_ARGS = ["--preset", "tiny", "--steps", "400", "--checkpoint-every", "25",
            "--set", "log_every=5", "--set", "eval_every=100"]


def _logged_step(run: Path) -> int:
    path = run / "metrics.jsonl"
    if not path.is_file():
        return 0
    steps = [0]
    for line in path.read_text().splitlines():
        try:
            steps.append(json.loads(line).get("step", 0))
        except json.JSONDecodeError:
            pass  # a line being written
    return max(steps)


def _start(run: Path, backend: str, *extra: str) -> subprocess.Popen:
    args = [GENZOO, "train", "vae", "--backend", backend, *extra]
    return subprocess.Popen(args + (["--resume", str(run)] if "--resume" in extra or
                                    (run / "config.json").exists() else
                                    [*RUN_ARGS, "--out", str(run)]),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _kill_at(proc: subprocess.Popen, run: Path, step: int, sig: int = signal.SIGKILL) -> int:
    deadline = time.monotonic() + 120
    while _logged_step(run) < step:
        if proc.poll() is not None:
            raise AssertionError(f"run ended before step {step}: {proc.stderr.read()[-2000:]}")
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for the run")
        time.sleep(0.005)
    proc.send_signal(sig)
    proc.wait(timeout=60)
    return _logged_step(run)


def _weights(run: Path) -> dict[str, np.ndarray]:
    return load_tensors(run / "model.safetensors")


@pytest.mark.parametrize(("backend", "kill_steps"), [("torch", (60, 260)),
                                                      ("keras", (90, 260))])
def test_sigkill_then_resume_is_bitwise_identical(backend, kill_steps, tmp_path,
                                                  monkeypatch) -> None:
    """With EMA weights and a callback with state on: both are checkpointed, and the
    resumed run (which makes the callback again from config.json) ends identical."""
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).parent))  # callback_probe
    extra = ["--set", "ema_decay=0.99", "--callback", "callback_probe:Count"]
    reference = tmp_path / "reference"
    done = run_genzoo("train", "vae", "--backend", backend, *RUN_ARGS, *extra,
                      "--out", str(reference))
    assert done.returncode == 0, done.stderr

    run = tmp_path / "killed"
    report = []
    for target in kill_steps:
        proc = _start(run, backend, *([] if (run / "config.json").exists() else extra))
        killed_at = _kill_at(proc, run, target)
        assert proc.returncode == -signal.SIGKILL
        assert RunDir(run).status() == "killed"  # meta.json still says "running"
        checkpoint = latest_checkpoint(run / "checkpoints")
        resumed_from = json.loads((checkpoint / "state.json").read_text())["step"]
        report.append((killed_at, resumed_from))
        assert killed_at - resumed_from <= 25, report  # at most one checkpoint interval lost
    final = run_genzoo("train", "vae", "--backend", backend, "--resume", str(run))
    assert final.returncode == 0, final.stderr
    ref, got = _weights(reference), _weights(run)
    assert ref.keys() == got.keys() and any(k.startswith("ema.") for k in ref)
    assert all(np.array_equal(ref[k], got[k]) for k in ref), report
    counts = json.loads((run / "counts.json").read_text())
    assert counts == json.loads((reference / "counts.json").read_text())
    assert counts["step"] == 400 and counts["eval"] == 4
    events = [json.loads(line) for line in (run / "metrics.jsonl").open()]
    assert [e["step"] for e in events if e["event"] == "resume"] == [r for _, r in report]
    print(f"\n{backend}: kills at logged steps / resumed from: {report}")


@pytest.mark.parametrize(("sig", "status"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_ctrl_c_or_sigterm_checkpoints_and_exits(sig, status, tmp_path) -> None:
    """SIGTERM (timeout, docker stop, systemd, schedulers) stops a run as Ctrl-C does."""
    run = tmp_path / "run"
    proc = subprocess.Popen([GENZOO, "train", "vae", "--preset", "tiny", "--steps", "100000",
                             "--set", "log_every=5", "--checkpoint-every", "1000", "--out",
                             str(run)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _kill_at(proc, run, 40, sig)
    assert proc.returncode == status
    stderr = proc.stderr.read()
    assert "error" not in stderr  # a stop on request, not a failure
    step = int(stderr.split("interrupted at step ")[1].split(";")[0])
    assert step >= 40 and "--resume" in stderr
    checkpoint = latest_checkpoint(run / "checkpoints")
    assert checkpoint is not None and checkpoint.name == f"step-{step:08d}"
    read_checkpoint(checkpoint)  # complete and verified
    assert json.loads((run / "meta.json").read_text())["status"] == "interrupted"


@pytest.mark.parametrize(("sig", "status"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_second_ctrl_c_or_sigterm_exits_at_once(sig, status, tmp_path) -> None:
    run = tmp_path / "run"
    proc = subprocess.Popen([GENZOO, "train", "vae", "--preset", "tiny", "--steps", "100000",
                             "--set", "log_every=5", "--out", str(run)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while _logged_step(run) < 10 and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(sig)
    proc.send_signal(sig)
    assert proc.wait(timeout=30) == status
    assert json.loads((run / "meta.json").read_text())["status"] == "interrupted"
    assert "error" not in proc.stderr.read()


def test_sigterm_is_taken_only_from_its_default_action() -> None:
    """A program that handles (or ignores) SIGTERM itself and calls genzoo.train keeps
    its handler; the default action (death) becomes a clean stop."""
    from genzoo.stopping import handling as _handling

    def mine(signum, frame):
        pass

    def genzoos(signum, frame):
        pass

    previous = signal.signal(signal.SIGTERM, mine)
    try:
        with _handling(genzoos, signal.SIGINT, signal.SIGTERM):
            assert signal.getsignal(signal.SIGTERM) is mine
            assert signal.getsignal(signal.SIGINT) is genzoos
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        with _handling(genzoos, signal.SIGTERM):
            assert signal.getsignal(signal.SIGTERM) is genzoos
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_a_crash_is_recorded_and_a_failed_start_leaves_no_folder(tmp_path, monkeypatch) -> None:
    import genzoo
    import genzoo.data
    from genzoo.session import Session

    def crash(self):
        raise RuntimeError("disk on\nfire")

    monkeypatch.setattr(Session, "_write_samples", crash)  # after training, before the end
    with pytest.raises(RuntimeError, match="disk on"):
        genzoo.train("vae", preset="tiny", out=tmp_path / "crashed", steps=5)
    meta = json.loads((tmp_path / "crashed" / "meta.json").read_text())
    assert (meta["status"], meta["error"]) == ("failed", "RuntimeError: disk on fire")

    def no_data(*args, **kwargs):
        raise OSError("the disk went away")

    monkeypatch.setattr(genzoo.data, "load_dataset", no_data)
    with pytest.raises(OSError):
        genzoo.train("vae", preset="tiny", out=tmp_path / "never" / "started", steps=5)
    assert (tmp_path / "never").is_dir() and not (tmp_path / "never" / "started").exists()


def test_a_full_disk_during_a_checkpoint_keeps_the_previous_one(tmp_path, monkeypatch) -> None:
    weights = {"w": np.ones(4, np.float32)}
    write_checkpoint(tmp_path, 10, weights, {}, {"model": "vae"}, keep=3)
    import genzoo.checkpoint as ckpt

    real = ckpt.atomic_write_bytes
    calls = {"n": 0}

    def fail_on_second(path, data):
        calls["n"] += 1
        if calls["n"] == 2:  # the trainer file, half written, as the real writer reports it
            Path(path).with_name(".half").write_bytes(data[: len(data) // 2])
            raise CheckpointError(f"cannot write {path}: No space left on device")
        return real(path, data)

    monkeypatch.setattr(ckpt, "atomic_write_bytes", fail_on_second)
    with pytest.raises(CheckpointError, match="No space left"):
        write_checkpoint(tmp_path, 20, {"w": np.zeros(4, np.float32)}, {}, {"model": "vae"},
                         keep=3)
    found = latest_checkpoint(tmp_path)
    assert found is not None and found.name == "step-00000010"
    assert np.array_equal(read_checkpoint(found)[0]["w"], weights["w"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latest", "step-00000010"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("trained") / "run"
    result = run_genzoo("train", "vae", "--preset", "tiny", "--out", str(run))
    assert result.returncode == 0, result.stderr
    return run


def _copy(src: Path, dst: Path) -> Path:
    import shutil

    shutil.copytree(src, dst)
    return dst


def test_one_corrupt_byte_in_a_checkpoint_is_refused_by_name(trained, tmp_path) -> None:
    import shutil

    run = _copy(trained, tmp_path / "run")
    newest = latest_checkpoint(run / "checkpoints")
    target = newest / "trainer.safetensors"
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0x01
    target.write_bytes(bytes(data))
    (run / "meta.json").unlink()  # as if killed before the run could finish
    (newest.parent / ".tmp-step-00000040-999").mkdir()  # a writer killed mid-checkpoint
    result = run_genzoo("train", "vae", "--resume", str(run))
    assert result.returncode == 0, result.stderr
    assert (f"genzoo: warning: {target} is corrupt: its sha256 does not match the one "
            "recorded in state.json; it is kept as corrupt-step-00000030, and the run resumes "
            "from the older step-00000020") in result.stderr
    assert json.loads((run / "meta.json").read_text())["status"] == "complete"
    assert not list(newest.parent.glob(".tmp-*"))
    assert (newest.parent / "corrupt-step-00000030").is_dir()
    # With no older checkpoint to fall back on, the corrupt file is refused by name.
    for other in newest.parent.glob("step-*"):
        if other != newest:
            shutil.rmtree(other)
    target.write_bytes(bytes(data))
    (run / "meta.json").unlink()
    result = run_genzoo("train", "vae", "--resume", str(run))
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert f"{target} is corrupt" in result.stderr


def test_a_truncated_weights_file_is_refused_by_name(trained, tmp_path) -> None:
    run = _copy(trained, tmp_path / "run")
    weights = run / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-10])
    result = run_genzoo("sample", str(run), "--out", str(tmp_path / "x.png"))
    assert result.returncode == 2
    assert f"{weights} is not a valid safetensors file" in result.stderr


def test_weights_of_another_backend_or_shape_are_refused(trained, tmp_path) -> None:
    run = _copy(trained, tmp_path / "run")
    config = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**config, "backend": "keras"}))
    result = run_genzoo("sample", str(run))
    assert result.returncode == 2
    assert "holds weights for vae (torch), not for vae (keras)" in result.stderr
    config["model_config"]["latent_dim"] = 7
    (run / "config.json").write_text(json.dumps(config))
    result = run_genzoo("sample", str(run))
    assert result.returncode == 2 and "expects (" in result.stderr and "shape" in result.stderr
    assert f"{run / 'model.safetensors'}: these weights do not fit vae (torch)" in result.stderr
    config["model_config"].update(latent_dim=4, hidden=[32, 32])  # one more layer
    (run / "config.json").write_text(json.dumps(config))
    result = run_genzoo("sample", str(run))
    assert result.returncode == 2 and "do not fit vae (torch): they lack '" in result.stderr


def test_resuming_with_a_changed_config_names_the_keys(trained, tmp_path) -> None:
    run = _copy(trained, tmp_path / "run")
    refused = run_genzoo("train", "vae", "--resume", str(run), "--lr", "0.5",
                         "--set", "latent_dim=5")
    assert refused.returncode == 2
    assert "latent_dim: 4 -> 5" in refused.stderr and "lr: 0.003 -> 0.5" in refused.stderr
    allowed = run_genzoo("train", "vae", "--resume", str(run), "--steps", "40",
                         "--allow-changes")
    assert allowed.returncode == 0, allowed.stderr
    assert json.loads((run / "meta.json").read_text())["step"] == 40


NAN_PLUGIN = """
import torch
from genzoo import hookimpl
from genzoo.registry import ModelSpec
from genzoo_vae.config import PRESETS, VAEConfig
from genzoo_vae.torch_vae import VAE

class NaNVAE(VAE):
    '''The VAE, whose loss turns to NaN at its 33rd training step.'''

    calls = 0

    def loss(self, x):
        loss, parts = super().loss(x)
        if self.training:
            NaNVAE.calls += 1
            if NaNVAE.calls >= 33:
                loss = loss * float("nan")
        return loss, parts

@hookimpl
def register_models(register):
    register(ModelSpec(name="nanvae", backend="torch", kind="image", config=VAEConfig,
                       builder="nan_plugin:NaNVAE", presets=PRESETS, default_preset="tiny",
                       default_dataset="digits", summary="diverges on purpose"))
"""


def test_a_nan_loss_stops_training_and_keeps_the_last_good_checkpoint(tmp_path) -> None:
    install(tmp_path / "site", "nan_plugin", NAN_PLUGIN, "nanvae")
    env = {"PYTHONPATH": os.pathsep.join([str(tmp_path / "site"), os.environ.get("PYTHONPATH", "")])}
    run = tmp_path / "run"
    result = run_genzoo("train", "nanvae", "--steps", "100", "--checkpoint-every", "10",
                        "--set", "log_every=5", "--out", str(run), env=env)
    assert result.returncode == 3
    assert "training diverged at step 35: loss is nan" in result.stderr
    found = latest_checkpoint(run / "checkpoints")
    assert found.name == "step-00000030"
    weights, _, _ = read_checkpoint(found)
    assert all(np.isfinite(w).all() for w in weights.values())
    meta = json.loads((run / "meta.json").read_text())
    assert (meta["status"], meta["step"]) == ("diverged", 35)
    assert not (run / "model.safetensors").exists()


@pytest.mark.parametrize(("args", "message"), [
    (["sample", "RUN", "--n", "0"], "Invalid value for '--n'"),
    (["train", "vae", "--checkpoint-every", "-1"], "'checkpoint_every': must not be negative"),
    (["train", "vae", "--set", "keep_checkpoints=0"], "'keep_checkpoints': must be at least 1"),
    (["train", "vae", "--out", "/proc/genzoo-cannot-write"], "cannot write to"),
    (["train", "vae", "--resume", "/nonexistent-run"], "/nonexistent-run does not exist"),
    (["train", "vae", "--resume", "FOREIGN"], "is not a genzoo run (its config.json was not "
                                              "written by genzoo)"),
    (["sample", "FOREIGN"], "is not a genzoo run"),
    (["eval", "FOREIGN"], "is not a genzoo run"),
    (["train", "vae", "--resume", "RUN", "--data", "mnist", "--out", "elsewhere"],
     "with its own dataset, preset and folder; drop --data, --out"),
    (["train", "vae", "--resume", "RUN"], "has already trained 30 of its 30 steps; to train "
                                          "further, resume with a larger --steps"),
    (["train", "vae", "--resume", "RUN", "--nproc", "2"], "has already trained 30 of its 30 "
                                                          "steps"),  # once, not once per rank
    (["train", "vae", "--resume", "RUN", "--nproc", "2", "--steps", "20", "--allow-changes"],
     "has already trained 30 of its 20 steps"),
    (["train", "vae", "--out", "FOREIGN", "--overwrite"], "is not a genzoo run (its "
                                                          "config.json was not written"),
    (["train", "vae", "--device", "cuda:x"], "'device': must be auto, cpu, cuda, cuda:N or mps"),
    (["train", "vae", "--set", "lr=inf"], "'lr': expected a finite number, got 'inf'"),
    (["train", "vae", "--out", ""], "Invalid value for '--out': an empty path"),
    (["train", "vae", "--resume", ""], "Invalid value for '--resume': an empty path"),
    (["sample", ""], "Invalid value for 'RUN': an empty path"),
    (["compare", "RUN", ""], "Invalid value for 'RUNS...': an empty path"),
    (["train", "vae", "--nproc", "2", "--backend", "keras"],
     "multi-process Keras training needs KERAS_BACKEND=torch"),
    (["sample", "RUN", "--seed", "-1"], "Invalid value for '--seed'"),
    (["sample", "RUN", "--out", "grid.jpg"], "images are written as PNG; name the file *.png"),
    (["sample", "RUN", "--out", "/nonexistent/dir/grid.png"],
     "the folder /nonexistent/dir does not exist"),
    (["sample", "RUN", "--interpolate", "--n", "1"], "--interpolate needs --n of at least 2"),
    (["plugin", "new", "thing", "--dir", "RUN/config.json"], "cannot write the plugin into"),
    (["eval", "RUN", "--data", "mnist"], "was trained on 8x8x1 images (digits); 'mnist' holds "
                                         "28x28x1 images"),
])
def test_more_bad_arguments(trained, tmp_path, args, message) -> None:
    foreign = tmp_path / "foreign"  # another tool's folder, with its own config.json
    foreign.mkdir()
    (foreign / "config.json").write_text('{"architectures": ["BertModel"]}')
    paths = {"RUN": str(trained), "FOREIGN": str(foreign)}
    result = run_genzoo(*[paths.get(a, a).replace("RUN/", f"{trained}/") for a in args],
                        env={"KERAS_BACKEND": "tensorflow"})
    assert result.returncode == 2 and message in result.stderr, result.stderr
    assert result.stderr.count("\n") == 1


def test_genzoo_alone_shows_the_help() -> None:
    result = run_genzoo()
    assert result.returncode == 0 and "Usage: genzoo" in result.stdout
    assert "genzoo train vae" in result.stdout and result.stderr == ""


def test_resume_with_allow_changes_saves_the_new_config(trained, tmp_path) -> None:
    run = _copy(trained, tmp_path / "run")
    (run / "eval.json").write_text("{}")  # figures of the step-30 weights
    result = run_genzoo("train", "vae", "--resume", str(run), "--steps", "40", "--allow-changes")
    assert result.returncode == 0, result.stderr
    assert json.loads((run / "config.json").read_text())["train_config"]["steps"] == 40
    meta = json.loads((run / "meta.json").read_text())
    assert (meta["status"], meta["step"]) == ("complete", 40)
    assert not (run / "eval.json").exists()  # it scored weights that are gone


def test_a_resume_that_cannot_start_leaves_the_records_alone(trained, tmp_path,
                                                             monkeypatch) -> None:
    import genzoo
    from genzoo.session import Session

    run = _copy(trained, tmp_path / "run")
    records = (run / "metrics.jsonl").read_bytes()

    def refused(self, status, *args, **kwargs):
        raise CheckpointError(f"cannot write {run / 'meta.json'}: Read-only file system")

    monkeypatch.setattr(Session, "_write_meta", refused)
    with pytest.raises(CheckpointError, match="Read-only file system"):
        genzoo.resume(run, steps=40, allow_changes=True)
    assert (run / "metrics.jsonl").read_bytes() == records  # no resume event, no truncation


def test_no_unsafe_loading_anywhere_in_the_package() -> None:
    root = Path(__file__).resolve().parents[1]
    offenders = []
    for path in [*root.glob("genzoo/**/*.py"), *root.glob("plugins/**/*.py")]:
        text = path.read_text()
        for needle in ("import pickle", "pickle.load", "keras.models.load_model",
                       "cloudpickle", "torch.load(", "np.load(", "allow_pickle=True"):
            if needle in text and not (needle == "torch.load(" and "weights_only=True" in text):
                offenders.append(f"{path.relative_to(root)}: {needle}")
    assert offenders == []


def test_epochs_replace_a_presets_step_count(tmp_path) -> None:
    import genzoo.api as api

    assert api.plan("vae", preset="tiny", epochs=1, steps="none").train_config.steps is None
    result = run_genzoo("train", "vae", "--preset", "tiny", "--epochs", "1", "--out",
                        str(tmp_path / "run"))
    assert result.returncode == 0, result.stderr
    meta = json.loads((tmp_path / "run" / "meta.json").read_text())
    assert meta["epoch"] == 1.0 and meta["step"] != 30  # not the preset's 30 steps


def test_a_finished_run_with_a_corrupt_last_checkpoint_is_still_finished(trained,
                                                                         tmp_path) -> None:
    run = _copy(trained, tmp_path / "run")
    target = latest_checkpoint(run / "checkpoints") / "trainer.safetensors"
    target.write_bytes(target.read_bytes()[:-3])
    result = run_genzoo("train", "vae", "--resume", str(run))
    assert result.returncode == 2 and "has already trained 30 of its 30 steps" in result.stderr
    assert target.is_file()  # nothing touched


def test_a_resumed_run_needs_the_vocabulary_it_was_trained_on(tmp_path) -> None:
    corpus = tmp_path / "a.txt"
    corpus.write_text("abcdefgh " * 400)
    run = tmp_path / "run"
    assert run_genzoo("train", "transformer", "--preset", "tiny", "--data", str(corpus),
                      "--steps", "4", "--checkpoint-every", "2", "--out",
                      str(run)).returncode == 0
    corpus.write_text("abcdefgz " * 400)  # same size of vocabulary, another character
    result = run_genzoo("train", "transformer", "--resume", str(run), "--steps", "6",
                        "--allow-changes")
    assert result.returncode == 2
    assert "the vocabulary of 'a.txt' differs from the one" in result.stderr
    assert "h" in json.loads((run / "config.json").read_text())["data_info"]["vocab"]


def test_a_checkpoint_killed_between_its_two_renames_is_put_back(tmp_path) -> None:
    write_checkpoint(tmp_path, 20, {"w": np.ones(2, np.float32)}, {}, {"model": "vae"}, keep=3)
    (tmp_path / "step-00000020").rename(tmp_path / ".tmp-step-00000020-77")  # complete
    (tmp_path / ".tmp-step-00000030-77").mkdir()  # half written: no state.json
    (tmp_path / ".old-step-00000010-77").mkdir()
    remove_unfinished_checkpoints(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latest", "step-00000020"]
    read_checkpoint(tmp_path / "step-00000020")


def test_finishing_again_removes_evaluations_of_the_old_weights(trained, tmp_path) -> None:
    run = _copy(trained, tmp_path / "run")
    for name in ("eval.json", "eval-mnist.json", "sample-seed3.png"):
        (run / name).write_text("{}")
    result = run_genzoo("train", "vae", "--resume", str(run), "--steps", "35",
                        "--allow-changes")
    assert result.returncode == 0, result.stderr
    assert not [n for n in ("eval.json", "eval-mnist.json", "sample-seed3.png")
                if (run / n).exists()]


def test_a_run_being_trained_is_neither_overwritten_nor_resumed(trained, tmp_path) -> None:
    import genzoo

    run = RunDir(_copy(trained, tmp_path / "run"))
    meta = json.loads((run.path / "meta.json").read_text())
    run.write_json(RunDir.META, {**meta, "status": "running"})
    before = sorted(p.name for p in run.path.rglob("*"))
    with RunDir(run.path).lock:  # as the process training it holds it
        assert run.status() == "running"
        with pytest.raises(CheckpointError, match=rf"being trained by another process \(pid {os.getpid()}\)"):
            genzoo.train("vae", preset="tiny", out=run.path, overwrite=True)
        with pytest.raises(CheckpointError, match="being trained by another process"):
            genzoo.resume(run.path)
        assert sorted(p.name for p in run.path.rglob("*")) == before  # nothing touched
    assert run.status() == "killed"  # "running", and nobody holds the lock
    run.write_json(RunDir.META, {**meta, "status": "running", "step": 0, "wall_time_s": 0.0})
    result = run_genzoo("compare", str(run.path))  # meta.json as written at the start
    assert result.returncode == 0 and "30 (killed)" in result.stdout, result.stderr
    shown = genzoo.compare(run.path)["runs"][0]  # how far the log says it got
    last = [e for e in run.events() if e["event"] == "train"][-1]
    assert (shown["step"], shown["wall_time_s"]) == (30, last["time"]) and last["time"] > 0


def test_a_resume_in_another_precision_says_so(trained, tmp_path) -> None:
    """precision=auto resolves per device: a run begun on a bf16 GPU and resumed on a CPU
    continues in fp32. That is allowed, but said, and the resume record keeps it."""
    import genzoo

    run = _copy(trained, tmp_path / "run")
    meta = json.loads((run / "meta.json").read_text())
    (run / "meta.json").write_text(json.dumps({**meta, "precision": "bf16"}))
    with pytest.warns(UserWarning, match="trained in bf16 so far and continues in fp32 on "
                                         "this device; to keep bf16, resume with --set "
                                         "precision=bf16 --allow-changes"):
        genzoo.resume(run, steps=32, allow_changes=True, device="cpu")
    events = [json.loads(line) for line in (run / "metrics.jsonl").open()]
    assert [e.get("precision") for e in events if e["event"] == "resume"] == ["fp32"]
    assert json.loads((run / "meta.json").read_text())["precision"] == "fp32"


@pytest.mark.parametrize(("edit", "message"), [
    ({"data_info": None}, "'data_info' has no kind"),
    ({"data_info": {}}, "'data_info' has no kind"),
    ({"data_info": {"kind": "image", "shape": "x"}}, "'data_info' shape is 'x'"),
    ({"data_info": {"kind": "text", "vocab": "ab"}}, "vae makes images, but its data_info says text"),
    ({"dataset": None}, "'dataset' is None, not a name"),
    ({"train_config": None}, "'train_config' is NoneType, not an object"),
])
def test_a_damaged_config_json_is_named(trained, tmp_path, edit, message) -> None:
    """A config.json edited by hand (or damaged) is a one-line error, not a traceback."""
    run = _copy(trained, tmp_path / "run")
    config = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**config, **edit}))
    for command in (["sample", str(run), "--n", "4"], ["eval", str(run)]):
        result = run_genzoo(*command)
        assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
        assert message in result.stderr and result.stderr.count("\n") == 1


def test_stray_lines_in_metrics_jsonl_and_a_damaged_checkpoint_step_are_handled(
        trained, tmp_path) -> None:
    run = RunDir(_copy(trained, tmp_path / "run"))
    events = run.events()
    with open(run.path / "metrics.jsonl", "ab") as f:
        f.write(b"\xff\xfe not json\n[1, 2]\n\"text\"\n")
    assert run.events() == events  # undecodable bytes and non-objects are skipped
    newest = latest_checkpoint(run.checkpoints)
    state = json.loads((newest / "state.json").read_text())
    for step in ("x", -5, None):
        (newest / "state.json").write_text(json.dumps({**state, "step": step}))
        with pytest.raises(CheckpointError, match=rf"is damaged: its step is {step!r}"):
            read_checkpoint(newest)
