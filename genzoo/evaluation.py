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

import re
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from genzoo.checkpoint import atomic_write_json
from genzoo.rundir import RunDir
from genzoo.config import TrainConfig, from_dict
from genzoo.errors import DataError
from genzoo.progress import Reporter
from genzoo.registry import import_object

EVAL_SEED = 0  # seeds the generated samples
PR_K = 3  # neighbours that draw the manifolds of precision and recall
IS_SPLITS = 10  # parts the Inception-style score is averaged over
MIN_TEST_IMAGES = max(PR_K + 1, IS_SPLITS)
SAMPLES = 10_000  # generated images, against the 10,000 test images


def evaluate_run(run: str | Path, *, data: str | None = None, k: int = 1000,
                 samples: int = SAMPLES, reporter: Reporter | None = None,
                 settings: Mapping[str, Any] | Iterable[str] | None = None,
                 weights: str = "auto") -> dict[str, Any]:
    """Evaluate a run on its dataset's test split and write ``eval.json`` into it.

    ``k`` (importance samples) goes to the model family's own metrics, where its plugin
    has them (the VAE's likelihood), and ``samples`` (generated images) to the image
    metrics; a model they do not apply to ignores them. ``settings`` and ``weights`` are
    ``genzoo.load``'s; ``eval.json`` records the sampling settings and the weights used.

    With ``data`` naming another dataset, the figures go to ``eval-<dataset>.json``
    instead (``eval_path()``), so they never replace those of the run's own test split.
    """
    from genzoo.runs import check_weights_choice, load_chosen, saved_spec
    from genzoo.config import valid_count
    from genzoo.data import load_dataset, recorded_dataset
    from genzoo.settings import parse_settings, settings_of, with_settings

    k = valid_count(k, "k", 1, 5000)
    samples = valid_count(samples, "samples", 100, 100_000)  # fewer: IS and FD mean nothing
    reporter = reporter or Reporter()
    run_dir = RunDir(run)
    saved, spec = saved_spec(run_dir)
    settings, weights = parse_settings(settings), check_weights_choice(weights)
    with_settings(from_dict(spec.config, saved["model_config"]), settings)  # checked early
    source = data or recorded_dataset(saved["dataset"], run_dir.path, ", or pass --data")
    dataset = _matching(load_dataset(source, spec.kind), saved, run_dir)
    _check_enough(dataset)  # before the framework loads
    generator, used = load_chosen(run, settings=settings, weights=weights)
    t0 = time.perf_counter()
    metrics: dict[str, float] = {}
    protocol: dict[str, Any] = {"dataset": dataset.name, "split": "test"}
    if spec.evaluator:
        evaluate_family = import_object(spec.evaluator, f"evaluator of model '{spec.name}'")
        with reporter.task(f"{spec.name}: family metrics"):
            family, family_protocol = evaluate_family(generator, dataset, k=k)
        metrics.update(family)
        protocol.update(family_protocol)
    if spec.kind == "image":
        quality, quality_protocol = image_quality(generator, dataset, samples, reporter)
        metrics.update(quality)
        protocol.update(quality_protocol)
    else:
        text, text_protocol = text_metrics(generator, dataset, saved)
        metrics.update(text)
        protocol.update(text_protocol)
    result = {"model": spec.name, "backend": spec.backend, "run": str(run_dir.path),
              "settings": settings_of(generator.config), "weights": used, "metrics": metrics, "protocol": protocol,
              "wall_time_s": round(time.perf_counter() - t0, 2)}
    atomic_write_json(eval_path(run_dir.path, data), result)
    return result


def eval_path(run: str | Path, data: str | None = None) -> Path:
    """Where ``genzoo eval RUN [--data DATA]`` writes: ``eval.json`` for the run's own
    dataset, ``eval-<name>.json`` for another (a registered name, or a path's file name)."""
    from genzoo.data import dataset_ref

    run_dir = RunDir(run)
    if data is None or dataset_ref(data) == run_dir.read_config()["dataset"]:
        return run_dir.path / "eval.json"
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(data).name or data)
    return run_dir.path / f"eval-{name}.json"


def _matching(dataset: Any, saved: dict[str, Any], run_dir: RunDir) -> Any:
    """The dataset, as the run's model can score it: text in the run's vocabulary;
    images of the shape it was trained on (anything else is a clear error)."""
    info = saved["data_info"]
    if dataset.kind == "text":
        return dataset.with_vocab(info["vocab"], f"the model in {run_dir.path}")
    if list(dataset.info.shape) != list(info["shape"]):
        shape = "x".join(map(str, info["shape"]))
        raise DataError(f"{run_dir.path} was trained on {shape} images ({saved['dataset']}); "
                        f"'{dataset.name}' holds {'x'.join(map(str, dataset.info.shape))} images")
    return dataset


def score_images(generator: Any, clf: Any, real_f: Any, samples: int,
                 real_stats: Any = None, reporter: Reporter | None = None) -> dict[str, Any]:
    """``samples`` images drawn with the evaluation's seed (a conditional model's labels
    balanced over its classes), scored against the real images' features ``real_f``
    (``real_stats``: their Gaussian, when the caller keeps it). Returns the metrics, and
    under ``draw`` the labels, features and class probabilities of the draw."""
    from genzoo.conditioning import balanced_labels
    from genzoo.metrics import (frechet_distance, gaussian_stats, inception_score,
                                precision_recall)

    k = generator.num_classes
    labels = balanced_labels(samples, k) if k else None  # a conditional model: each class alike
    with (reporter or Reporter()).task(f"{generator.spec.name}: generating {samples} images"):
        fake = generator.sample(samples, seed=EVAL_SEED, labels=labels)
    fake_f, fake_p = clf.features(fake)
    is_mean, is_std = inception_score(fake_p, splits=IS_SPLITS)
    precision, recall = precision_recall(real_f, fake_f, k=PR_K)
    real_stats = gaussian_stats(real_f) if real_stats is None else real_stats
    shares = class_shares(fake_p)  # the class histogram: is every class drawn?
    return {"fd": frechet_distance(*gaussian_stats(fake_f), *real_stats),
            "is": is_mean, "is_std": is_std, "precision": precision, "recall": recall,
            "class_share_min": float(min(shares)), "class_share_max": float(max(shares)),
            "draw": {"labels": labels, "features": fake_f, "probabilities": fake_p,
                     "class_shares": shares}}


def image_quality(generator: Any, data: Any, samples: int,
                  reporter: Reporter) -> tuple[dict[str, float], dict[str, Any]]:
    from genzoo.metrics.classifier import load_or_train, reference_values

    clf = load_or_train(data, reporter)  # (evaluate_run checked the split's size)
    n = min(samples, len(data.test))
    real_f, _ = clf.features(data.test[:n])
    metrics = score_images(generator, clf, real_f, samples, reporter=reporter)
    draw = metrics.pop("draw")
    labels, fake_f, fake_p, shares = (draw[key] for key in
                                      ("labels", "features", "probabilities", "class_shares"))
    k = generator.num_classes
    reference = reference_values(clf, data, n, EVAL_SEED)
    protocol = {
        "generated_images": samples, "test_images": n, "sample_seed": EVAL_SEED,
        # "source": "shipped" (with genzoo: the same on every machine) or
        # "trained-on-first-use" (cached; compare only figures of the same tensors_sha256)
        "feature_extractor": {k: clf.info[k] for k in
                              ("source", "dataset", "test_accuracy", "tensors_sha256",
                               "data_sha256", "recipe", "path")
                              if k in clf.info},
        "features": "penultimate layer (128) of the domain classifier",
        "inception_score_splits": IS_SPLITS, "precision_recall_k": PR_K,
        "class_shares": [round(v, 4) for v in shares],  # by the classifier's verdict
        "reference": reference,
    }
    if labels is not None:
        conditional, per_class, reference_per_class = conditional_quality(
            clf, data, fake_f, fake_p, labels)
        metrics.update(conditional)
        protocol["conditional"] = {
            "labels": f"{samples // k} or {-(-samples // k)} samples drawn for each of the "
                      f"{k} classes (0, 1, ..., {k - 1}, 0, ...), seed {EVAL_SEED}; the "
                      "metrics above are on these label-balanced draws",
            "accuracy": "the share of samples the domain classifier assigns to the class "
                        "they were drawn for",
            "per_class": "Fréchet distance, precision and recall of each class's samples "
                         "against the test images of that class",
            "classes": list(generator.info.classes),
            "by_class": per_class, "reference_by_class": reference_per_class,
        }
    return metrics, protocol


def class_shares(probabilities: Any) -> list[float]:
    """The share of the samples the domain classifier assigns to each class."""
    import numpy as np

    counts = np.bincount(np.argmax(probabilities, axis=1), minlength=probabilities.shape[1])
    return [float(c) / len(probabilities) for c in counts]


def conditional_quality(clf: Any, data: Any, fake_f: Any, fake_p: Any, labels: Any
                        ) -> tuple[dict[str, float], dict[str, list[float]],
                                   dict[str, list[float]]]:
    """A conditional model's figures: accuracy of the classes drawn, and per-class
    distance and recall against the test images of each class; with the same figures
    for real images (the test split's accuracy, the training split's distances)."""
    import numpy as np

    from genzoo.metrics.conditional import conditional_accuracy, per_class_distances

    accuracy, per_accuracy = conditional_accuracy(fake_p, labels)
    real_f, real_p = clf.features(data.test)
    scores = per_class_distances(fake_f, labels, real_f, data.test_labels, PR_K)
    # The reference: as many training images of each class as samples were drawn for it.
    counts = np.bincount(labels, minlength=fake_p.shape[1])
    pick = np.random.default_rng(EVAL_SEED)
    chosen = np.concatenate([pick.permutation(np.flatnonzero(data.train_labels == c))[:counts[c]]
                             for c in range(len(counts))])
    train_f, _ = clf.features(data.train[chosen])
    reference = per_class_distances(train_f, data.train_labels[chosen], real_f, data.test_labels,
                                    PR_K)
    _, real_accuracy = conditional_accuracy(real_p, data.test_labels)

    def mean(values: Any) -> float:
        return float(np.nanmean(values))

    metrics = {"cond_accuracy": accuracy, "cond_accuracy_min": float(np.nanmin(per_accuracy)),
               "class_fd_mean": mean(scores["fd"]), "class_fd_max": float(np.nanmax(scores["fd"])),
               "class_recall_mean": mean(scores["recall"]),
               "class_recall_min": float(np.nanmin(scores["recall"]))}

    def listed(values: Any) -> list[float]:
        return [round(float(v), 4) for v in values]

    per_class = {"accuracy": listed(per_accuracy), **{k: listed(v) for k, v in scores.items()}}
    reference_per_class = {"accuracy": listed(real_accuracy),
                           **{k: listed(v) for k, v in reference.items()}}
    return metrics, per_class, reference_per_class


def _check_enough(data: Any) -> None:
    """The image metrics need labels (to train the domain classifier) and a test split
    of ``MIN_TEST_IMAGES``: the reference Inception-style score splits it in
    ``IS_SPLITS``, precision and recall need ``PR_K`` neighbours of each image. Checked
    before anything is computed."""
    unlabelled = [split for split in ("train", "val", "test")
                  if data.kind == "image" and getattr(data, f"{split}_labels") is None]
    if unlabelled:
        raise DataError(f"dataset '{data.name}' has no labels for its {', '.join(unlabelled)} "
                        "split; genzoo eval's image metrics need a labelled dataset to train "
                        "their feature extractor")
    if data.kind == "image" and len(data.test) < MIN_TEST_IMAGES:
        raise DataError(f"the test split of '{data.name}' has {len(data.test)} image"
                        f"{'s' * (len(data.test) != 1)}; genzoo eval needs at least "
                        f"{MIN_TEST_IMAGES} (the Inception-style score splits them in "
                        f"{IS_SPLITS}; precision and recall use {PR_K} nearest neighbours)")


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
    sampled = TextBatches(data.val, cfg.batch_size, block, cfg.seed,
                          f"the validation split of '{data.name}'", stream=1)
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
