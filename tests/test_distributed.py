"""Data-parallel training with torch.distributed: two CPU processes with gloo."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from genzoo.checkpoint import checkpoint_name, load_tensors
from helpers import run_genzoo

TINY = ["--preset", "tiny", "--steps", "40", "--checkpoint-every", "10",
        "--set", "keep_checkpoints=10"]

# Each rank trains through the Python API and saves the weights it ends with.
PER_RANK = textwrap.dedent("""
    import json, os, signal, sys, threading
    import torch
    import genzoo
    from genzoo.checkpoint import save_tensors
    from genzoo.distributed import world

    wrapped = []  # the networks the trainer handed to DistributedDataParallel
    ddp_init = torch.nn.parallel.DistributedDataParallel.__init__
    def counting_init(self, module, *args, **kwargs):
        wrapped.append(type(module).__name__)
        ddp_init(self, module, *args, **kwargs)
    torch.nn.parallel.DistributedDataParallel.__init__ = counting_init

    out, model, steps = sys.argv[1], sys.argv[2], int(sys.argv[3])
    preset = sys.argv[4] if len(sys.argv) > 4 else "tiny"
    backend = sys.argv[5] if len(sys.argv) > 5 else "torch"
    if os.environ.get("KILL_RANK") == os.environ["RANK"]:
        threading.Timer(float(os.environ["KILL_AFTER"]),
                        lambda: os.kill(os.getpid(), signal.SIGKILL)).start()
    if os.environ.get("INT_RANK") == os.environ["RANK"]:  # Ctrl-C reaching one rank first
        threading.Timer(float(os.environ["INT_AFTER"]),
                        lambda: os.kill(os.getpid(), signal.SIGINT)).start()
    run = genzoo.train(model, backend, preset, steps=steps, out=out, checkpoint_every=0)
    save_tensors(f"{out}/rank{world().rank}.safetensors", run.generator.state())
    with open(f"{out}/ddp{world().rank}.json", "w") as f:
        json.dump(wrapped, f)
    if backend == "keras":  # the noise each rank draws next
        import keras, numpy as np
        seeds = run.generator.model.seed_generator
        np.save(f"{out}/noise{world().rank}.npy",
                keras.ops.convert_to_numpy(keras.random.normal((8,), seed=seeds)))
""")


def torchrun(script: Path, *args: str, env: dict | None = None, timeout: float = 300):
    import os

    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                           "--nproc_per_node=2", str(script), *args], capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, **(env or {})})


def _max_diff(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max(float(np.abs(a[k].astype(np.float64) - b[k]).max()) for k in a)


@pytest.fixture(scope="module")
def script(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("dist") / "per_rank.py"
    path.write_text(PER_RANK)
    return path


@pytest.mark.parametrize("model", ["vae", "gan"])
def test_two_processes_match_one_and_each_other(model, script, tmp_path) -> None:
    two = tmp_path / "two"
    result = torchrun(script, str(two), model, "40")
    assert result.returncode == 0, result.stderr[-3000:]
    rank0, rank1 = load_tensors(two / "rank0.safetensors"), load_tensors(two / "rank1.safetensors")
    assert _max_diff(rank0, rank1) == 0.0  # every rank holds identical weights
    # Trained with DistributedDataParallel: the VAE's loss, the GAN's two networks.
    wrapped = json.loads((two / "ddp0.json").read_text())
    assert wrapped == (["_Loss"] if model == "vae" else ["Sequential", "Sequential"])
    if model == "vae":  # (the GAN's dropout masks depend on the local batch shape)
        one = run_genzoo("train", model, "--preset", "tiny", "--steps", "40", "--out",
                         str(tmp_path / "one"))
        assert one.returncode == 0, one.stderr
        # The same global batch on one process: equal up to floating-point rounding.
        assert _max_diff(rank0, load_tensors(tmp_path / "one" / "model.safetensors")) < 1e-5
        # ... and the same logged figures: the ranks' metrics are averaged, not rank 0's.
        def logged(run: Path) -> list[tuple[int, float]]:
            return [(e["step"], e["loss"]) for e in map(json.loads, (run / "metrics.jsonl")
                                                        .open()) if e["event"] == "train"]
        one_log, two_log = logged(tmp_path / "one"), logged(two)
        assert [s for s, _ in two_log] == [s for s, _ in one_log]
        assert [v for _, v in two_log] == pytest.approx([v for _, v in one_log], rel=1e-5)
    # Rank 0 alone wrote: every step is logged once, one set of run files.
    events = [json.loads(line) for line in (two / "metrics.jsonl").open()]
    steps = [e["step"] for e in events if e["event"] == "train"]
    assert steps == sorted(set(steps))
    config = json.loads((two / "config.json").read_text())
    assert config["world_size"] == 2


def test_batch_norm_statistics_agree_across_ranks(script, tmp_path) -> None:
    """The DCGAN generator's running statistics, not only its weights, match on every rank."""
    result = torchrun(script, str(tmp_path), "gan", "4", "dcgan")
    assert result.returncode == 0, result.stderr[-3000:]
    rank0 = load_tensors(tmp_path / "rank0.safetensors")
    assert any("running_mean" in k for k in rank0)
    assert _max_diff(rank0, load_tensors(tmp_path / "rank1.safetensors")) == 0.0


def test_keras_models_train_data_parallel_on_the_torch_backend(script, tmp_path) -> None:
    """Keras on its torch backend: the same torchrun job, gradients averaged over ranks."""
    result = torchrun(script, str(tmp_path), "vae", "20", "tiny", "keras",
                      env={"KERAS_BACKEND": "torch"})
    assert result.returncode == 0, result.stderr[-3000:]
    rank0 = load_tensors(tmp_path / "rank0.safetensors")
    assert _max_diff(rank0, load_tensors(tmp_path / "rank1.safetensors")) == 0.0
    losses = [e["loss"] for e in map(json.loads, (tmp_path / "metrics.jsonl").open())
              if e["event"] == "train"]
    assert losses[-1] < losses[0]  # it learned, and every rank holds the same weights
    # Each rank draws its own noise (the same seed on every rank would give the same).
    noise0, noise1 = (np.load(tmp_path / f"noise{r}.npy") for r in (0, 1))
    assert not np.allclose(noise0, noise1)


def test_ctrl_c_reaching_one_rank_stops_every_rank_at_one_step(script, tmp_path) -> None:
    """torchrun signals each rank on its own: the ranks agree on the step to stop at, so
    rank 0 writes a whole checkpoint instead of a collective failing midway."""
    result = torchrun(script, str(tmp_path), "vae", "100000",
                      env={"INT_RANK": "1", "INT_AFTER": "6"})
    assert result.returncode != 0  # genzoo.train raised Interrupted in the script
    assert "interrupted at step" in result.stderr, result.stderr[-3000:]
    meta = json.loads((tmp_path / "meta.json").read_text())
    assert meta["status"] == "interrupted", meta
    log_every = json.loads((tmp_path / "config.json").read_text())["train_config"]["log_every"]
    assert meta["step"] > 0 and meta["step"] % log_every == 0
    latest = (tmp_path / "checkpoints" / "latest").read_text().strip()
    assert latest == checkpoint_name(meta["step"])


def test_genzoo_train_nproc_and_resume(tmp_path) -> None:
    import shutil

    full, cut = tmp_path / "full", tmp_path / "cut"
    result = run_genzoo("train", "vae", *TINY, "--nproc", "2", "--out", str(full))
    assert result.returncode == 0, result.stderr[-3000:]
    shutil.copytree(full, cut)  # the same run, cut back to step 20 below
    for step in (30, 40):  # as if killed after the checkpoint at step 20
        shutil.rmtree(cut / "checkpoints" / checkpoint_name(step))
    (cut / "checkpoints" / "latest").write_text(checkpoint_name(20))
    (cut / "model.safetensors").unlink()
    resumed = run_genzoo("train", "vae", "--resume", str(cut), "--nproc", "2")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert _max_diff(load_tensors(full / "model.safetensors"),
                     load_tensors(cut / "model.safetensors")) == 0.0


def test_a_killed_rank_fails_the_whole_job_quickly(script, tmp_path) -> None:
    start = time.monotonic()
    result = torchrun(script, str(tmp_path / "run"), "vae", "100000",
                      env={"KILL_RANK": "1", "KILL_AFTER": "4", "GENZOO_DIST_TIMEOUT": "20"},
                      timeout=120)
    elapsed = time.monotonic() - start
    assert result.returncode != 0
    assert elapsed < 60, elapsed
    assert "SIGKILL" in result.stderr or "Signal 9" in result.stderr or "exitcode" in result.stderr


# Keras on TensorFlow: one process, one replica per device, under MirroredStrategy. Two
# logical CPU devices stand in for two GPUs.
MIRRORED = textwrap.dedent("""
    import os, sys
    os.environ["KERAS_BACKEND"] = "tensorflow"
    out, model, steps, replicas = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    import tensorflow as tf
    if replicas > 1:
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * replicas)
        os.environ["GENZOO_TF_DEVICES"] = ",".join(f"/cpu:{i}" for i in range(replicas))
    else:
        os.environ["GENZOO_TF_DEVICES"] = "none"
    import genzoo
    from genzoo.backends.keras import strategy
    genzoo.train(model, "keras", "tiny", steps=steps, out=out, checkpoint_every=0)
    print("replicas", strategy().num_replicas_in_sync if strategy() else 1)
""")


def _mirrored(tmp_path: Path, name: str, model: str, steps: int, replicas: int) -> Path:
    import os

    script = tmp_path / "mirrored.py"
    script.write_text(MIRRORED)
    out = tmp_path / name
    result = subprocess.run([sys.executable, str(script), str(out), model, str(steps),
                             str(replicas)], capture_output=True, text=True, timeout=300,
                            env={**os.environ, "KERAS_BACKEND": "tensorflow"})
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"replicas {replicas}" in result.stdout
    return out


def test_keras_mirrored_strategy_matches_one_device(tmp_path) -> None:
    """The Transformer (no dropout, so no randomness) on two replicas equals one device at
    the same global batch, with AdamW's weight decay and gradient clipping in play."""
    one = _mirrored(tmp_path, "one", "transformer", 20, 1)
    two = _mirrored(tmp_path, "two", "transformer", 20, 2)
    diff = _max_diff(load_tensors(one / "model.safetensors"),
                     load_tensors(two / "model.safetensors"))
    assert diff < 1e-4, diff


def test_keras_mirrored_strategy_trains_the_gan(tmp_path) -> None:
    """The GAN's custom step (two optimizers, value_and_grad) runs under the strategy."""
    out = _mirrored(tmp_path, "gan", "gan", 10, 2)
    events = [json.loads(line) for line in (out / "metrics.jsonl").open()]
    assert any(e["event"] == "test" for e in events)


REPLICA_NOISE = textwrap.dedent("""
    import json, os
    os.environ["KERAS_BACKEND"] = "tensorflow"
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    os.environ["GENZOO_TF_DEVICES"] = "/cpu:0,/cpu:1"
    import keras, numpy as np, genzoo
    from genzoo.backends.keras import make_trainer, strategy
    from genzoo.config import TrainConfig
    gen = genzoo.create("gan", "keras", "tiny", data="digits")
    make_trainer(gen, TrainConfig(batch_size=8))
    found = [g for layer in gen.model._flatten_layers(include_self=True)
             for g in layer._seed_generators]
    before = [np.array(g.state.value) for g in found]
    draw = tf.function(lambda g: strategy().run(lambda: keras.random.normal((4,), seed=g)))
    drawn = [[np.asarray(v).tolist() for v in strategy().experimental_local_results(draw(g))]
             for g in found]
    steps = [(np.array(g.state.value) - b).tolist() for g, b in zip(found, before)]
    print(json.dumps({"drawn": drawn, "steps": steps}))
""")


def test_keras_mirrored_replicas_draw_different_noise(tmp_path) -> None:
    """Each replica gets its own random numbers (else a GAN's replicas make identical
    fakes), while the seed state advances once per draw, as on one device."""
    script = tmp_path / "noise.py"
    script.write_text(REPLICA_NOISE)
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    found = json.loads(result.stdout.strip().splitlines()[-1])
    assert found["drawn"], "the GAN has no seed generator"
    for first, second in found["drawn"]:
        assert not np.allclose(first, second)
    assert all(step == [0, 1] for step in found["steps"])


def test_the_launcher_refuses_what_every_rank_would_refuse(tmp_path) -> None:
    result = run_genzoo("train", "vae", "--preset", "tiny", "--nproc", "3", "--batch-size", "32",
                        "--out", str(tmp_path / "r"))
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert "the batch of 32 does not split evenly over 3 processes" in result.stderr
    assert not (tmp_path / "r").exists()
    (tmp_path / "file").write_text("mine")
    result = run_genzoo("train", "vae", "--preset", "tiny", "--nproc", "2",
                        "--out", str(tmp_path / "file"))
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert "is a file; give a folder for the run" in result.stderr
    assert (tmp_path / "file").read_text() == "mine"


def test_distributed_settings_are_checked(monkeypatch) -> None:
    from genzoo import distributed
    from genzoo.errors import ConfigError

    for bad in ("abc", "0", "-5"):
        monkeypatch.setenv("GENZOO_DIST_TIMEOUT", bad)
        with pytest.raises(ConfigError, match="GENZOO_DIST_TIMEOUT must be a number of "
                                              "seconds above 0"):
            distributed.timeout_s()


@pytest.mark.parametrize("model", ["vae", "gan"])
def test_conditional_models_train_data_parallel(model, script, tmp_path) -> None:
    """Each rank takes the same rows of the images and of their labels: two processes
    end with identical weights, and the cVAE where one process does."""
    two = tmp_path / "two"
    result = torchrun(script, str(two), model, "20", "tiny-conditional")
    assert result.returncode == 0, result.stderr[-3000:]
    rank0, rank1 = load_tensors(two / "rank0.safetensors"), load_tensors(two / "rank1.safetensors")
    assert _max_diff(rank0, rank1) == 0.0
    wrapped = json.loads((two / "ddp0.json").read_text())
    assert wrapped == (["_Loss"] if model == "vae" else ["Projection", "Sequential"])
    if model == "vae":
        one = run_genzoo("train", model, "--preset", "tiny-conditional", "--steps", "20",
                         "--out", str(tmp_path / "one"))
        assert one.returncode == 0, one.stderr
        assert _max_diff(rank0, load_tensors(tmp_path / "one" / "model.safetensors")) < 1e-5
