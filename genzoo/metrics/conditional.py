"""Measures of a conditional model: does a sample drawn for a class show that class, and
does each class's set of samples cover that class's real images? (numpy only)"""

from __future__ import annotations

import numpy as np

from genzoo.metrics.distances import frechet_distance, gaussian_stats, precision_recall


def conditional_accuracy(probs: np.ndarray, labels: np.ndarray) -> tuple[float, np.ndarray]:
    """The share of samples a classifier assigns to the class they were drawn for, over
    all samples and for each class (``probs``: ``(n, classes)``, ``labels``: ``(n,)``).

    Examples:
        >>> acc, per = conditional_accuracy(np.eye(3)[[0, 1, 1, 2]], np.array([0, 1, 2, 2]))
        >>> acc, per.tolist()
        (0.75, [1.0, 1.0, 0.5])
    """
    predicted = np.asarray(probs).argmax(1)
    labels = np.asarray(labels)
    hits = predicted == labels
    k = np.asarray(probs).shape[1]
    per = np.array([hits[labels == c].mean() if (labels == c).any() else np.nan
                    for c in range(k)])
    return float(hits.mean()), per


def per_class_distances(fake: np.ndarray, fake_labels: np.ndarray, real: np.ndarray,
                        real_labels: np.ndarray, k: int = 3) -> dict[str, np.ndarray]:
    """For each class, the Fréchet distance and the k-NN precision and recall of the
    samples drawn for it against the real images of it, in one feature space.

    A model that draws the same good image of a class over and over keeps a high
    precision but scores a low recall and a large distance for that class."""
    classes = int(max(fake_labels.max(), real_labels.max())) + 1
    fd, precision, recall = (np.full(classes, np.nan) for _ in range(3))
    for c in range(classes):
        f, r = fake[fake_labels == c], real[real_labels == c]
        if len(f) <= k or len(r) <= k:  # too few for a covariance or k neighbours
            continue
        fd[c] = frechet_distance(*gaussian_stats(f), *gaussian_stats(r))
        precision[c], recall[c] = precision_recall(r, f, k=k)
    return {"fd": fd, "precision": precision, "recall": recall}
