"""The Transformer's maths and generation, checked in both frameworks."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import genzoo
from genzoo.errors import DataError
from helpers import run_genzoo

BACKENDS = ["torch", "keras"]


@pytest.fixture(scope="module", params=BACKENDS)
def model(request):
    """An untrained tiny GPT on tiny Shakespeare's 65-character vocabulary."""
    return genzoo.create("transformer", request.param, "tiny", data="tiny-shakespeare")


def _logits(gen, ids: np.ndarray) -> np.ndarray:
    if gen.spec.backend == "torch":
        import torch

        gen.module.eval()
        with torch.no_grad():
            return gen.module(torch.from_numpy(ids))[0].numpy()
    from keras import ops

    return ops.convert_to_numpy(gen.model.run_tokens(ids)[0])


def test_a_future_token_never_changes_earlier_logits(model) -> None:
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 65, (2, 16))
    changed = ids.copy()
    changed[:, 9] = (changed[:, 9] + 7) % 65
    a, b = _logits(model, ids), _logits(model, changed)
    np.testing.assert_allclose(a[:, :9], b[:, :9], rtol=0, atol=1e-5)
    assert not np.allclose(a[:, 9:], b[:, 9:], atol=1e-3)  # and later ones do change


def test_the_loss_at_initialisation_is_about_ln_vocab(model) -> None:
    rng = np.random.default_rng(1)
    batch = rng.integers(0, 65, (8, 17))
    logits = _logits(model, batch[:, :-1]).astype(np.float64)
    log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    loss = -np.take_along_axis(log_probs, batch[:, 1:, None], -1).mean()
    assert loss == pytest.approx(math.log(65), abs=0.1)


def test_the_cache_gives_the_same_tokens_as_the_uncached_path(model) -> None:
    # 40 tokens from a 3-character prompt: inside the 16-token window and well past it.
    kwargs = dict(max_new_tokens=40, temperature=1.0, top_k=None, seed=5)
    assert model.generate("The", cache=True, **kwargs) == model.generate("The", cache=False,
                                                                          **kwargs)
    assert model.generate("The", **kwargs) != model.generate("The", **{**kwargs, "seed": 6})


def test_each_cached_step_gives_the_full_forward_pass_logits(model) -> None:
    ids = np.random.default_rng(2).integers(0, 65, 16)  # one full window
    full = _logits(model, ids[None])[0]
    net = model.module if model.spec.backend == "torch" else model.model
    logits, cache = net.prefill(ids[:3].tolist())
    stepped = [logits]
    for position in range(3, 16):
        logits, cache = net.extend(int(ids[position]), cache, position)
        stepped.append(logits)
    np.testing.assert_allclose(np.stack(stepped), full[2:], rtol=0, atol=1e-5)
    import keras

    if model.spec.backend == "keras" and keras.backend.backend() == "tensorflow":
        # TensorFlow: fixed shapes, so one graph serves every position and prompt length
        # (and the steps must be graphs: no attribute, no pass).
        net.prefill(ids[:7].tolist())
        assert net._extend_graph.experimental_get_tracing_count() == 1
        assert net._prefill_graph.experimental_get_tracing_count() == 1


def test_characters_outside_the_vocabulary_are_a_clear_error(model) -> None:
    with pytest.raises(DataError, match="characters not in the model's vocabulary: '€'"):
        model.generate("ROMEO€", max_new_tokens=5)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_short_run_lowers_the_validation_loss(backend, tmp_path, shared_data) -> None:
    run = genzoo.train("transformer", backend, "tiny", data="tiny-shakespeare", steps=150,
                       eval_every=50, out=tmp_path / "run")
    losses = [r["val_loss"] for r in run.history.eval]
    assert losses[0] < math.log(65)
    assert losses[-1] < math.log(65) - 1.0, losses  # from 4.17 nats to well below 3.2
    assert run.metrics["best"]["val_loss"] == min(losses)
    assert (run.path / "samples.txt").read_text().strip()
    assert run.metrics["val"]["val_bpc"] == pytest.approx(losses[-1] / math.log(2))


def test_sample_streams_text_from_the_cli(tmp_path) -> None:
    run = tmp_path / "run"
    assert run_genzoo("train", "transformer", "--preset", "tiny", "--out", str(run)).returncode == 0
    result = run_genzoo("sample", str(run), "--prompt", "def ", "--max-new-tokens", "30",
                        "--seed", "3")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("def ") and len(result.stdout.rstrip("\n")) >= 30
    again = run_genzoo("sample", str(run), "--prompt", "def ", "--max-new-tokens", "30",
                       "--seed", "3")
    assert again.stdout == result.stdout
    bad = run_genzoo("sample", str(run), "--prompt", "ROMEO€")
    assert bad.returncode == 2 and bad.stdout == ""
    assert "characters not in the model's vocabulary: '€'" in bad.stderr
    nan = run_genzoo("sample", str(run), "--temperature", "nan")
    assert nan.returncode == 2 and nan.stdout == "" and "finite" in nan.stderr
    undecodable = run_genzoo("sample", str(run), "--prompt", "ab\udcff")  # the byte 0xff
    assert undecodable.returncode == 2 and "not in the model's vocabulary" in undecodable.stderr
    weights = (run / "model.safetensors").read_bytes()
    for own in ("model.safetensors", "config.json", "checkpoints/x.txt"):
        clobber = run_genzoo("sample", str(run), "--max-new-tokens", "5", "--out", str(run / own))
        assert clobber.returncode == 2 and "one of the run's own files" in clobber.stderr
    assert (run / "model.safetensors").read_bytes() == weights
    picture = run_genzoo("sample", str(run), "--out", str(tmp_path / "x.PNG"))
    assert picture.returncode == 2 and "samples are text" in picture.stderr
    # genzoo eval's image and VAE options are refused too, before the framework loads.
    for option, message in (("--k", "--k applies to models whose plugin has its own metrics"),
                            ("--samples", "--samples applies to image models")):
        refused = run_genzoo("eval", str(run), option, "200")
        assert refused.returncode == 2 and message in refused.stderr, refused.stderr
    assert not (tmp_path / "x.PNG").exists() and not (run / "eval.json").exists()


def test_the_sampler_runs_a_model_without_a_cache() -> None:
    """A text model whose prefill returns no cache is re-run on the window each time
    (the plugin tutorial promises this); extend is never called."""
    from genzoo.sampling import stream_tokens

    seen: list[list[int]] = []

    def prefill(ids):
        seen.append(list(ids))
        return np.eye(5)[(ids[-1] + 1) % 5] * 10.0, None  # always: the next id

    def extend(token, cache, position):
        raise AssertionError("extend called without a cache")

    tokens = list(stream_tokens(prefill, extend, [0], max_new_tokens=6, block_size=4,
                                temperature=0.0))
    assert tokens == [1, 2, 3, 4, 0, 1]
    assert seen[-1] == [2, 3, 4, 0]  # the last block_size ids


def test_the_sampler_reads_logits_as_one_vector() -> None:
    """Logits must be one vector: a (1, V) batch is read as its row, with a warning (top-k
    used to be quietly off for it); other shapes are the plugin's error."""
    from genzoo.errors import PluginError
    from genzoo.plugins import PluginWarning
    from genzoo.sampling import stream_tokens

    def batch_of_one(ids):
        return np.array([[0.0, 1.0, 9.0, 8.0, 0.0]]), None

    with pytest.warns(PluginWarning, match=r"prefill returns logits of shape \(1, 5\); genzoo "
                                           r"reads its one row, but expects shape \(5,\)"):
        tokens = list(stream_tokens(batch_of_one, None, [0], max_new_tokens=20, block_size=4,
                                    top_k=1, seed=0))
    assert tokens == [2] * 20  # top-k applies: always the likeliest

    def two_rows(ids):
        return np.zeros((2, 5)), None

    with pytest.raises(PluginError, match=r"prefill returned logits of shape \(2, 5\); it "
                                          r"must return one vector"):
        next(stream_tokens(two_rows, None, [0], max_new_tokens=1, block_size=4))


def test_torch_generation_runs_without_autograd() -> None:
    """A torch plugin's prefill and extend run under no_grad, whether or not they say so
    themselves (a forgotten decorator used to fail writing samples.txt after training)."""
    import torch

    g = genzoo.create("transformer", "torch", "tiny", data="tiny-shakespeare")
    seen = []
    for name in ("prefill", "extend"):
        original = getattr(g.module, name)

        def watched(*args, _original=original, _name=name):
            seen.append((_name, torch.is_grad_enabled()))
            return _original(*args)

        setattr(g.module, name, watched)
    g.generate("Th", max_new_tokens=4, seed=0)
    assert {name for name, _ in seen} == {"prefill", "extend"}
    assert not any(enabled for _, enabled in seen) and torch.is_grad_enabled()


def test_keras_on_torch_generates_without_touching_grad_mode() -> None:
    """Generation records no autograd graph, per step: two interleaved streams leave the
    caller's grad mode as it was (and cached and uncached agree on this backend too)."""
    script = textwrap.dedent("""
        import os
        os.environ["KERAS_BACKEND"] = "torch"
        import torch, genzoo
        g = genzoo.create("transformer", "keras", "tiny", data="tiny-shakespeare")
        a, b = (g.stream("Th", max_new_tokens=24, seed=1) for _ in range(2))
        first = next(a)
        assert torch.is_grad_enabled()
        "".join(b)  # the second stream runs to its end while the first is paused
        text = first + "".join(a)
        assert torch.is_grad_enabled()
        kwargs = dict(max_new_tokens=24, seed=3)
        assert g.generate("Th", cache=True, **kwargs) == g.generate("Th", cache=False, **kwargs)
        print("ok", len(text))
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split() == ["ok", "24"]


def test_in_nanogpts_random_order_genzoo_prints_nanogpts_log(shared_data) -> None:
    """genzoo's model, initialisation, optimiser, clipping and training step compute what
    nanoGPT's do: on windows drawn in nanoGPT's order at its seed (scripts/nanogpt_order.py)
    the nanogpt-cpu recipe prints the step-0 losses that runs of nanoGPT print, and 250
    steps into the run whose step-2000 line is nanoGPT's too (docs/models/transformer.md).
    Exact to the printed digit with torch 2.13's CPU kernels here (and nanoGPT's published
    runs on Apple CPUs agree); another platform's kernels may differ in the last digit."""
    script = Path(__file__).resolve().parents[1] / "scripts" / "nanogpt_order.py"
    done = subprocess.run([sys.executable, str(script), "--seed", "1337", "--until", "250"],
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "GENZOO_DATA_DIR": str(shared_data)})
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["step 0: train loss 4.1676, val loss 4.1649",
                                        "step 250: train loss 2.4293, val loss 2.4447"]
