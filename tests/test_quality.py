"""The SampleQuality callback: genzoo eval's image metrics as a curve over training."""

from __future__ import annotations

import json
import math
import shutil

import genzoo
from genzoo.checkpoint import checkpoint_name
from genzoo.quality import SampleQuality
from helpers import run_genzoo


def _lines(run) -> list[dict]:
    return [json.loads(line) for line in (run / "quality.jsonl").read_text().splitlines()]


def test_the_curve_has_a_line_per_score_and_survives_a_resume(tmp_path) -> None:
    quality = "genzoo.quality:SampleQuality(every=10, samples=200)"
    runs = {}
    for name in ("straight", "resumed"):
        runs[name] = tmp_path / name
        genzoo.train("gan", "torch", "tiny", data="digits", out=runs[name], steps=25,
                     checkpoint_every=10, keep_checkpoints=5, callbacks=[quality])
    lines = _lines(runs["straight"])
    assert [r["step"] for r in lines] == [10, 20, 25]  # every 10 steps, and the last
    for r in lines:
        assert {"fd", "is", "precision", "recall", "class_share_min", "class_share_max",
                "train_s", "eval_s", "epoch"} <= set(r)
        assert math.isfinite(r["fd"]) and 1 <= r["is"] <= 10
        assert 0 <= r["class_share_min"] <= 0.1 <= r["class_share_max"] <= 1
    assert lines[0]["train_s"] <= lines[1]["train_s"] <= lines[2]["train_s"]
    cut = runs["resumed"]  # back to step 10: the scores of 20 and 25 are made again
    shutil.rmtree(cut / "checkpoints" / checkpoint_name(20))
    (cut / "checkpoints" / "latest").write_text(checkpoint_name(10) + "\n")
    (cut / "model.safetensors").unlink()
    genzoo.resume(cut)
    again = _lines(cut)
    assert [r["step"] for r in again] == [10, 20, 25]
    for a, b in zip(lines, again):  # training resumes bit for bit, so do the scores
        assert a["fd"] == b["fd"] and a["is"] == b["is"], (a, b)
    assert again[1]["train_s"] >= again[0]["train_s"]  # the time before the cut counts


def test_sample_quality_refuses_bad_arguments_and_text_models(tmp_path) -> None:
    for args, says in (("every=0", "every must be a positive number of steps"),
                       ("samples=5", "samples must lie in [100, 100000]")):
        result = run_genzoo("train", "gan", "--preset", "tiny", "--data", "digits",
                            "--out", str(tmp_path / "bad"),
                            "--callback", f"genzoo.quality:SampleQuality({args})")
        assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
        assert says in result.stderr
    result = run_genzoo("train", "transformer", "--preset", "tiny", "--out", str(tmp_path / "t"),
                        "--callback", "genzoo.quality:SampleQuality")
    assert result.returncode == 2 and "SampleQuality scores images" in result.stderr, \
        result.stderr
    assert SampleQuality().every == 500


def test_scoring_leaves_training_unchanged(tmp_path) -> None:
    """Loading the classifier and scoring draw from no stream training uses: a run with
    the callback ends with the weights of a run without it."""
    import numpy as np

    from genzoo.checkpoint import load_tensors

    for name, callbacks in (("plain", []), ("scored", ["genzoo.quality:SampleQuality(every=5, "
                                                       "samples=100)"])):
        genzoo.train("gan", "torch", "tiny", data="digits", out=tmp_path / name, steps=12,
                     callbacks=callbacks)
    plain, scored = (load_tensors(tmp_path / n / "model.safetensors") for n in ("plain", "scored"))
    assert plain.keys() == scored.keys()
    assert all(np.array_equal(plain[k], scored[k]) for k in plain)
