"""Settings chosen at sampling time (``--set`` on ``genzoo sample`` and ``genzoo eval``,
``genzoo.load(run, settings=...)``) and the choice of weights (``--weights``)."""

from __future__ import annotations

import doctest
import inspect
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

import genzoo
from genzoo.checkpoint import (WEIGHTS, load_tensors, read_checkpoint, save_tensors,
                               tensor_metadata, write_checkpoint)
from genzoo.config import ModelConfig, check_model_config_class
from genzoo.errors import CheckpointError, ConfigError
from genzoo.runs import CHECKPOINT_EMA, choose_weights, find_checkpoint
from genzoo.rundir import RunDir
from genzoo.sampling import TEMPERATURE, TOP_K
from tests.helpers import run_genzoo


@pytest.fixture(scope="module")
def gpt_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("settings") / "gpt"
    genzoo.train("transformer", preset="tiny", out=out)
    return out


@pytest.fixture(scope="module")
def vae_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("settings") / "vae"
    genzoo.train("vae", preset="tiny", out=out)
    return out


def _with_average(run: Path, out: Path) -> tuple[Path, dict[str, np.ndarray]]:
    """A copy of ``run`` whose final weights and latest checkpoint also hold a synthetic
    moving average (each floating-point tensor plus 1), and that average."""
    shutil.copytree(run, out)
    raw = load_tensors(out / WEIGHTS)
    average = {k: v + 1 for k, v in raw.items() if np.issubdtype(v.dtype, np.floating)}
    save_tensors(out / WEIGHTS, {**raw, **{f"ema.{k}": v for k, v in average.items()}},
                 tensor_metadata(run / WEIGHTS))
    latest = find_checkpoint(RunDir(out), "latest")
    weights, trainer, state = read_checkpoint(latest)
    step = state.pop("step")
    state.pop("files"), state.pop("format")
    write_checkpoint(latest.parent, step, weights,
                     {**trainer, **{CHECKPOINT_EMA + k: v + 1 for k, v in weights.items()
                                    if np.issubdtype(v.dtype, np.floating)}}, state, keep=10)
    return out, average


@pytest.fixture(scope="module")
def vae_ema(vae_run, tmp_path_factory) -> tuple[Path, dict[str, np.ndarray]]:
    return _with_average(vae_run, tmp_path_factory.mktemp("settings") / "vae-ema")


def _one_line_refusal(result, *words: str) -> None:
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr, result.stderr
    for word in words:
        assert word in result.stderr, result.stderr


# -- the settings ------------------------------------------------------------------------

def test_the_transformers_settings_default_to_what_sampling_did_before() -> None:
    from genzoo.protocols import TextGenerator
    from genzoo_transformer.config import TransformerConfig

    config = TransformerConfig()
    assert TransformerConfig.SAMPLING == ("sample_chars", "temperature", "top_k")
    assert (config.temperature, config.top_k) == (TEMPERATURE, TOP_K)
    defaults = inspect.signature(TextGenerator.generate).parameters
    assert (defaults["temperature"].default, defaults["top_k"].default) == (TEMPERATURE, TOP_K)
    assert ModelConfig.SAMPLING == ()


def test_with_settings_checks_fields_and_values() -> None:
    import genzoo.settings
    from genzoo.settings import settings_of, with_settings
    from genzoo_transformer.config import TransformerConfig

    assert doctest.testmod(genzoo.settings, optionflags=doctest.ELLIPSIS).failed == 0
    config = TransformerConfig()
    changed = with_settings(config, ["temperature=0", "top_k=0"])
    assert (changed.temperature, changed.top_k, changed.n_layer) == (0.0, 0, config.n_layer)
    assert settings_of(changed) == {"sample_chars": 500, "temperature": 0.0, "top_k": 0}
    assert with_settings(config, None) is config
    for bad, says in (({"n_layer": 8}, "'n_layer' is fixed when the model is trained; the "
                                       "settings that may be set after training are: "
                                       "sample_chars, temperature, top_k"),
                      ({"lr": 0.1}, "'lr' is fixed"),
                      ({"temprature": 1}, "Did you mean 'temperature'?"),
                      ({"top_k": -1}, "top_k"), ({"temperature": "nan"}, "finite"),
                      (["temperature"], "KEY=VALUE")):
        with pytest.raises(ConfigError, match=says.replace("?", r"\?")):
            with_settings(config, bad)


def test_a_plugins_sampling_fields_must_be_its_own() -> None:
    @dataclass(frozen=True)
    class Config(ModelConfig):
        width: int = 8
        SAMPLING = ("temperature",)

    with pytest.raises(ValueError, match="SAMPLING must be a tuple of its field names"):
        check_model_config_class(Config)


def test_a_training_field_is_refused_in_one_line_naming_the_settings(gpt_run, vae_run) -> None:
    settings = "sample_chars, temperature, top_k"
    evaluated = (gpt_run / "eval.json").exists()
    _one_line_refusal(run_genzoo("sample", str(gpt_run), "--set", "n_layer=8"),
                      "'n_layer' is fixed when the model is trained", settings)
    _one_line_refusal(run_genzoo("eval", str(gpt_run), "--set", "lr=0.1"), "'lr'", settings)
    _one_line_refusal(run_genzoo("sample", str(vae_run), "--set", "latent_dim=8"),
                      "'latent_dim' is fixed when the model is trained", "temperature")
    _one_line_refusal(run_genzoo("sample", str(gpt_run), "--temperature", "1",
                                 "--set", "temperature=0"), "the same setting")
    assert (gpt_run / "eval.json").exists() == evaluated  # refused before it was written


def test_temperature_zero_from_set_samples_the_likeliest_text(gpt_run) -> None:
    texts = []
    for seed in ("1", "2"):
        result = run_genzoo("sample", str(gpt_run), "--set", "temperature=0", "--seed", seed,
                            "--max-new-tokens", "24")
        assert result.returncode == 0, result.stderr
        texts.append(result.stdout)
    assert texts[0] == texts[1]
    model = genzoo.load(gpt_run, settings={"temperature": 0})
    assert model.config.temperature == 0.0
    greedy = model.generate("\n", max_new_tokens=24, seed=1)  # the config's, as the CLI
    assert greedy == model.generate("\n", max_new_tokens=24, seed=2)
    assert texts[0] == "\n" + greedy + "\n"
    drawn = [model.generate("\n", max_new_tokens=24, seed=s, temperature=1.0, top_k=None)
             for s in (1, 2)]  # an argument still wins
    assert drawn[0] != drawn[1]
    plain = genzoo.load(gpt_run)
    assert plain.generate("\n", max_new_tokens=24, seed=3) == \
        plain.generate("\n", max_new_tokens=24, seed=3, temperature=TEMPERATURE, top_k=TOP_K)


def test_top_k_zero_and_sample_chars_are_settings_of_genzoo_sample(gpt_run) -> None:
    result = run_genzoo("sample", str(gpt_run), "--set", "temperature=1.0", "--set", "top_k=0",
                        "--set", "sample_chars=7", "--weights", "raw")
    assert result.returncode == 0, result.stderr
    assert len(result.stdout) == 1 + 7 + 1  # the newline it starts from, 7, a newline
    model = genzoo.load(gpt_run, settings={"top_k": 0, "temperature": 1.0})
    assert model.generate("\n", max_new_tokens=30, seed=4) == \
        model.generate("\n", max_new_tokens=30, seed=4, temperature=1.0, top_k=None)


def test_an_old_config_without_the_settings_still_loads(gpt_run, tmp_path) -> None:
    old = shutil.copytree(gpt_run, tmp_path / "old")
    config = json.loads((old / "config.json").read_text())
    for key in ("temperature", "top_k", "sample_chars"):
        del config["model_config"][key]
    (old / "config.json").write_text(json.dumps(config))
    model = genzoo.load(old)
    assert (model.config.temperature, model.config.top_k) == (TEMPERATURE, TOP_K)
    assert genzoo.load(old, settings={"top_k": 5}).config.top_k == 5


def test_eval_json_records_the_settings_and_the_weights(gpt_run, tmp_path) -> None:
    result = genzoo.evaluate(gpt_run, settings={"temperature": "0.5"})
    saved = json.loads((gpt_run / "eval.json").read_text())
    for found in (result, saved):
        assert found["settings"] == {"sample_chars": 64, "temperature": 0.5, "top_k": 40}
        assert found["weights"] == "raw"
    with pytest.raises(ConfigError, match="'n_layer' is fixed"):
        genzoo.evaluate(gpt_run, settings={"n_layer": 1})
    averaged, _ = _with_average(gpt_run, tmp_path / "gpt-ema")
    cli = run_genzoo("eval", str(averaged), "--set", "top_k=3", "--json")
    assert cli.returncode == 0, cli.stderr
    found = json.loads((averaged / "eval.json").read_text())
    assert found["weights"] == "ema" and found["settings"]["top_k"] == 3
    assert json.loads(cli.stdout)["settings"] == found["settings"]
    assert genzoo.evaluate(averaged, weights="raw")["weights"] == "raw"


# -- the weights -------------------------------------------------------------------------

def test_choose_weights() -> None:
    raw = {"w": np.zeros(2, np.float32), "n": np.array([3], np.int64)}
    both = {**raw, "ema.w": np.ones(2, np.float32)}
    path = Path("model.safetensors")
    for tensors, which, used in ((raw, "auto", "raw"), (raw, "raw", "raw"),
                                 (both, "auto", "ema"), (both, "ema", "ema"),
                                 (both, "raw", "raw")):
        chosen, found = choose_weights(tensors, which, path)
        assert found == used and set(chosen) == {"w", "n"}
        assert chosen["w"].tolist() == ([1.0, 1.0] if used == "ema" else [0.0, 0.0])
    with pytest.raises(CheckpointError, match="model.safetensors holds no moving average"):
        choose_weights(raw, "ema", path)
    with pytest.raises(CheckpointError, match="ema.v, the average of a weight it lacks"):
        choose_weights({**both, "ema.v": np.ones(1)}, "auto", path)
    with pytest.raises(ConfigError, match="weights must be one of auto, ema, raw"):
        choose_weights(raw, "best", path)


def test_load_chooses_the_average_or_the_trained_weights(vae_run, vae_ema) -> None:
    run, average = vae_ema
    raw = {k: v for k, v in load_tensors(run / WEIGHTS).items() if not k.startswith("ema.")}
    for which, expected in (("auto", average), ("ema", average), ("raw", {})):
        state = genzoo.load(run, weights=which).state()
        assert set(state) == set(raw)
        for name, value in state.items():
            np.testing.assert_allclose(value, expected.get(name, raw[name]), atol=1e-6)
    plain = genzoo.load(vae_run).state()  # auto: no average, the trained weights
    assert all(np.array_equal(plain[k], raw[k]) for k in raw)
    with pytest.raises(CheckpointError, match="holds no moving average of the weights"):
        genzoo.load(vae_run, weights="ema")
    with pytest.raises(ConfigError, match="weights must be one of"):
        genzoo.load(vae_run, weights="EMA")


def test_a_checkpoint_loads_its_average_from_the_trainer_tensors(vae_run, vae_ema) -> None:
    run, _ = vae_ema
    weights, _, _ = read_checkpoint(find_checkpoint(RunDir(run), "latest"))
    for which, shift in (("auto", 1), ("ema", 1), ("raw", 0)):
        state = genzoo.load(run, checkpoint="latest", weights=which).state()
        for name, value in weights.items():
            floating = np.issubdtype(value.dtype, np.floating)
            np.testing.assert_allclose(state[name], value + shift * floating, atol=1e-6)
    with pytest.raises(CheckpointError, match="holds no moving average"):
        genzoo.load(vae_run, checkpoint="latest", weights="ema")


def test_genzoo_sample_takes_weights(vae_run, vae_ema, tmp_path) -> None:
    _one_line_refusal(run_genzoo("sample", str(vae_run), "--weights", "ema"),
                      "no moving average", "--weights raw")
    assert run_genzoo("sample", str(vae_run), "--weights", "best").returncode == 2
    out = tmp_path / "grid.png"
    result = run_genzoo("sample", str(vae_ema[0]), "--weights", "ema", "--out", str(out))
    assert result.returncode == 0 and out.is_file(), result.stderr


def test_a_run_trained_with_ema_decay_loads_its_average(tmp_path) -> None:
    run = genzoo.train("vae", preset="tiny", steps=5, out=tmp_path / "ema", ema_decay=0.9)
    saved = load_tensors(run.path / WEIGHTS)
    assert any(k.startswith("ema.") for k in saved)
    averaged = genzoo.load(run.path).state()
    trained = genzoo.load(run.path, weights="raw").state()
    assert any(not np.array_equal(averaged[k], trained[k]) for k in trained)
    assert all(np.array_equal(trained[k], saved[k]) for k in trained)
