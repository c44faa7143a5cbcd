"""The Python API as a notebook user meets it: the same behaviour as the CLI, and bad
arguments refused with genzoo's own errors before any framework sees them."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

import genzoo
from genzoo.errors import CheckpointError, ConfigError, LookupFailed


@pytest.fixture(scope="module")
def vae_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("api") / "vae"
    genzoo.train("vae", preset="tiny", steps=20, checkpoint_every=10, out=out)
    return out


@pytest.fixture(scope="module")
def gpt(tmp_path_factory) -> genzoo.api.Generator:
    return genzoo.create("transformer", preset="tiny")


def test_out_is_checked_and_a_home_path_is_expanded(tmp_path, monkeypatch) -> None:
    with pytest.raises(ConfigError, match="out is empty"):
        genzoo.train("vae", preset="tiny", steps=2, out=" ")
    monkeypatch.setenv("HOME", str(tmp_path))
    run = genzoo.train("vae", preset="tiny", steps=2, out="~/runs/a")
    assert run.path == tmp_path / "runs" / "a" and (run.path / "model.safetensors").is_file()
    assert genzoo.load("~/runs/a").sample(1, seed=0).shape == (1, 8, 8, 1)
    assert genzoo.compare("~/runs")["runs"][0]["run"] == str(tmp_path / "runs" / "a")


def test_epochs_replace_the_presets_steps_as_on_the_command_line(tmp_path) -> None:
    p = genzoo.api.plan("transformer", preset="nanogpt-cpu", **genzoo.api.length_overrides(
        {"epochs": 1}))
    assert (p.train_config.steps, p.train_config.epochs) == (None, 1)
    run = genzoo.train("vae", preset="tiny", epochs=1, out=tmp_path / "r")
    meta = json.loads((run.path / "meta.json").read_text())
    assert meta["epoch"] == 1.0 and meta["step"] > 30  # the preset's 30 steps did not win
    with pytest.raises(ConfigError, match="give epochs or steps, not both"):
        genzoo.train("vae", preset="tiny", epochs=1, steps=3, out=tmp_path / "both")
    assert not (tmp_path / "both").exists()
    p = genzoo.api.plan("vae", **genzoo.api.length_overrides({"epochs": "none", "steps": 3}))
    assert (p.train_config.epochs, p.train_config.steps) == (None, 3)  # "none" is not given
    # A launcher tells a finished run from meta.json alone, epochs counted in its steps.
    from genzoo.rundir import RunDir

    one, two = (genzoo.api.plan("vae", preset="tiny", **genzoo.api.length_overrides(
        {"epochs": n})) for n in (1, 2))
    done = genzoo.api.finished_before_start(RunDir(run.path), one)
    assert done is not None and f"trained {meta['step']} of its {meta['step']} steps" in str(done)
    assert genzoo.api.finished_before_start(RunDir(run.path), two) is None
    smaller = genzoo.api.plan("vae", preset="tiny", batch_size=8, **genzoo.api.length_overrides(
        {"epochs": 1}))  # more steps per epoch: only the session can count them
    assert genzoo.api.finished_before_start(RunDir(run.path), smaller) is None


def test_the_default_run_folder_is_named_by_model_backend_and_utc_time(tmp_path,
                                                                       monkeypatch) -> None:
    import re

    monkeypatch.chdir(tmp_path)
    first = genzoo.api.default_out("vae", "keras")
    assert re.fullmatch(r"runs/vae-keras-\d{8}-\d{6}", first.as_posix()), first
    first.mkdir(parents=True)  # taken: the next in the same second gets a suffix
    second = genzoo.api.default_out("vae", "keras")
    assert second != first and not second.exists()
    assert re.fullmatch(r"runs/vae-keras-\d{8}-\d{6}(-2)?", second.as_posix()), second


@pytest.mark.parametrize(("call", "message"), [
    (lambda m: m.sample(0), "n must be a whole number of at least 1, not 0"),
    (lambda m: m.sample(2.5), "n must be a whole number of at least 1, not 2.5"),
    (lambda m: m.sample(2, seed=-1), "seed must be a whole number from 0 to 2147483647"),
    (lambda m: m.sample(2, seed=2**31), "seed must be a whole number"),
    (lambda m: m.sample(2, seed=1.5), "seed must be a whole number"),
    (lambda m: m.interpolate(0, 1, 1), "steps must be a whole number of at least 2"),
])
def test_bad_sampling_arguments_are_genzoo_errors(call, message) -> None:
    for backend in ("torch", "keras"):
        with pytest.raises(ConfigError, match=message):
            call(genzoo.create("vae", backend, preset="tiny"))


def test_numpy_integers_are_whole_numbers() -> None:
    for backend in ("torch", "keras"):
        model = genzoo.create("vae", backend, preset="tiny")
        assert np.array_equal(model.sample(np.int64(2), seed=np.int64(7)), model.sample(2, seed=7))
        assert model.interpolate(np.int64(0), np.int32(1), np.int64(3)).shape[0] == 3


def test_bad_text_arguments_are_refused_at_the_call(gpt) -> None:
    with pytest.raises(ConfigError, match="max_new_tokens must be a whole number of at least 0"):
        gpt.stream("a", max_new_tokens=-1)  # at the call, not at the first character
    with pytest.raises(ConfigError, match="temperature must be a finite number"):
        gpt.generate("a", max_new_tokens=3, temperature=math.nan)
    with pytest.raises(ConfigError, match="top_k must be a whole number of at least 1"):
        gpt.generate("a", max_new_tokens=3, top_k=0)
    with pytest.raises(ConfigError, match="transformer is a text model: it has no latent space"):
        gpt.interpolate(0, 1, 4)
    with pytest.raises(LookupFailed, match="a model name is a string"):
        genzoo.create(None)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="'seed': must be at most 2147483647"):
        genzoo.create("vae", preset="tiny", seed=2**31)
    assert gpt.generate("a", max_new_tokens=0) == ""


def test_generate_defaults_are_genzoo_samples(gpt) -> None:
    ours = gpt.generate("a", max_new_tokens=40, seed=3)
    assert ours == gpt.generate("a", max_new_tokens=40, seed=3, temperature=0.8, top_k=40)
    assert ours != gpt.generate("a", max_new_tokens=40, seed=3, temperature=1.0, top_k=None)
    assert repr(gpt).startswith("<TorchTextGenerator transformer (torch), ")


def test_load_names_the_checkpoint_it_reads(vae_run) -> None:
    from genzoo.checkpoint import load_tensors

    first = load_tensors(vae_run / "checkpoints" / "step-00000010" / "model.safetensors")
    for which in (10, np.int64(10), "step-00000010"):
        state = genzoo.load(vae_run, checkpoint=which).state()
        assert all(np.array_equal(state[k], first[k]) for k in first)
    latest = genzoo.load(vae_run, checkpoint="latest").state()
    assert not all(np.array_equal(latest[k], first[k]) for k in first)
    with pytest.raises(CheckpointError, match=r"has no checkpoint 'bogus'; it has 'latest', "
                                              r"'step-00000020', 'step-00000010'"):
        genzoo.load(vae_run, checkpoint="bogus")


def test_interpolate_keeps_the_modules_mode(vae_run) -> None:
    model = genzoo.load(vae_run)
    model.module.train()
    model.interpolate(0, 1, 3)
    assert model.module.training


def test_a_resumed_run_reports_its_whole_history(vae_run, tmp_path) -> None:
    import shutil

    run = shutil.copytree(vae_run, tmp_path / "run")
    before = json.loads((run / "meta.json").read_text())["wall_time_s"]
    resumed = genzoo.resume(run, steps=30, allow_changes=True)
    steps = [r["step"] for r in resumed.history.train]
    assert steps[0] < 20 and steps[-1] == 30 and steps == sorted(set(steps))
    times = [r["time"] for r in resumed.history.train]
    assert times == sorted(times)  # the clock continues across the resume
    assert json.loads((run / "meta.json").read_text())["wall_time_s"] > before


def test_compare_and_evaluate_are_in_the_api(vae_run) -> None:
    result = genzoo.compare(str(vae_run), metrics="loss")  # one path, one metric string
    assert [Path(r["run"]) for r in result["runs"]] == [vae_run]
    assert set(result["runs"][0]["metrics"]) == {"test loss"}
    assert genzoo.evaluate is genzoo.api.evaluate and "data" in genzoo.evaluate.__doc__
    with pytest.raises(ConfigError, match="k must be a whole number from 1 to 5000, not 0"):
        genzoo.evaluate(vae_run, k=0)
    with pytest.raises(ConfigError, match="samples must be a whole number from 100 to 100000"):
        genzoo.evaluate(vae_run, samples=5)
    with pytest.raises(ConfigError, match="compare needs run paths"):
        genzoo.compare(None)  # type: ignore[arg-type]


def test_a_keras_run_stays_on_its_keras_backend(tmp_path) -> None:
    run = genzoo.train("vae", "keras", "tiny", steps=4, out=tmp_path / "k").path
    assert genzoo.compare(run)["runs"][0]["backend"] == "keras on tensorflow"
    meta = json.loads((run / "meta.json").read_text())
    meta["frameworks"]["keras_backend"] = "torch"  # as if trained with KERAS_BACKEND=torch
    (run / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(ConfigError, match="trained with Keras on torch, and Keras now runs on "
                                          "tensorflow.*--allow-changes"):
        genzoo.resume(run)
    with pytest.warns(UserWarning, match="a seed draws other samples than it did there"):
        genzoo.load(run)


@pytest.mark.parametrize("sigterm", [False, True])
def test_a_ctrl_c_while_finishing_leaves_a_run_that_resume_finishes(sigterm, tmp_path,
                                                                     monkeypatch) -> None:
    import os
    import signal

    from genzoo.session import Session
    from genzoo.training import Interrupted

    def interrupted(self) -> None:
        if sigterm:  # a real SIGTERM, delivered to this process while it writes samples
            os.kill(os.getpid(), signal.SIGTERM)
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, signal.SIG_DFL)  # whatever the test runner set
    with monkeypatch.context() as patch:
        patch.setattr(Session, "_write_samples", interrupted)
        with pytest.raises(Interrupted, match="all 6 steps are trained and checkpointed. "
                                              "Finish with: genzoo train vae --resume") as info:
            genzoo.train("vae", preset="tiny", steps=6, out=tmp_path / "r")
    assert info.value.exit_code == (143 if sigterm else 130)
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # put back
    signal.signal(signal.SIGTERM, previous)
    meta = json.loads((tmp_path / "r" / "meta.json").read_text())
    assert (meta["status"], meta["step"]) == ("interrupted", 6)
    finished = genzoo.resume(tmp_path / "r")
    assert (finished.path / "samples.png").is_file()
    assert [r["step"] for r in finished.history.train][-1] == 6  # nothing trained again
    events = [json.loads(line) for line in (finished.path / "metrics.jsonl").open()]
    assert [e["event"] for e in events].count("test") == 1  # the interrupted pass's is gone


def test_weight_decay_needs_adamw() -> None:
    with pytest.raises(ConfigError, match="weight_decay.*needs optimizer=adamw"):
        genzoo.create("vae", preset="tiny", weight_decay=0.1)
    genzoo.create("gan", "keras", "tiny", optimizer="adamw", weight_decay=0.1)


@pytest.mark.parametrize("imports, onednn", [("tensorflow, genzoo", None),
                                             ("genzoo, tensorflow", "1")],
                         ids=["tensorflow-imported-first", "onednn-asked-for"])
def test_oneDNN_kernels_on_are_a_warning(imports, onednn, tmp_path) -> None:
    import os
    import subprocess
    import sys

    code = (f"import warnings, {imports}\n"
            "with warnings.catch_warnings(record=True) as seen:\n"
            "    warnings.simplefilter('always')\n"
            f"    genzoo.train('vae', 'keras', 'tiny', steps=1, out={str(tmp_path / 'r')!r})\n"
            "print(any('oneDNN' in str(w.message) for w in seen))\n")
    env = {k: v for k, v in os.environ.items() if k != "TF_ENABLE_ONEDNN_OPTS"}
    if onednn is not None:
        env["TF_ENABLE_ONEDNN_OPTS"] = onednn
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env=env, cwd=tmp_path, timeout=300)
    assert result.stdout.strip().splitlines()[-1] == "True", result.stderr[-2000:]


def test_tensorflow_imported_after_genzoo_or_a_plugin_keeps_its_plain_kernels(tmp_path) -> None:
    """Importing genzoo (here through a plugin's Keras module, whose package imports genzoo)
    is what sets TensorFlow's environment: TensorFlow loaded afterwards, by the plugin or
    by the program, has no banner and no oneDNN kernels, and training does not warn."""
    import os
    import subprocess
    import sys

    code = ("import warnings, genzoo_vae.keras_vae, tensorflow, genzoo\n"
            "with warnings.catch_warnings(record=True) as seen:\n"
            "    warnings.simplefilter('always')\n"
            f"    genzoo.train('vae', 'keras', 'tiny', steps=1, out={str(tmp_path / 'r')!r})\n"
            "print(any('oneDNN' in str(w.message) for w in seen))\n")
    env = {k: v for k, v in os.environ.items()
           if k not in ("TF_ENABLE_ONEDNN_OPTS", "TF_CPP_MIN_LOG_LEVEL")}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env={**env, "KERAS_BACKEND": "tensorflow"}, cwd=tmp_path,
                            timeout=300)
    assert result.stdout.strip().splitlines()[-1] == "False", result.stderr[-2000:]
    assert "oneDNN custom operations" not in result.stderr


def test_precision_auto_is_bf16_only_on_a_cuda_gpu_that_has_it(tmp_path, monkeypatch) -> None:
    import types

    import torch

    from genzoo.backends.torch import TorchTrainer
    from genzoo.config import TrainConfig

    def resolved(precision: str, device: str, bf16_gpu: bool = True) -> str:
        monkeypatch.setattr(torch.cuda, "get_device_capability",
                            lambda *a, **k: (8, 0) if bf16_gpu else (7, 5))  # A100 / T4
        stub = types.SimpleNamespace(cfg=TrainConfig(precision=precision),
                                     generator=types.SimpleNamespace(device=torch.device(device)))
        return TorchTrainer.precision.func(stub)  # type: ignore[attr-defined]

    assert resolved("auto", "cuda") == "bf16" and resolved("auto", "cuda", False) == "fp32"
    assert resolved("auto", "cpu") == "fp32" and resolved("bf16", "cpu") == "bf16"
    assert resolved("fp32", "cuda") == "fp32"
    monkeypatch.undo()
    # bf16 autocast really runs (on CPU here) and meta.json records what ran.
    run = genzoo.train("transformer", preset="tiny", precision="bf16", out=tmp_path / "bf16")
    assert math.isfinite(run.metrics["test"]["loss"])
    assert json.loads((run.path / "meta.json").read_text())["precision"] == "bf16"
    plain = genzoo.train("vae", preset="tiny", steps=2, device="cpu", out=tmp_path / "auto")
    assert json.loads((plain.path / "meta.json").read_text())["precision"] == "fp32"
    with pytest.raises(ConfigError, match="precision=bf16 is supported by the torch backend"):
        genzoo.train("vae", "keras", preset="tiny", precision="bf16", out=tmp_path / "k")


def test_compile_trains_the_same_model(tmp_path) -> None:
    """``compile=True`` (``--compile``) wraps the loss in torch.compile: the same model and
    maths, fused. Compiled code draws its own random numbers (the VAE's noise), so the
    figures agree closely, not bit for bit."""
    from genzoo.backends import get_backend
    from genzoo.config import TrainConfig

    generator = genzoo.create("vae", preset="tiny")
    trainer = get_backend("torch").make_trainer(generator, TrainConfig(compile=True))
    assert trainer._loss._torchdynamo_orig_callable == generator.module.loss  # compiled
    gan = genzoo.create("gan", preset="tiny")
    with pytest.warns(UserWarning, match="'gan' trains through its own train_step, which runs "
                                         "eagerly"):
        get_backend("torch").make_trainer(gan, TrainConfig(compile=True))
    eager = genzoo.train("vae", preset="tiny", steps=6, out=tmp_path / "eager")
    compiled = genzoo.train("vae", preset="tiny", steps=6, compile=True, out=tmp_path / "c")
    assert json.loads((compiled.path / "config.json").read_text())["train_config"]["compile"]
    for split, key in (("train", "loss"), ("val", "val_loss"), ("test", "loss")):
        assert compiled.metrics[split][key] == pytest.approx(eager.metrics[split][key],
                                                             rel=0.02), split


def test_keras_records_where_it_runs_and_warns_that_cpu_cannot_be_forced(monkeypatch) -> None:
    from genzoo.backends import keras as keras_backend

    assert genzoo.create("vae", "keras", "tiny").device == "cpu"  # this machine has no GPU
    monkeypatch.setattr(keras_backend, "accelerators", lambda: 1)
    with pytest.warns(UserWarning, match="Keras places the model itself and uses the GPU it "
                                         "sees; to keep it on the CPU, hide the GPU"):
        generator = genzoo.create("vae", "keras", "tiny", device="cpu")
    assert generator.device == "gpu"


@pytest.mark.parametrize("backend", ["torch", "keras"])
def test_training_steps_leave_their_metrics_on_the_device(backend) -> None:
    """No host sync per step: a step's metrics are framework tensors, made floats only
    when the loop logs (Keras's own train_on_batch would convert every step)."""
    from genzoo.backends import get_backend
    from genzoo.data import load_dataset

    p = genzoo.api.plan("vae", backend, "tiny")
    generator = genzoo.create("vae", backend, "tiny")
    trainer = get_backend(backend).make_trainer(generator, p.train_config)
    batches = load_dataset("digits").train_batches(p.train_config.batch_size, seed=0)
    trainer.train_step(batches(0))
    metrics = trainer.train_step(batches(1))
    assert not any(isinstance(v, (float, np.ndarray, np.generic)) for v in metrics.values())
    floats = trainer.to_floats(metrics)
    assert set(floats) >= {"loss", "kl", "recon"} and all(type(v) is float for v in floats.values())
