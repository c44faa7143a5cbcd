"""Conditional generation: labels through the data, the loop, sampling, the CLI and eval."""

from __future__ import annotations

import json

import numpy as np
import pytest

import genzoo
from genzoo.conditioning import (balanced_labels, class_rows, draw_labels, label_ends,
                                 one_hot, split_batch, strip_conditions, valid_labels)
from genzoo.data import ImageBatches, fixed_batches
from genzoo.errors import ConfigError, DataError
from genzoo.protocols import DataInfo
from genzoo.testing import synthetic_images
from helpers import run_genzoo


# -- the maths and the checks -------------------------------------------------------------

def test_valid_labels_broadcasts_an_int_and_checks_every_label() -> None:
    assert valid_labels(7, 3, 10, "m").tolist() == [7, 7, 7]
    assert valid_labels(np.array([1, 2], np.uint8), 2, 10, "m").dtype == np.int64
    for bad, message in ((10, "out of range: this model has 10 classes, 0 to 9"),
                         (-1, "label -1 is out of range"), ([1, 2], "2 labels for 3 samples"),
                         ([1.5, 2, 3], "whole numbers"), (True, "whole numbers"),
                         ("7", "whole numbers"), ([[1], [2], [3]], "one class index per sample"),
                         ([0, 3, 10], "label 10 is out of range")):
        with pytest.raises(ConfigError, match=message):
            valid_labels(bad, 3, 10, "m")
    with pytest.raises(ConfigError, match="m is unconditional; it takes no labels"):
        valid_labels(0, 3, 0, "m")


def test_labels_drawn_from_a_seed_are_reproducible_and_uniform() -> None:
    a = draw_labels(20_000, 10, 3)
    assert np.array_equal(a, draw_labels(20_000, 10, 3))
    assert not np.array_equal(a, draw_labels(20_000, 10, 4))
    counts = np.bincount(a, minlength=10)
    assert counts.min() > 1800 and counts.max() < 2200  # uniform within sampling noise
    assert np.bincount(balanced_labels(25, 10)).tolist() == [3] * 5 + [2] * 5
    assert class_rows(3, 2).tolist() == [0, 0, 1, 1, 2, 2]


def test_interpolation_conditions_run_from_one_class_to_the_other() -> None:
    rows = strip_conditions((3, 8), 5, 10)
    assert rows.shape == (5, 10) and np.allclose(rows.sum(1), 1.0)
    assert rows[0, 3] == 1 and rows[-1, 8] == 1 and rows[2, 3] == rows[2, 8] == 0.5
    assert label_ends(4, 10, "m") == (4, 4) and label_ends((1, 2), 10, "m") == (1, 2)
    with pytest.raises(ConfigError, match="one label or two"):
        label_ends((1, 2, 3), 10, "m")


def test_data_info_records_classes_and_reads_runs_saved_without_them() -> None:
    info = DataInfo("image", (8, 8, 1), classes=("a", "b"))
    assert info.num_classes == 2 and DataInfo.from_json(info.to_json()) == info
    old = DataInfo.from_json({"kind": "image", "shape": [8, 8, 1], "vocab": ""})
    assert old.num_classes == 0 and "classes" not in old.to_json()
    assert info.without_classes() == old


def test_labelled_batches_keep_each_image_with_its_label() -> None:
    x = np.arange(40, dtype=np.float32).reshape(40, 1, 1, 1)
    y = one_hot(np.arange(40) % 4, 4)
    batches = ImageBatches(x, 8, seed=1, labels=y)
    for step in (0, 3, 7):
        images, labels = batches(step)
        assert np.array_equal(labels, one_hot(images[:, 0, 0, 0].astype(int) % 4, 4))
    assert np.array_equal(batches(2)[0], ImageBatches(x, 8, seed=1)(2))  # the same order
    pairs = list(fixed_batches(x, 16, labels=y))
    assert [len(a) for a, _ in pairs] == [16, 16, 8] and np.array_equal(pairs[2][1], y[32:])
    halves = split_batch(batches(0), 2)
    assert len(halves) == 2 and all(len(a) == len(b) == 4 for a, b in halves)


def test_evaluate_weights_labelled_batches_by_their_size() -> None:
    from genzoo.training import evaluate

    class Trainer:
        def eval_step(self, batch):
            return {"loss": float(batch[0].mean())}

        def to_floats(self, metrics):
            return dict(metrics)

    batches = [(np.zeros((3, 1)), None), (np.ones((1, 1)), None)]
    assert evaluate(Trainer(), iter(batches)) == {"loss": 0.25}


def test_the_class_grid_stores_its_layout_and_reads_back_its_cells(tmp_path) -> None:
    from genzoo.imaging import read_class_grid, save_class_grid

    images = np.random.default_rng(0).random((6, 28, 28, 1)).astype(np.float32)
    save_class_grid(tmp_path / "g.png", images, ["cat", "dog"], 3)
    cells, labels = read_class_grid(tmp_path / "g.png")
    assert labels.tolist() == [0, 0, 0, 1, 1, 1]
    assert np.abs(cells - images).max() <= 0.5 / 255 + 1e-6  # exact to 8 bits


def test_conditional_accuracy_and_per_class_recall_see_a_collapsed_class() -> None:
    from genzoo.metrics.conditional import conditional_accuracy, per_class_distances

    rng = np.random.default_rng(0)
    real = np.concatenate([rng.normal(0, 1, (200, 4)), rng.normal(5, 1, (200, 4))])
    real_y = np.repeat([0, 1], 200)
    fake = np.concatenate([rng.normal(0, 1, (200, 4)), np.repeat(real[200:201], 200, 0)])
    scores = per_class_distances(fake, real_y, real, real_y)
    assert scores["recall"][0] > 0.8 and scores["recall"][1] < 0.05  # one image, repeated
    assert scores["precision"][1] == 1.0 and scores["fd"][1] > 5 * scores["fd"][0]
    accuracy, per = conditional_accuracy(np.eye(2)[[0, 0, 1, 0]], np.array([0, 0, 1, 1]))
    assert accuracy == 0.75 and per.tolist() == [1.0, 0.5]


# -- models, runs and the CLI --------------------------------------------------------------

@pytest.fixture(scope="module")
def conditional_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cond")
    data = str(synthetic_images(tmp / "data"))
    run = genzoo.train("vae", "torch", "tiny-conditional", data=data, out=tmp / "run",
                       steps=20, checkpoint_every=10, keep_checkpoints=5)
    return run, data


def test_a_conditional_run_records_its_classes_and_writes_a_class_grid(conditional_run) -> None:
    from genzoo.imaging import read_class_grid

    run, _ = conditional_run
    saved = json.loads((run.path / "config.json").read_text())
    assert saved["data_info"]["classes"] == ["0", "1"]
    cells, labels = read_class_grid(run.path / "samples.png")
    assert labels.tolist() == [0] * 8 + [1] * 8
    assert np.abs(cells - run.generator.sample(16, seed=0, labels=labels)).max() < 1 / 255


def test_an_unconditional_run_records_no_classes(tmp_path) -> None:
    run = genzoo.train("vae", "torch", "tiny", data="digits", out=tmp_path / "r", steps=2)
    assert "classes" not in json.loads((run.path / "config.json").read_text())["data_info"]
    assert run.generator.num_classes == 0
    with pytest.raises(ConfigError, match="unconditional; it takes no labels"):
        run.generator.sample(2, seed=0, labels=[1, 2])


def test_a_conditional_model_on_unlabelled_data_is_refused_before_training(tmp_path) -> None:
    data = synthetic_images(tmp_path / "data", labels=False)
    result = run_genzoo("train", "gan", "--preset", "tiny-conditional", "--data", str(data),
                        "--out", str(tmp_path / "run"), "--steps", "2")
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert "is conditional, but dataset 'data' has no labels for its train, val, test splits" \
        in result.stderr
    assert not (tmp_path / "run").exists()
    with pytest.raises(DataError, match="has no labels"):
        genzoo.create("vae", preset="tiny-conditional", data=str(data))


def test_a_resumed_conditional_run_ends_where_an_uninterrupted_one_does(conditional_run,
                                                                         tmp_path) -> None:
    import shutil

    from genzoo.checkpoint import load_tensors

    run, data = conditional_run
    copy = tmp_path / "copy"
    shutil.copytree(run.path, copy)
    shutil.rmtree(copy / "checkpoints" / "step-00000020")
    (copy / "checkpoints" / "latest").write_text("step-00000010\n")
    (copy / "model.safetensors").unlink()
    genzoo.resume(copy)
    before, after = (load_tensors(p / "model.safetensors") for p in (run.path, copy))
    assert before.keys() == after.keys()
    assert all(np.array_equal(before[k], after[k]) for k in before)


def test_conditional_training_accumulates_micro_batches(tmp_path) -> None:
    data = str(synthetic_images(tmp_path / "data"))
    run = genzoo.train("vae", "torch", "tiny-conditional", data=data, out=tmp_path / "r",
                       steps=3, accumulate=2)
    assert run.generator.num_classes == 2 and run.metrics["test"]["loss"] > 0


def test_sample_label_options(conditional_run, tmp_path) -> None:
    from genzoo.imaging import read_class_grid

    run, _ = conditional_run
    out = tmp_path / "all.png"
    result = run_genzoo("sample", str(run.path), "--label", "all", "--n", "3", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert read_class_grid(out)[1].tolist() == [0, 0, 0, 1, 1, 1]
    assert run_genzoo("sample", str(run.path), "--label", "1", "--out",
                      str(tmp_path / "one.png")).returncode == 0
    strip = run_genzoo("sample", str(run.path), "--interpolate", "--label", "0,1", "--n", "4",
                       "--out", str(tmp_path / "strip.png"))
    assert strip.returncode == 0, strip.stderr
    for args, message in ((["--label", "2"], "--label 2 is out of range: this model has 2 "
                                             "classes, 0 to 1"),
                          (["--label", "x"], "'x' is not a class number"),
                          (["--label", "0,1"], "give one class"),
                          (["--label", "all", "--interpolate"], "--label all makes a grid")):
        result = run_genzoo("sample", str(run.path), *args)
        assert result.returncode == 2 and message in result.stderr, result.stderr
        assert result.stderr.count("\n") == 1


def test_label_on_an_unconditional_run_is_one_line(tmp_path) -> None:
    assert run_genzoo("train", "vae", "--preset", "tiny", "--steps", "2", "--out",
                      str(tmp_path / "r")).returncode == 0
    result = run_genzoo("sample", str(tmp_path / "r"), "--label", "3")
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert "is an unconditional model; it takes no labels" in result.stderr


def test_interpolating_between_labels_keeps_the_latent(conditional_run) -> None:
    gen = conditional_run[0].generator
    strip = gen.interpolate(4, 4, 3, labels=(0, 1))
    assert strip.shape == (3, 8, 8, 1)
    assert np.allclose(strip[0], gen.sample(1, seed=4, labels=0)[0], atol=1e-5)  # seed 4's z
    assert np.array_equal(strip[0], gen.interpolate(4, 4, 3, labels=0)[0])
    assert not np.array_equal(strip[-1], strip[0])
