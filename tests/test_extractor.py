"""The feature extractor of ``genzoo eval``: shipped for MNIST and Fashion-MNIST, the same
on every machine; trained on first use (one thread) and cached for other data, a damaged
cache being rebuilt with a warning."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest

from genzoo.checkpoint import load_tensors, save_tensors, tensors_sha256
from genzoo.errors import CheckpointError
from genzoo.metrics import classifier

ROOT = Path(__file__).resolve().parents[1]
SHIPPED_NAMES = ("mnist", "fashion-mnist")

# Loads the shipped MNIST extractor, then trains the digits classifier with a shortened
# recipe, and prints both digests.
_DIGESTS = """
import json, sys
from genzoo.data import load_dataset
from genzoo.metrics import classifier

classifier.RECIPE.update(epochs=1, min_steps=60)  # the full recipe takes a minute
shipped = classifier.load_or_train(load_dataset("mnist"))
trained = classifier.load_or_train(load_dataset("digits"))
print(json.dumps({"mnist": [shipped.info["source"], shipped.info["tensors_sha256"]],
                  "digits": [trained.info["source"], trained.info["tensors_sha256"]]}))
"""


@pytest.fixture
def short_recipe(monkeypatch, tmp_path) -> Path:
    """A private cache, and a recipe of a few dozen steps."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setitem(classifier.RECIPE, "epochs", 1)
    monkeypatch.setitem(classifier.RECIPE, "min_steps", 30)
    return tmp_path / "cache" / "genzoo" / "classifiers"


def test_the_extractor_is_the_same_whatever_the_thread_count(shared_data, tmp_path) -> None:
    found = []
    for threads in ("1", "2"):
        env = {**os.environ, "OMP_NUM_THREADS": threads, "OMP_WAIT_POLICY": "PASSIVE",
               "XDG_CACHE_HOME": str(tmp_path / f"cache-{threads}")}  # trained afresh
        done = subprocess.run([sys.executable, "-c", _DIGESTS], capture_output=True,
                              text=True, env=env, cwd=tmp_path, timeout=300)
        assert done.returncode == 0, done.stderr
        found.append(json.loads(done.stdout.splitlines()[-1]))
    assert found[0] == found[1]
    assert found[0]["mnist"][0] == "shipped" and found[0]["digits"][0] == "trained-on-first-use"
    record = json.loads((classifier.SHIPPED / "mnist.json").read_text())
    assert found[0]["mnist"][1] == record["tensors_sha256"]


@pytest.mark.parametrize("name", SHIPPED_NAMES)
def test_the_shipped_extractors_match_their_records(name) -> None:
    weights = classifier.SHIPPED / f"{name}.safetensors"
    record = json.loads((classifier.SHIPPED / f"{name}.json").read_text())
    tensors = load_tensors(weights)
    assert tensors_sha256(tensors) == record["tensors_sha256"]
    assert record["dataset"] == name and record["classes"] == 10
    assert record["shape"] == [28, 28, 1] and len(record["data_sha256"]) == 64
    assert record["recipe"] == classifier.RECIPE and record["trained_with"]["threads"] == 1
    assert record["test_accuracy"] > (0.98 if name == "mnist" else 0.88)
    # float32 tensors of the evaluation's own network, and small enough to ship
    net = classifier._network((28, 28, 1), 10)
    assert {k: tuple(v.shape) for k, v in tensors.items()} == {
        k: tuple(v.shape) for k, v in net.state_dict().items()}
    assert {v.dtype for v in tensors.values()} == {np.dtype(np.float32)}
    assert weights.stat().st_size < 2_500_000
    # A non-editable install ships them.
    package_data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-data"]["genzoo"]
    assert "metrics/extractors/*.safetensors" in package_data
    assert "metrics/extractors/*.json" in package_data


@pytest.mark.parametrize("name", SHIPPED_NAMES)
def test_the_real_datasets_use_the_shipped_extractor(shared_data, name, monkeypatch) -> None:
    from genzoo.data import load_dataset

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("trained a classifier")

    monkeypatch.setattr(classifier, "train_classifier", refuse)
    data = load_dataset(name)
    clf = classifier.load_or_train(data)
    record = json.loads((classifier.SHIPPED / f"{name}.json").read_text())
    assert data.checksum == record["data_sha256"]
    assert clf.info["source"] == "shipped"
    assert clf.info["tensors_sha256"] == record["tensors_sha256"]
    _, probs = clf.features(data.test[:1000])
    assert (probs.argmax(1) == data.test_labels[:1000]).mean() > 0.85


def _ship_digits(folder: Path) -> tuple[object, Path]:
    """A shipped extractor for the bundled digits, in ``folder``, as the build script
    writes it."""
    from genzoo.checkpoint import atomic_write_json
    from genzoo.data import load_dataset

    data = load_dataset("digits")
    clf, tensors = classifier.build(data)
    folder.mkdir(parents=True)
    save_tensors(folder / "digits.safetensors", tensors)
    atomic_write_json(folder / "digits.json", clf.info)
    return data, folder / "digits.safetensors"


def test_a_damaged_shipped_extractor_is_a_clear_error(short_recipe, tmp_path,
                                                      monkeypatch) -> None:
    monkeypatch.setattr(classifier, "SHIPPED", tmp_path / "extractors")
    data, weights = _ship_digits(tmp_path / "extractors")
    shipped = classifier.load_or_train(data)
    assert shipped.info["source"] == "shipped" and not short_recipe.exists()  # no training
    tensors = load_tensors(weights)
    tensors["0.bias"] = tensors["0.bias"] + np.float32(1e-3)  # other weights, same format
    save_tensors(weights, tensors)
    with pytest.raises(CheckpointError, match=r"the feature extractor shipped with genzoo for "
                                              r"'digits' is damaged \(the tensors in .* have "
                                              r"sha256 .*\); reinstall genzoo"):
        classifier.load_or_train(data)
    save_tensors(weights, {k: v.astype(np.float64) for k, v in tensors.items()})
    record = json.loads(weights.with_suffix(".json").read_text())
    record["tensors_sha256"] = tensors_sha256(load_tensors(weights))
    weights.with_suffix(".json").write_text(json.dumps(record))
    with pytest.raises(CheckpointError, match="holds tensors that are not float32"):
        classifier.load_or_train(data)


def _trained(cache: Path) -> tuple[object, str, Path, Path]:
    from genzoo.data import load_dataset

    data = load_dataset("digits")
    clf = classifier.load_or_train(data)
    assert clf.info["source"] == "trained-on-first-use"
    [weights] = cache.glob("digits-*.safetensors")
    return data, clf.info["tensors_sha256"], weights, weights.with_suffix(".json")


def test_a_truncated_classifier_cache_is_rebuilt_with_a_warning(short_recipe) -> None:
    data, digest, weights, record = _trained(short_recipe)
    again = classifier.load_or_train(data)  # cached: no warning, same weights
    assert again.info["tensors_sha256"] == digest
    for damaged, cut in ((weights, 1000), (record, 10)):
        damaged.write_bytes(damaged.read_bytes()[:cut])
        with pytest.warns(UserWarning, match="the cached classifier for 'digits' is damaged"):
            rebuilt = classifier.load_or_train(data)
        assert rebuilt.info["tensors_sha256"] == digest
        assert tensors_sha256(load_tensors(weights)) == digest  # and the cache is whole
    weights.unlink()  # a record without its weights
    with pytest.warns(UserWarning, match="does not exist"):
        classifier.load_or_train(data)


@pytest.mark.parametrize("text", ["[" * 100_000 + "]" * 100_000,  # json recurses: RecursionError
                                  '{"classes": ' + "9" * 5000 + "}",  # int too long to convert
                                  json.dumps({"pad": "x" * 2_000_000})])  # far too large
def test_a_nested_or_huge_cache_record_is_rebuilt_with_a_warning(short_recipe, text) -> None:
    data, digest, weights, record = _trained(short_recipe)
    record.write_text(text)
    with pytest.warns(UserWarning, match="the cached classifier for 'digits' is damaged"):
        rebuilt = classifier.load_or_train(data)
    assert rebuilt.info["tensors_sha256"] == digest
    assert json.loads(record.read_text())["tensors_sha256"] == digest
    reference = classifier.reference_values(rebuilt, data, 100, 0)
    cached = short_recipe / f"reference-{digest[:16]}.json"
    assert json.loads(cached.read_text())  # in the user's cache, keyed by the digest
    cached.write_text(text)
    with pytest.warns(UserWarning, match="the cached reference values are damaged"):
        assert classifier.reference_values(rebuilt, data, 100, 0) == reference
    assert classifier.reference_values(rebuilt, data, 100, 0) == reference  # cached again


def test_training_restores_the_thread_count(short_recipe) -> None:
    import torch

    from genzoo.data import load_dataset

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        classifier.build(load_dataset("digits"))
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_eval_on_mnist_records_the_shipped_extractor(shared_data, tmp_path) -> None:
    import genzoo

    run = genzoo.train("gan", "torch", "tiny", data="mnist", steps=2, out=tmp_path / "gan")
    protocol = genzoo.evaluate(run.path, samples=200)["protocol"]
    record = json.loads((classifier.SHIPPED / "mnist.json").read_text())
    extractor = protocol["feature_extractor"]
    assert extractor["source"] == "shipped"
    assert extractor["tensors_sha256"] == record["tensors_sha256"]
    assert extractor["test_accuracy"] == record["test_accuracy"]
    assert protocol["generated_images"] == protocol["test_images"] == 200  # the reference's n
