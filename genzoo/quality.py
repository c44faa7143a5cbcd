"""Sample quality during training: the curve of ``genzoo eval``'s image metrics.

``genzoo train gan --callback genzoo.quality:SampleQuality(every=500)`` scores the model
every 500 steps and at the last one, and appends one JSON line per score to
``RUN/quality.jsonl``. Nothing here imports a framework until training starts.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any

from genzoo.callbacks import Callback, TrainingContext
from genzoo.errors import ConfigError
from genzoo.files import atomic_write_bytes

FILE = "quality.jsonl"


class SampleQuality(Callback):
    """Every ``every`` steps, and after the last, the Fréchet distance, Inception-style
    score, precision, recall and class histogram of ``samples`` generated images against
    the test split, in the domain classifier's features (``genzoo eval``'s protocol).

    Args:
        every: steps between scores.
        samples: generated images per score. Fewer than ``genzoo eval``'s 10,000 keep it
            quick, but the Fréchet distance is biased upward at small counts: the curve
            gives the shape, the run's final ``genzoo eval`` the figure.
        data: the dataset to score against [the run's].

    Each line holds ``step``, ``epoch``, ``train_s`` (seconds of training so far, the
    scoring itself left out), ``eval_s`` and the metrics. The scores use the weights
    being trained, not a moving average of them. Only the process that writes the run's
    files scores; a resumed run drops the lines after the step it resumes from.
    """

    key = "sample_quality"

    def __init__(self, every: int = 500, samples: int = 2000, data: str | None = None):
        if not isinstance(every, int) or every < 1:
            raise ConfigError(f"SampleQuality: every must be a positive number of steps, "
                              f"got {every!r}")
        if not isinstance(samples, int) or not 100 <= samples <= 100_000:
            raise ConfigError(f"SampleQuality: samples must lie in [100, 100000], got "
                              f"{samples!r}")
        self.every, self.samples, self.data = every, samples, data
        self.active = False
        self.train_s = 0.0  # training seconds before this process started (resumed runs)

    def on_train_start(self, run: TrainingContext) -> None:
        out = run.out
        self.active = run.is_main and out is not None
        if out is None or not self.active:
            return
        if run.spec.kind != "image":
            raise ConfigError(f"SampleQuality scores images; {run.spec.name} makes "
                              f"{run.spec.kind}")
        from genzoo.data import load_dataset
        from genzoo.metrics import gaussian_stats
        from genzoo.metrics.classifier import load_or_train

        name = self.data or json.loads((out / "config.json").read_text())["dataset"]
        self.dataset = load_dataset(name, "image")
        self.classifier = load_or_train(self.dataset)
        self.real, _ = self.classifier.features(self.dataset.test)
        self.real_stats = gaussian_stats(self.real)
        self.path = out / FILE
        kept = []
        if self.path.exists():  # a resume: the lines up to the step it starts from
            kept = [line for line in self.path.read_text().splitlines()
                    if line.strip() and json.loads(line)["step"] <= run.start_step]
        atomic_write_bytes(self.path, "".join(line + "\n" for line in kept).encode())
        self.started = time.perf_counter()
        self.scoring = 0.0

    def on_step_end(self, run: TrainingContext, step: int, metrics: Mapping[str, float]) -> None:
        if self.active and (step % self.every == 0 or step == run.total_steps):
            self.score(run, step)

    def score(self, run: TrainingContext, step: int) -> None:
        t0 = time.perf_counter()
        record: dict[str, Any] = {
            "step": step, "epoch": round(step / max(run.steps_per_epoch, 1), 4),
            "train_s": round(self.train_s + t0 - self.started - self.scoring, 2)}
        record.update(score_samples(run.generator, self.classifier, self.real,
                                    self.real_stats, self.samples))
        record["eval_s"] = round(time.perf_counter() - t0, 2)
        self.scoring += time.perf_counter() - t0
        with self.path.open("a") as f:
            f.write(json.dumps(record) + "\n")

    def state_dict(self) -> dict[str, Any]:
        done = self.train_s
        if self.active:
            done += time.perf_counter() - self.started - self.scoring
        return {"train_s": done}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.train_s = float(state.get("train_s", 0.0))


def score_samples(generator: Any, classifier: Any, real_features: Any, real_stats: Any,
                  samples: int) -> dict[str, float]:
    """``genzoo eval``'s image metrics (``genzoo.evaluation.score_images``), rounded for
    the curve's lines."""
    from genzoo.evaluation import score_images
    from genzoo.progress import Reporter

    metrics = score_images(generator, classifier, real_features, samples, real_stats,
                           Reporter())
    metrics.pop("draw")
    metrics.pop("is_std")
    digits = {"fd": 3, "is": 4}
    return {key: round(float(value), digits.get(key, 4)) for key, value in metrics.items()}
