"""Evaluation metrics on known inputs, and ``genzoo eval`` end to end."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

import genzoo
from genzoo.metrics import (bits_per_char, frechet_distance, gaussian_stats, inception_score,
                            perplexity, precision_recall)
from genzoo.testing import synthetic_images
from helpers import run_genzoo


def test_the_frechet_distance_of_a_set_with_itself_is_zero() -> None:
    x = np.random.default_rng(0).normal(size=(2000, 16))
    stats = gaussian_stats(x)
    assert frechet_distance(*stats, *stats) == pytest.approx(0.0, abs=1e-6)


def test_the_frechet_distance_of_two_gaussians_has_its_closed_form() -> None:
    rng = np.random.default_rng(1)
    a = rng.normal(size=(4, 4))
    s1 = a @ a.T + np.eye(4)
    s2 = np.diag([1.0, 2.0, 3.0, 4.0])
    mu1, mu2 = np.zeros(4), np.array([1.0, -1.0, 0.5, 0.0])
    from scipy.linalg import sqrtm

    expected = (mu1 - mu2) @ (mu1 - mu2) + np.trace(s1 + s2 - 2 * sqrtm(s1 @ s2).real)
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-9)
    # Diagonal covariances: sum of (sqrt(s1) - sqrt(s2))^2 plus the squared mean gap.
    d1, d2 = np.array([1.0, 4.0]), np.array([9.0, 1.0])
    closed = 1.0 + ((np.sqrt(d1) - np.sqrt(d2)) ** 2).sum()
    assert frechet_distance(np.zeros(2), np.diag(d1), np.array([1.0, 0.0]),
                            np.diag(d2)) == pytest.approx(closed)


def test_inception_score_limits() -> None:
    assert inception_score(np.full((100, 10), 0.1), splits=1)[0] == pytest.approx(1.0)
    assert inception_score(np.eye(10)[np.arange(100) % 10], splits=1)[0] == pytest.approx(10.0)


def test_precision_and_recall_limits() -> None:
    rng = np.random.default_rng(2)
    real = rng.normal(size=(300, 8))
    assert precision_recall(real, real.copy()) == (1.0, 1.0)
    assert precision_recall(real, real + 100.0) == (0.0, 0.0)
    narrow = real[:, :] * 0.05  # a collapsed generator: precise, no recall
    precision, recall = precision_recall(real, narrow)
    assert precision > 0.9 and recall < 0.2


def test_bits_per_char_is_nats_over_ln2() -> None:
    assert bits_per_char(1.0) == pytest.approx(1 / math.log(2))
    assert perplexity(math.log(65)) == pytest.approx(65.0)


@pytest.mark.parametrize("backend", ["torch", "keras"])
def test_the_iwae_bound_tightens_with_k(backend, tmp_path) -> None:
    from genzoo.data import load_dataset
    from genzoo_vae.config import binarize
    from genzoo_vae.evaluate import log_likelihoods

    run = genzoo.train("vae", backend, steps=400, out=tmp_path / "run")  # the mlp preset
    x = binarize(load_dataset("digits").test)
    nll = {k: -log_likelihoods(run.generator, x, k).mean() for k in (1, 10, 100, 1000)}
    # k = 1 is the ELBO estimate: it matches the loop's test negative ELBO.
    assert nll[1] == pytest.approx(run.metrics["test"]["loss"], rel=0.02)
    assert nll[100] < nll[10] < nll[1]  # the bound tightens as k grows...
    assert nll[1000] < nll[100] + 0.01  # (within Monte Carlo noise once converged)
    assert nll[10] - nll[100] < nll[1] - nll[10]  # ...by less and less: it converges
    assert abs(nll[100] - nll[1000]) < nll[10] - nll[100]


def test_an_unlabelled_image_dataset_is_refused_before_any_metric() -> None:
    from genzoo.data import ImageData
    from genzoo.errors import DataError
    from genzoo.evaluation import _check_enough

    x = np.zeros((20, 4, 4, 1), np.float32)
    with pytest.raises(DataError, match="'blank' has no labels for its train, val, test split"):
        _check_enough(ImageData("blank", x, x, x))  # a plugin's data, without labels
    labels = np.zeros(20, np.int64)
    with pytest.raises(DataError, match="'blank' has no labels for its test split"):
        _check_enough(ImageData("blank", x, x, x, labels, labels))
    _check_enough(ImageData("blank", x, x, x, labels, labels, labels))


def test_eval_refuses_k_for_a_gan(tmp_path) -> None:
    run = genzoo.train("gan", "torch", "tiny", steps=2, out=tmp_path / "gan")
    refused = run_genzoo("eval", str(run.path), "--k", "5")
    assert refused.returncode == 2 and "--k applies to models whose plugin has its own " \
        "metrics (the VAE's likelihood); gan has none" in refused.stderr
    assert not (run.path / "eval.json").exists()


def test_genzoo_eval_for_an_image_model_writes_its_protocol(tmp_path) -> None:
    data = synthetic_images(tmp_path / "bars", shape=(8, 8), n_train=600, n_test=200)
    run = tmp_path / "run"
    assert run_genzoo("train", "vae", "--preset", "tiny", "--data", str(data), "--out",
                      str(run)).returncode == 0
    result = run_genzoo("eval", str(run), "--k", "20", "--samples", "200", "--json")
    assert result.returncode == 0, result.stderr
    printed = json.loads(result.stdout)
    saved = json.loads((run / "eval.json").read_text())
    assert printed == saved
    metrics, protocol = saved["metrics"], saved["protocol"]
    assert {"test_nelbo", "test_nll_iwae_k20", "fd", "is", "precision", "recall"} <= set(metrics)
    assert metrics["test_nll_iwae_k20"] <= metrics["test_nelbo"]
    shares = protocol["class_shares"]  # the class histogram of the 200 samples (2 classes)
    assert len(shares) == 2 and sum(shares) == pytest.approx(1.0, abs=1e-3)
    assert metrics["class_share_min"] == pytest.approx(min(shares), abs=1e-4)
    assert metrics["class_share_max"] == pytest.approx(max(shares), abs=1e-4)
    assert protocol["generated_images"] == 200 and protocol["iwae_samples"] == 20
    extractor = protocol["feature_extractor"]
    assert extractor["test_accuracy"] > 0.95
    assert extractor["source"] == "trained-on-first-use"  # no extractor ships for these
    from genzoo.checkpoint import load_tensors, tensors_sha256

    assert extractor["tensors_sha256"] == tensors_sha256(load_tensors(Path(extractor["path"])))
    assert {"fd_train_vs_test", "is_test"} <= set(protocol["reference"])
    assert protocol["reference"]["fd_train_vs_test"] < metrics["fd"]
    few = synthetic_images(tmp_path / "few", shape=(8, 8), n_train=600, n_test=9)
    refused = run_genzoo("eval", str(run), "--data", str(few))
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1, refused.stderr
    assert "'few' has 9 images; genzoo eval needs at least 10" in refused.stderr


def test_genzoo_eval_for_a_text_model(tmp_path) -> None:
    run = tmp_path / "run"
    assert run_genzoo("train", "transformer", "--preset", "tiny", "--out",
                      str(run)).returncode == 0
    result = run_genzoo("eval", str(run), "--json")
    assert result.returncode == 0, result.stderr
    metrics = json.loads(result.stdout)["metrics"]
    assert metrics["val_bpc"] == pytest.approx(metrics["val_loss"] / math.log(2))
    assert metrics["val_perplexity"] == pytest.approx(math.exp(metrics["val_loss"]))
    assert abs(metrics["val_loss_estimate"] - metrics["val_loss"]) < 0.5
    # Another text is scored in the run's own vocabulary, into its own file.
    from genzoo.data import load_dataset

    text = load_dataset("python-docs").text
    (tmp_path / "part.txt").write_text(text[-len(text) // 5:])  # ids differ in its own vocab
    other = run_genzoo("eval", str(run), "--data", str(tmp_path / "part.txt"), "--json")
    assert other.returncode == 0, other.stderr
    result_other = json.loads(other.stdout)
    assert json.loads((run / "eval-part.txt.json").read_text()) == result_other
    assert abs(result_other["metrics"]["val_loss"] - metrics["val_loss"]) < 0.3
    assert json.loads((run / "eval.json").read_text())["metrics"] == metrics  # untouched
    (tmp_path / "snow.txt").write_text("snow \u2603 " * 200)
    refused = run_genzoo("eval", str(run), "--data", str(tmp_path / "snow.txt"))
    assert refused.returncode == 2 and "characters not in the model's vocabulary: '\u2603'" \
        in refused.stderr
    (tmp_path / "short.txt").write_text(text[:100])  # a validation split of 10 characters
    short = run_genzoo("eval", str(run), "--data", str(tmp_path / "short.txt"))
    assert short.returncode == 2 and "the validation split of 'short.txt' has 10" in short.stderr


def test_a_long_step_reports_that_it_is_still_going() -> None:
    import io
    import time

    from genzoo.progress import PlainReporter, Reporter

    out = io.StringIO()
    reporter = PlainReporter(out)
    reporter.heartbeat = 0.02
    with reporter.task("pixelcnn: generating 10000 images"):
        time.sleep(0.15)
    lines = out.getvalue().splitlines()
    assert lines[0] == "pixelcnn: generating 10000 images ..."
    assert len([line for line in lines if line.endswith("s so far")]) >= 2
    assert lines[-1].startswith("pixelcnn: generating 10000 images: done in 0.")
    with Reporter().task("silent"):  # the API's default reporter says nothing
        pass


def test_the_terminal_reporter_reports_long_steps_with_or_without_its_bar() -> None:
    """The rich reporter's bar task once shadowed its ``task()`` method: a long step
    after ``start`` raised "'int' object is not callable"."""
    import io

    from genzoo.progress import RichReporter

    out = io.StringIO()
    reporter = RichReporter(out)
    reporter.message("before the bar: [bold] stays literal")
    with reporter.task("family metrics"):
        pass
    reporter.start(10, 2, "vae")
    reporter.advance(5)
    reporter.metrics(5, {"loss": 1.5})
    with reporter.task("generating 100 images"):
        pass
    reporter.close()
    reporter.close()  # twice is harmless
    text = out.getvalue()
    assert "before the bar: [bold] stays literal" in text
    assert "family metrics: done in" in text and "generating 100 images: done in" in text


def test_compare_refuses_sample_metrics_measured_on_different_sample_counts(tmp_path) -> None:
    from genzoo.comparison import SampleCountsDiffer, compare
    from genzoo.errors import GenzooError

    for name, seed in (("a", 0), ("b", 1), ("c", 2)):
        run = genzoo.train("vae", "torch", "tiny", steps=2, seed=seed, out=tmp_path / name)
        samples = 500 if name == "b" else 10_000
        (run.path / "eval.json").write_text(json.dumps(
            {"metrics": {"test_nelbo": 30.0 + seed, "fd": 10.0 + seed, "is": 5.0},
             "protocol": {"generated_images": samples, "test_images": min(samples, 360)}}))
    same = compare([tmp_path / "a", tmp_path / "c"])
    assert [r["eval_samples"] for r in same["runs"]] == [10_000, 10_000]
    assert same["groups"][0]["metrics"]["eval fd"]["mean"] == pytest.approx(11.0)
    with pytest.raises(SampleCountsDiffer, match=r"different numbers of generated images "
                                                 r"\(b: 500 images; a, c: 10,000 images\)"):
        compare([tmp_path])
    assert issubclass(SampleCountsDiffer, GenzooError)
    refused = run_genzoo("compare", str(tmp_path))
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1, refused.stderr
    assert "b: 500 images; a, c: 10,000 images" in refused.stderr
    # Without the metrics of generated images, the runs compare.
    nelbo = run_genzoo("compare", str(tmp_path), "--metric", "nelbo")
    assert nelbo.returncode == 0 and "eval test_nelbo" in nelbo.stdout, nelbo.stderr
