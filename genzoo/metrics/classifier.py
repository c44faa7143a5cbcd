"""The domain classifier whose feature space the image metrics use.

Inception weights cannot be downloaded here, and for MNIST-like data a classifier
trained on the dataset itself is the better feature extractor anyway. It is trained
deterministically on first use (fixed seed, fixed data order, deterministic kernels),
then cached with its test accuracy and the sha256 of its tensors under
``$XDG_CACHE_HOME/genzoo/classifiers``. It needs PyTorch, whichever backend made the images.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from genzoo.checkpoint import atomic_write_json, load_tensors, save_tensors, tensors_sha256
from genzoo.data.sources import cache_dir
from genzoo.errors import DataError

# At least 4 epochs and at least 2,000 steps (small datasets such as digits need more
# passes).
RECIPE: dict[str, Any] = {"version": 2, "seed": 0, "batch_size": 128, "lr": 1e-3, "epochs": 4,
          "min_steps": 2000}
FEATURES = 128  # width of the penultimate layer: the feature space of the metrics


def _network(shape: tuple[int, ...], classes: int) -> Any:
    from torch import nn

    h, w, c = shape
    return nn.Sequential(  # pooling early keeps training to seconds per epoch on a CPU
        nn.Conv2d(c, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # (B, 32, H/2, W/2)
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # (B, 64, H/4, W/4)
        nn.Conv2d(64, 64, 3, padding=1), nn.ReLU(),
        nn.Flatten(), nn.Dropout(0.25),
        nn.Linear(64 * (h // 4) * (w // 4), FEATURES), nn.ReLU(),  # the features
        nn.Dropout(0.5), nn.Linear(FEATURES, classes),
    )


@dataclass
class DomainClassifier:
    """A trained classifier: features and class probabilities for NHWC images in [0, 1]."""

    net: Any
    info: dict[str, Any]  # dataset, accuracy, tensors_sha256, recipe, path

    def features(self, images: np.ndarray, batch: int = 1000) -> tuple[np.ndarray, np.ndarray]:
        """Penultimate-layer features (N, 128) and softmax probabilities (N, classes)."""
        import torch

        feats, probs = [], []
        body, head = self.net[:-2], self.net[-2:]
        with torch.no_grad():
            for start in range(0, len(images), batch):
                x = torch.from_numpy(np.ascontiguousarray(images[start:start + batch]))
                f = body(x.permute(0, 3, 1, 2).float())
                feats.append(f.numpy())
                probs.append(torch.softmax(head(f), dim=1).numpy())
        return np.concatenate(feats).astype(np.float64), np.concatenate(probs).astype(np.float64)


def _paths(name: str, digest: str) -> tuple[Path, Path]:
    base = cache_dir() / "classifiers" / f"{name}-v{RECIPE['version']}-{digest[:12]}"
    return base.with_suffix(".safetensors"), base.with_suffix(".json")


def _training_split(data: Any) -> tuple[np.ndarray, np.ndarray]:
    if data.train_labels is None or data.test_labels is None:
        raise DataError(f"dataset '{data.name}' has no labels; image metrics need a labelled "
                        "dataset to train their feature extractor")
    # The whole training file (genzoo's train and validation splits): the classifier never
    # sees the test split it is evaluated on.
    return (np.concatenate([data.train, data.val]),
            np.concatenate([data.train_labels, data.val_labels]))


def train_classifier(data: Any, reporter: Any = None) -> DomainClassifier:
    """Train the classifier deterministically on ``data``'s training split."""
    import torch

    x, y = _training_split(data)
    classes = int(max(y.max(), data.test_labels.max())) + 1
    torch.manual_seed(RECIPE["seed"])
    net = _network(data.info.shape, classes)
    opt = torch.optim.Adam(net.parameters(), lr=RECIPE["lr"])
    bs = int(RECIPE["batch_size"])
    per_epoch = max(1, len(x) // bs)
    epochs = max(int(RECIPE["epochs"]), -(-int(RECIPE["min_steps"]) // per_epoch))
    with _deterministic():
        for epoch in range(epochs):
            order = np.random.default_rng([RECIPE["seed"], epoch]).permutation(len(x))
            net.train()
            for start in range(0, len(x) - bs + 1, bs):
                idx = order[start:start + bs]
                xb = torch.from_numpy(x[idx]).permute(0, 3, 1, 2)
                loss = torch.nn.functional.cross_entropy(net(xb), torch.from_numpy(y[idx]))
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            if reporter is not None and ((epoch + 1) % max(1, epochs // 10) == 0
                                         or epoch + 1 == epochs):  # about ten lines
                reporter.message(f"classifier for '{data.name}': epoch {epoch + 1}/{epochs}")
    net.eval()
    return DomainClassifier(net, {"dataset": data.name, "classes": classes})


class _deterministic:
    def __enter__(self) -> None:
        import torch

        self.previous = torch.are_deterministic_algorithms_enabled()
        torch.use_deterministic_algorithms(True)

    def __exit__(self, *exc: object) -> None:
        import torch

        torch.use_deterministic_algorithms(self.previous)


def load_or_train(data: Any, reporter: Any = None) -> DomainClassifier:
    """The cached classifier for ``data`` (keyed by its training data), training it once."""
    digest = data.checksum
    weights, record = _paths(data.name, digest)
    if weights.is_file() and record.is_file():
        info = json.loads(record.read_text())
        tensors = load_tensors(weights)
        if tensors_sha256(tensors) == info.get("tensors_sha256"):
            import torch

            net = _network(data.info.shape, info["classes"])
            net.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in tensors.items()})
            return DomainClassifier(net.eval(), {**info, "path": str(weights)})
    clf = train_classifier(data, reporter)
    _, test_probs = clf.features(data.test)
    accuracy = float((test_probs.argmax(1) == data.test_labels).mean())
    weights.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().numpy() for k, v in clf.net.state_dict().items()}
    save_tensors(weights, tensors)
    info = {**clf.info, "test_accuracy": accuracy, "data_sha256": digest, "recipe": RECIPE,
            "tensors_sha256": tensors_sha256(tensors)}
    atomic_write_json(record, info)
    clf.info = {**info, "path": str(weights)}
    return clf


def reference_values(clf: DomainClassifier, data: Any, n: int, seed: int) -> dict[str, float]:
    """Real-data reference: the training split against the test split, and the test IS."""
    key = f"reference_{n}_{seed}"
    record = Path(clf.info["path"]).with_suffix(".json")
    saved = json.loads(record.read_text()) if record.is_file() else {}
    if key in saved:
        return saved[key]
    from genzoo.metrics.distances import (frechet_distance, gaussian_stats, inception_score,
                                          precision_recall)

    x, _ = _training_split(data)
    pick = np.random.default_rng(seed).choice(len(x), size=min(n, len(x)), replace=False)
    train_f, _ = clf.features(x[pick])
    test_f, test_p = clf.features(data.test[:n])
    fid = frechet_distance(*gaussian_stats(train_f), *gaussian_stats(test_f))
    precision, recall = precision_recall(test_f, train_f)
    values = {"fd_train_vs_test": fid, "is_test": inception_score(test_p)[0],
              "precision_train_vs_test": precision, "recall_train_vs_test": recall}
    if record.is_file():
        atomic_write_json(record, {**saved, key: values})
    return values
