"""Callbacks, EMA weights, gradient accumulation and the TensorBoard logger."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import genzoo
from genzoo.callbacks import (Callback, EarlyStopping, TrainingContext, callback_from_path,
                              callback_keys, restore_state, split_state)
from genzoo.ema import EMA, decay_at
from genzoo.errors import ConfigError, GenzooError
from helpers import run_genzoo

SHORT = {"steps": 12, "log_every": 4, "eval_every": 6, "checkpoint_every": 6}


class Record(Callback):
    """Every event, in order."""

    def __init__(self) -> None:
        self.events: list[tuple[Any, ...]] = []

    def on_train_start(self, run: TrainingContext) -> None:
        self.events.append(("start", run.start_step, run.total_steps))

    def on_step_end(self, run: TrainingContext, step: int, metrics: Mapping[str, float]) -> None:
        self.events.append(("step", step, dict(metrics)))

    def on_log(self, run: TrainingContext, record: Mapping[str, Any]) -> None:
        self.events.append(("log", record["event"], record["step"]))

    def on_eval(self, run: TrainingContext, step: int, metrics: Mapping[str, float]) -> None:
        self.events.append(("eval", step, dict(metrics)))

    def on_checkpoint(self, run: TrainingContext, step: int, path: Path) -> None:
        self.events.append(("checkpoint", step, path.name))

    def on_train_end(self, run: TrainingContext, history: Any) -> None:
        self.events.append(("end", run.step, run.error))


def test_a_callback_hears_every_event_in_order(tmp_path) -> None:
    rec = Record()
    genzoo.train("vae", "torch", "tiny", out=tmp_path / "r", callbacks=[rec], **SHORT)
    kinds = [e[0] for e in rec.events]
    assert rec.events[0] == ("start", 0, 12) and rec.events[-1] == ("end", 12, None)
    assert kinds.count("step") == 12 and kinds.count("eval") == 2
    step6 = kinds.index("step", [e[:2] for e in rec.events].index(("step", 6)))
    # after step 6: the train record, the evaluation and its record, then the checkpoint
    assert rec.events[step6 + 1:step6 + 5] == [
        ("log", "train", 6), rec.events[step6 + 2], ("log", "eval", 6),
        ("checkpoint", 6, "step-00000006")]
    assert rec.events[step6 + 2][:2] == ("eval", 6) and "loss" in rec.events[step6 + 2][2]
    metrics = rec.events[1][2]
    assert set(metrics) == {"loss", "recon", "kl"}
    assert all(type(v) is float for v in metrics.values())


def test_early_stopping_ends_a_run_that_stops_improving(tmp_path) -> None:
    stop = EarlyStopping(patience=1, min_delta=1e9)  # no evaluation improves enough
    run = genzoo.train("vae", "torch", "tiny", out=tmp_path / "r", callbacks=[stop], **SHORT)
    meta = json.loads((tmp_path / "r" / "meta.json").read_text())
    assert meta["status"] == "complete" and meta["step"] == 12  # stopped at the 2nd eval
    assert run.metrics["stopped_early"]["step"] == 12
    stop = EarlyStopping(patience=1, min_delta=1e9)
    run = genzoo.train("vae", "torch", "tiny", out=tmp_path / "s", callbacks=[stop],
                       **{**SHORT, "eval_every": 3})
    assert run.metrics["stopped_early"]["step"] == 6
    assert "val_loss has not improved" in run.metrics["stopped_early"]["reason"]
    assert (tmp_path / "s" / "model.safetensors").is_file()


def test_early_stopping_counts_evaluations_without_improvement() -> None:
    stop = EarlyStopping("val_loss", patience=2, min_delta=0.1)
    ctx = TrainingContext(None, None, None, None, None, None, 100, 10)  # type: ignore[arg-type]
    for step, loss in enumerate([5.0, 4.0, 3.95, 3.0, 2.95, 2.97, 1.0], start=1):
        stop.on_eval(ctx, step, {"loss": loss})
        if ctx.stop_reason:
            break
    assert step == 6 and stop.best == 3.0 and stop.best_step == 4
    again = EarlyStopping(patience=2, min_delta=0.1)
    again.load_state_dict(json.loads(json.dumps(stop.state_dict())))
    assert again.state_dict() == stop.state_dict()
    with pytest.raises(ConfigError, match="reports loss"):
        EarlyStopping("val_bpc").on_eval(ctx, 1, {"loss": 1.0})
    with pytest.raises(ConfigError):
        EarlyStopping(mode="up")


def test_callback_state_is_split_into_tensors_and_values() -> None:
    class Arrays(Callback):
        def state_dict(self) -> dict[str, Any]:
            return {"w": np.arange(3.0), "n": 4}

        def load_state_dict(self, state: Mapping[str, Any]) -> None:
            self.got = dict(state)

    a, b = Arrays(), Arrays()
    assert callback_keys([a, b, EMA()]) == ["Arrays", "Arrays-2", "ema"]
    tensors, values = split_state([a, b])
    assert sorted(tensors) == ["callback.Arrays-2.w", "callback.Arrays.w"]
    assert values == {"Arrays": {"n": 4}, "Arrays-2": {"n": 4}}
    c, d = Arrays(), Arrays()
    restore_state([c, d], tensors, values)
    assert c.got["n"] == 4 and np.array_equal(d.got["w"], np.arange(3.0))


def test_callbacks_are_named_by_import_path() -> None:
    made = callback_from_path("genzoo.callbacks:EarlyStopping(patience=5, monitor='val_bpc')")
    assert isinstance(made, EarlyStopping) and made.patience == 5 and made.monitor == "bpc"
    for bad, message in (("genzoo.callbacks", "is not 'module:Name'"),
                         ("genzoo.callbacks:EarlyStopping(5)", "key=value"),
                         ("genzoo.callbacks:EarlyStopping(patience=x)", "key=value"),
                         ("genzoo.callbacks:EarlyStopping(nope=1)", "nope"),
                         ("genzoo.errors:ConfigError", "not a genzoo.callbacks.Callback"),
                         ("no_such_module:X", "no module")):
        with pytest.raises(GenzooError, match=message):
            callback_from_path(bad)


def test_a_bad_callback_on_the_command_line_is_one_line_and_status_2(tmp_path) -> None:
    out = run_genzoo("train", "vae", "--preset", "tiny", "--out", str(tmp_path / "r"),
                     "--callback", "no_such_module:Thing")
    assert out.returncode == 2 and out.stderr.count("\n") == 1, out.stderr
    assert "no module 'no_such_module'" in out.stderr and not (tmp_path / "r").exists()


def test_a_model_spec_names_the_callbacks_its_family_needs(tmp_path, monkeypatch) -> None:
    from genzoo.progress import Reporter
    from genzoo.rundir import RunDir
    from genzoo.session import Session

    monkeypatch.syspath_prepend(str(Path(__file__).parent))  # callback_probe
    p = genzoo.api.plan("vae", "torch", "tiny", **SHORT)
    p = dataclasses.replace(p, spec=dataclasses.replace(p.spec,
                                                        callbacks=("callback_probe:Count",)))
    run_dir = RunDir(tmp_path / "r")
    run_dir.prepare()
    try:
        Session(p, run_dir, Reporter()).run()
    finally:
        run_dir.lock.release()
    assert json.loads((tmp_path / "r" / "counts.json").read_text())["step"] == 12


# -- EMA ---------------------------------------------------------------------------------

def test_the_ema_decay_warms_up_to_its_value() -> None:
    assert decay_at(0.999, 0) == pytest.approx(0.1)
    assert decay_at(0.999, 10) == pytest.approx(11 / 20)
    assert decay_at(0.999, 10**6) == 0.999 and decay_at(0.9, 5, warmup=False) == 0.9
    with pytest.raises(ConfigError):
        EMA(1.0)


@pytest.mark.parametrize("backend", ["torch", "keras"])
def test_the_average_follows_its_formula_and_the_run_keeps_it(backend, tmp_path) -> None:
    gen = genzoo.create("vae", backend, "tiny", seed=1)
    average = gen.average_weights()
    start = gen.state()
    moved = {k: v + 1.0 for k, v in start.items()}
    gen.load_state(moved)
    average.update(0.75)
    got = average.state()
    assert set(got) <= set(start) and got
    for k in got:
        np.testing.assert_allclose(got[k], start[k] + 0.25, rtol=0, atol=1e-6)

    run = genzoo.train("vae", backend, "tiny", out=tmp_path / "r", ema_decay=0.9, **SHORT)
    from genzoo.checkpoint import load_tensors

    saved = load_tensors(tmp_path / "r" / "model.safetensors")
    raw = {k: v for k, v in saved.items() if not k.startswith("ema.")}
    ema = {k[4:]: v for k, v in saved.items() if k.startswith("ema.")}
    assert set(ema) == set(got) and any(not np.array_equal(ema[k], raw[k]) for k in ema)
    state = run.generator.state()  # the run's model samples with the average
    assert all(np.array_equal(state[k], ema.get(k, raw[k])) for k in raw)


# -- gradient accumulation ---------------------------------------------------------------

@pytest.mark.parametrize("backend", ["torch", "keras"])
def test_accumulated_micro_batches_make_the_large_batchs_update(backend, tmp_path) -> None:
    """The Transformer draws no noise: two micro-batches of 8 and one batch of 16 see the
    same data and give the same update, clipping and weight decay included."""
    kw = {"steps": 3, "log_every": 1, "checkpoint_every": 0, "eval_every": 0}
    a = genzoo.train("transformer", backend, "tiny", out=tmp_path / "a", batch_size=8,
                     accumulate=2, **kw)
    b = genzoo.train("transformer", backend, "tiny", out=tmp_path / "b", batch_size=16, **kw)
    sa, sb = a.generator.state(), b.generator.state()
    for k in sa:
        np.testing.assert_allclose(sa[k], sb[k], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose([r["loss"] for r in a.history.train],
                               [r["loss"] for r in b.history.train], rtol=1e-5)


def test_accumulation_is_refused_for_a_model_with_its_own_step(tmp_path) -> None:
    with pytest.raises(ConfigError, match="has its own train_step"):
        genzoo.train("gan", "torch", "tiny", out=tmp_path / "g", accumulate=2)


# -- TensorBoard -------------------------------------------------------------------------

@pytest.mark.parametrize("model", ["vae", "transformer"])
def test_tensorboard_event_files_read_back(model, tmp_path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = genzoo.train(model, "torch", "tiny", out=tmp_path / "r",
                       callbacks=["genzoo.tensorboard:TensorBoard"], **SHORT)
    events = EventAccumulator(str(tmp_path / "r" / "tensorboard"),
                              size_guidance={"images": 0, "tensors": 0, "scalars": 0})
    events.Reload()
    logged = [r["step"] for r in run.history.train]
    assert [e.step for e in events.Scalars("train/loss")] == logged  # one per logged step
    assert [e.value for e in events.Scalars("train/loss")] == pytest.approx(
        [r["loss"] for r in run.history.train])
    assert [e.step for e in events.Scalars("val/loss")] == [6, 12]
    if model == "vae":
        assert [e.step for e in events.Images("samples")] == [6, 12]
    else:
        text = events.Tensors("samples")[-1].tensor_proto.string_val[0].decode()
        assert len(text) > 16
    assert json.loads((tmp_path / "r" / "config.json").read_text())["callbacks"] == [
        "genzoo.tensorboard:TensorBoard"]


def test_tensorboard_without_its_package_is_one_clear_error(tmp_path, monkeypatch) -> None:
    import sys

    for name in [m for m in sys.modules if m.startswith("tensorboard.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # as if it were not installed
    with pytest.raises(ConfigError, match=r"pip install 'genzoo\[tensorboard\]'"):
        genzoo.train("vae", "torch", "tiny", out=tmp_path / "r",
                     callbacks=["genzoo.tensorboard:TensorBoard"])
    assert not (tmp_path / "r").exists()
