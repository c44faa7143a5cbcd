"""The domain classifier whose feature space the image metrics use.

Inception weights cannot be downloaded here, and for MNIST-like data a classifier
trained on the dataset itself is the better feature extractor anyway.

For MNIST and Fashion-MNIST the trained weights ship with genzoo (``extractors/``, built
by ``scripts/build_extractors.py``): deterministic training is not bit-identical across
CPUs, and the figures of two machines are comparable only with the same extractor. Any
other labelled dataset (the bundled ``digits``, an IDX folder) gets its classifier
trained on first use, single-threaded and deterministically (fixed seed, fixed data
order, deterministic kernels), then cached with its test accuracy and the sha256 of its
tensors under ``$XDG_CACHE_HOME/genzoo/classifiers``; a damaged cache is rebuilt with a
warning. It needs PyTorch, whichever backend made the images.
"""

from __future__ import annotations

import hashlib
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from genzoo.checkpoint import (atomic_write_json, load_tensors, read_json, save_tensors,
                               tensors_sha256)
from genzoo.data.sources import cache_dir
from genzoo.errors import CheckpointError, DataError

# At least 4 epochs and at least 2,000 steps (small datasets such as digits need more
# passes), on one CPU thread (version 3; version 2 used every core).
RECIPE: dict[str, Any] = {"version": 3, "seed": 0, "batch_size": 128, "lr": 1e-3, "epochs": 4,
                          "min_steps": 2000}
FEATURES = 128  # width of the penultimate layer: the feature space of the metrics
SHIPPED = Path(__file__).resolve().parent / "extractors"  # NAME.safetensors + NAME.json
SHIPPED_SOURCE, TRAINED_SOURCE = "shipped", "trained-on-first-use"
MAX_RECORD_BYTES = 1 << 20  # a classifier's or reference's JSON record is a few kB


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
    info: dict[str, Any]  # source, dataset, accuracy, tensors_sha256, recipe, path

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


def _classes(data: Any) -> int:
    if data.train_labels is None or data.test_labels is None:
        _training_split(data)  # the error it raises
    labels = [a for a in (data.train_labels, data.val_labels, data.test_labels)
              if a is not None and len(a)]
    return int(max(a.max() for a in labels)) + 1


class _reproducible:
    """One CPU thread and PyTorch's deterministic kernels, restored afterwards: the
    result then does not depend on ``OMP_NUM_THREADS`` or the number of cores."""

    def __enter__(self) -> None:
        import torch

        self.threads = torch.get_num_threads()
        self.deterministic = torch.are_deterministic_algorithms_enabled()
        torch.set_num_threads(1)
        torch.use_deterministic_algorithms(True)

    def __exit__(self, *exc: object) -> None:
        import torch

        torch.use_deterministic_algorithms(self.deterministic)
        torch.set_num_threads(self.threads)


def train_classifier(data: Any, reporter: Any = None) -> DomainClassifier:
    """Train the classifier deterministically, on one thread, on ``data``'s training
    split (train and validation)."""
    import torch

    x, y = _training_split(data)
    classes = _classes(data)
    bs = int(RECIPE["batch_size"])
    per_epoch = max(1, len(x) // bs)
    epochs = max(int(RECIPE["epochs"]), -(-int(RECIPE["min_steps"]) // per_epoch))
    with _reproducible():
        torch.manual_seed(RECIPE["seed"])
        net = _network(data.info.shape, classes)
        opt = torch.optim.Adam(net.parameters(), lr=RECIPE["lr"])
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


def build(data: Any, reporter: Any = None) -> tuple[DomainClassifier, dict[str, np.ndarray]]:
    """Train the classifier for ``data`` and measure it: the classifier (its ``info`` is
    the record to save beside the weights) and its float32 tensors."""
    import torch

    clf = train_classifier(data, reporter)
    with _reproducible():
        _, test_probs = clf.features(data.test)
    tensors = {k: v.detach().numpy().astype(np.float32)
               for k, v in clf.net.state_dict().items()}
    clf.info = {**clf.info, "shape": list(data.info.shape), "data_sha256": data.checksum,
                "test_accuracy": float((test_probs.argmax(1) == data.test_labels).mean()),
                "tensors_sha256": tensors_sha256(tensors), "recipe": dict(RECIPE),
                "trained_with": {"torch": torch.__version__.split("+")[0], "threads": 1}}
    return clf, tensors


def read_record(path: Path) -> dict[str, Any]:
    """The JSON object in ``path``: a ``CheckpointError`` when it is missing, too large,
    not JSON (nested too deeply included) or not an object."""
    try:
        size = Path(path).stat().st_size
    except FileNotFoundError:
        raise CheckpointError(f"{path} does not exist") from None
    except OSError as exc:
        raise CheckpointError(f"cannot read {path}: {exc.strerror or exc}") from None
    if size > MAX_RECORD_BYTES:
        raise CheckpointError(f"{path} holds {size:,} bytes, more than a record can")
    try:
        record = read_json(path)
    except RecursionError:  # (json's parser recurses once per nesting level)
        raise CheckpointError(f"{path} is not valid JSON (nested too deeply)") from None
    except ValueError as exc:  # e.g. an integer too long to convert
        raise CheckpointError(f"{path} is not valid JSON ({exc})") from None
    if not isinstance(record, dict):
        raise CheckpointError(f"{path} does not hold a JSON object")
    return record


def _network_from(tensors: dict[str, np.ndarray], shape: tuple[int, ...], classes: int,
                  path: Path) -> Any:
    """``_network(shape, classes)`` with ``tensors`` as its weights, which must be its
    own names, shapes and float32 dtype."""
    import torch

    with torch.random.fork_rng(devices=[]):  # the initial weights, replaced below, must not
        net = _network(shape, classes)       # draw from (and so move) the caller's stream
    expected = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    found = {k: tuple(v.shape) for k, v in tensors.items()}
    if found != expected:
        raise CheckpointError(f"{path} does not hold the weights of the domain classifier "
                              f"for {'x'.join(map(str, shape))} images and {classes} classes")
    odd = sorted(k for k, v in tensors.items() if v.dtype != np.float32)
    if odd:
        raise CheckpointError(f"{path} holds tensors that are not float32: {', '.join(odd)}")
    net.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in tensors.items()})
    return net.eval()


def shipped_extractor(data: Any) -> DomainClassifier | None:
    """The extractor shipped with genzoo for ``data``'s training images (MNIST,
    Fashion-MNIST), verified against its record, or ``None`` if none was built on them."""
    shape = list(data.info.shape)
    for record_path in sorted(SHIPPED.glob("*.json")):
        try:
            info = read_record(record_path)
            matches = (info.get("shape") == shape and info.get("data_sha256") == data.checksum
                       and info.get("classes") == _classes(data))
        except CheckpointError as exc:
            raise CheckpointError(f"the feature extractor shipped with genzoo is damaged: "
                                  f"{exc}; reinstall genzoo") from None
        if not matches:
            continue
        weights = record_path.with_suffix(".safetensors")
        try:
            tensors = load_tensors(weights)
            digest = tensors_sha256(tensors)
            if digest != info.get("tensors_sha256"):
                raise CheckpointError(f"the tensors in {weights} have sha256 {digest[:16]}…, "
                                      f"its record {record_path.name} says "
                                      f"{str(info.get('tensors_sha256'))[:16]}…")
            net = _network_from(tensors, data.info.shape, info["classes"], weights)
        except CheckpointError as exc:
            raise CheckpointError(f"the feature extractor shipped with genzoo for "
                                  f"'{info.get('dataset')}' is damaged ({exc}); reinstall "
                                  "genzoo, or rebuild it with scripts/build_extractors.py"
                                  ) from None
        return DomainClassifier(net, {**info, "source": SHIPPED_SOURCE, "path": str(weights)})
    return None


def _load_cached(data: Any, weights: Path, record: Path) -> DomainClassifier:
    info = read_record(record)
    tensors = load_tensors(weights)
    if info.get("data_sha256") != data.checksum or not isinstance(info.get("classes"), int):
        raise CheckpointError(f"{record} is not the record of this classifier")
    digest = tensors_sha256(tensors)
    if digest != info.get("tensors_sha256"):
        raise CheckpointError(f"the tensors in {weights} have sha256 {digest[:16]}…, "
                              f"{record.name} records {str(info.get('tensors_sha256'))[:16]}…")
    net = _network_from(tensors, data.info.shape, info["classes"], weights)
    return DomainClassifier(net, {**info, "source": TRAINED_SOURCE, "path": str(weights)})


def load_or_train(data: Any, reporter: Any = None) -> DomainClassifier:
    """The feature extractor for ``data``: the one shipped with genzoo where it was built
    on these training images, else the cached one trained on them, training it once (a
    damaged cache is trained again, with a warning)."""
    shipped = shipped_extractor(data)
    if shipped is not None:
        return shipped
    weights, record = _paths(data.name, data.checksum)
    if weights.exists() or record.exists():
        try:
            return _load_cached(data, weights, record)
        except CheckpointError as exc:
            warnings.warn(f"the cached classifier for '{data.name}' is damaged ({exc}); "
                          "training it again", stacklevel=2)
    clf, tensors = build(data, reporter)
    weights.parent.mkdir(parents=True, exist_ok=True)
    save_tensors(weights, tensors)  # then the record: a record means complete weights
    atomic_write_json(record, clf.info)
    # The network as every later call loads it: the network just trained can give features
    # a rounding apart from it, so the first evaluation would not repeat exactly.
    return _load_cached(data, weights, record)


def _data_digest(data: Any) -> str:
    """sha256 of every image and label the reference values read."""
    digest = hashlib.sha256(data.checksum.encode())  # (of the training images, cached)
    for array in (data.val, data.test, data.train_labels, data.val_labels, data.test_labels):
        if array is None:
            digest.update(b"none")
            continue
        value = np.ascontiguousarray(array)
        digest.update(f"{value.dtype.str}{value.shape}".encode())
        digest.update(value.data)
    return digest.hexdigest()


def _reference_path(clf: DomainClassifier) -> Path:
    return cache_dir() / "classifiers" / f"reference-{clf.info['tensors_sha256'][:16]}.json"


def reference_values(clf: DomainClassifier, data: Any, n: int, seed: int) -> dict[str, float]:
    """Real-data reference with ``n`` images of each split (the Fréchet distance is
    biased upward for small ``n``, so it is measured at the generated images' count):
    the training split against the test split, and the test IS.

    Cached in the user's cache, keyed by the extractor's ``tensors_sha256``, the data
    and ``n`` and ``seed``; a damaged cache is recomputed with a warning."""
    path = _reference_path(clf)
    key = f"n={n} seed={seed} data={_data_digest(data)[:16]}"
    saved: dict[str, Any] = {}
    if path.exists():
        try:
            saved = read_record(path)
            cached = saved.get(key)
            if (isinstance(cached, dict) and len(cached) == 4
                    and all(isinstance(v, float) for v in cached.values())):
                return cached
        except CheckpointError as exc:
            warnings.warn(f"the cached reference values are damaged ({exc}); computing them "
                          "again", stacklevel=2)
            saved = {}
    from genzoo.metrics.distances import (frechet_distance, gaussian_stats, inception_score,
                                          precision_recall)

    x, _ = _training_split(data)
    pick = np.random.default_rng(seed).choice(len(x), size=min(n, len(x)), replace=False)
    train_f, _ = clf.features(x[pick])
    test_f, test_p = clf.features(data.test[:n])
    fid = frechet_distance(*gaussian_stats(train_f), *gaussian_stats(test_f))
    precision, recall = precision_recall(test_f, train_f)
    values = {"fd_train_vs_test": float(fid), "is_test": float(inception_score(test_p)[0]),
              "precision_train_vs_test": float(precision),
              "recall_train_vs_test": float(recall)}
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, {**saved, key: values})
    return values
