"""``genzoo eval``: one protocol for every run, written to ``RUN/eval.json``.

- every model: its family's own metrics, if the plugin provides an evaluator (the VAE's
  test negative ELBO and importance-weighted NLL);
- image models: Fréchet distance, Inception-style score and k-NN precision/recall of
  generated images against the test split, in the feature space of a domain
  classifier, with the real-data reference values;
- text models: the validation loss in nats and bits per character and the perplexity,
  both nanoGPT's random-window estimate and a full pass.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from genzoo.checkpoint import RunDir, atomic_write_json
from genzoo.config import TrainConfig, from_dict
from genzoo.progress import Reporter
from genzoo.registry import get_registry, import_object

EVAL_SEED = 0  # seeds the generated samples
SAMPLES = 10_000  # generated images, against the 10,000 test images


def evaluate_run(run: str | Path, *, data: str | None = None, k: int = 1000,
                 samples: int = SAMPLES, reporter: Reporter | None = None) -> dict[str, Any]:
    """Evaluate a run on its dataset's test split and write ``eval.json`` into it."""
    import genzoo
    from genzoo.data import load_dataset

    reporter = reporter or Reporter()
    run_dir = RunDir(run)
    saved = run_dir.read_config()
    spec = get_registry().model(saved["model"], saved["backend"])
    dataset = load_dataset(data or saved["dataset"], spec.kind)
    generator = genzoo.load(run)
    t0 = time.perf_counter()
    metrics: dict[str, float] = {}
    protocol: dict[str, Any] = {"dataset": dataset.name, "split": "test"}
    if spec.evaluator:
        reporter.message(f"{spec.name}: family metrics")
        evaluate_family = import_object(spec.evaluator, f"evaluator of model '{spec.name}'")
        family, family_protocol = evaluate_family(generator, dataset, k=k)
        metrics.update(family)
        protocol.update(family_protocol)
    if spec.kind == "image":
        reporter.message(f"{spec.name}: sample quality from {samples} images")
        quality, quality_protocol = image_quality(generator, dataset, samples, reporter)
        metrics.update(quality)
        protocol.update(quality_protocol)
    else:
        text, text_protocol = text_metrics(generator, dataset, saved)
        metrics.update(text)
        protocol.update(text_protocol)
    result = {"model": spec.name, "backend": spec.backend, "run": str(run_dir.path),
              "metrics": metrics, "protocol": protocol,
              "wall_time_s": round(time.perf_counter() - t0, 2)}
    atomic_write_json(run_dir.path / "eval.json", result)
    return result


def image_quality(generator: Any, data: Any, samples: int,
                  reporter: Reporter) -> tuple[dict[str, float], dict[str, Any]]:
    from genzoo.metrics import (frechet_distance, gaussian_stats, inception_score,
                                precision_recall)
    from genzoo.metrics.classifier import load_or_train, reference_values

    clf = load_or_train(data, reporter)
    n = min(samples, len(data.test))
    fake_f, fake_p = clf.features(generator.sample(samples, seed=EVAL_SEED))
    real_f, _ = clf.features(data.test[:n])
    is_mean, is_std = inception_score(fake_p)
    precision, recall = precision_recall(real_f, fake_f)
    metrics = {"fd": frechet_distance(*gaussian_stats(fake_f), *gaussian_stats(real_f)),
               "is": is_mean, "is_std": is_std, "precision": precision, "recall": recall}
    reference = reference_values(clf, data, n, EVAL_SEED)
    protocol = {
        "generated_images": samples, "test_images": n, "sample_seed": EVAL_SEED,
        "feature_extractor": {k: clf.info[k] for k in
                              ("dataset", "test_accuracy", "sha256", "recipe", "path")
                              if k in clf.info},
        "features": "penultimate layer (128) of the domain classifier",
        "inception_score_splits": 10, "precision_recall_k": 3,
        "reference": reference,
    }
    return metrics, protocol


def text_metrics(generator: Any, data: Any, saved: dict[str, Any]
                 ) -> tuple[dict[str, float], dict[str, Any]]:
    from genzoo.backends import get_backend
    from genzoo.data import TextBatches
    from genzoo.data.text import windows
    from genzoo.metrics import bits_per_char, perplexity
    from genzoo.training import evaluate

    cfg = from_dict(TrainConfig, saved["train_config"])
    block = generator.config.block_size
    trainer = get_backend(generator.spec.backend).make_trainer(generator, cfg)
    n = cfg.eval_batches or 20
    sampled = TextBatches(data.val, cfg.batch_size, block, cfg.seed, stream=1)
    estimate = evaluate(trainer, sampled.take(n))["loss"]
    full = evaluate(trainer, windows(data.val, block, cfg.batch_size))["loss"]
    metrics = {"val_loss_estimate": estimate, "val_bpc_estimate": bits_per_char(estimate),
               "val_perplexity_estimate": perplexity(estimate),
               "val_loss": full, "val_bpc": bits_per_char(full), "val_perplexity": perplexity(full)}
    protocol = {"split": "validation (the last 10% of the text)",
                "estimate": f"mean over {n} batches of {cfg.batch_size} random windows of "
                            f"{block} characters (seed {cfg.seed})",
                "full": f"every non-overlapping window of {block} characters",
                "characters": int(len(data.val))}
    return metrics, protocol
