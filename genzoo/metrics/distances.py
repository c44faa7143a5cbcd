"""Sample-quality measures in a feature space: Fréchet distance, Inception-style score,
and k-nearest-neighbour precision and recall."""

from __future__ import annotations

import numpy as np


def gaussian_stats(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance (float64) of features (N, D)."""
    f = np.asarray(features, dtype=np.float64)
    return f.mean(0), np.cov(f, rowvar=False)


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray,
                     sigma2: np.ndarray) -> float:
    """Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2).

    ``|mu1 - mu2|² + tr(sigma1 + sigma2 - 2 (sigma1 sigma2)^½)``. The trace of the
    square root is computed as the sum of the square roots of the eigenvalues of
    ``sqrt(sigma1) sigma2 sqrt(sigma1)``, which is symmetric positive semi-definite and
    therefore numerically kinder than a general matrix square root.

    Examples:
        >>> import numpy as np
        >>> round(frechet_distance(np.zeros(2), np.eye(2), np.ones(2), 4 * np.eye(2)), 6)
        4.0
    """
    diff = np.asarray(mu1, np.float64) - np.asarray(mu2, np.float64)
    w, v = np.linalg.eigh(np.asarray(sigma1, np.float64))
    root1 = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    middle = root1 @ np.asarray(sigma2, np.float64) @ root1
    trace_sqrt = np.sqrt(np.clip(np.linalg.eigvalsh((middle + middle.T) / 2), 0, None)).sum()
    value = diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * trace_sqrt
    return float(max(value, 0.0))


def inception_score(probs: np.ndarray, splits: int = 10) -> tuple[float, float]:
    """exp(E_x KL(p(y|x) || p(y))), mean and standard deviation over ``splits`` parts.

    Examples:
        >>> import numpy as np
        >>> round(inception_score(np.eye(10).repeat(10, 0), splits=1)[0], 6)  # 10 sure classes
        10.0
    """
    p = np.clip(np.asarray(probs, np.float64), 1e-12, 1.0)
    scores = []
    for part in np.array_split(p, splits):
        marginal = part.mean(0, keepdims=True)
        kl = (part * (np.log(part) - np.log(marginal))).sum(1).mean()
        scores.append(np.exp(kl))
    return float(np.mean(scores)), float(np.std(scores))


def _kth_neighbour_radius(x: np.ndarray, k: int, chunk: int = 1024) -> np.ndarray:
    sq = (x * x).sum(1)
    radii = np.empty(len(x))
    for start in range(0, len(x), chunk):
        block = x[start:start + chunk]
        d2 = sq[start:start + chunk, None] + sq[None, :] - 2.0 * block @ x.T
        radii[start:start + chunk] = np.sqrt(np.clip(np.partition(d2, k, axis=1)[:, k], 0, None))
    return radii  # column 0 of the partition is the point itself


def _covered(points: np.ndarray, centres: np.ndarray, radii: np.ndarray,
             chunk: int = 1024) -> np.ndarray:
    sq_c = (centres * centres).sum(1)
    inside = np.empty(len(points), dtype=bool)
    for start in range(0, len(points), chunk):
        block = points[start:start + chunk]
        d2 = (block * block).sum(1)[:, None] + sq_c[None, :] - 2.0 * block @ centres.T
        inside[start:start + chunk] = (np.sqrt(np.clip(d2, 0, None)) <= radii[None, :]).any(1)
    return inside


def precision_recall(real: np.ndarray, fake: np.ndarray, k: int = 3) -> tuple[float, float]:
    """Kynkäänniemi et al. (2019): the share of fakes inside the real manifold (precision)
    and of reals inside the fake manifold (recall), each manifold being the union of balls
    reaching every point's k-th nearest neighbour."""
    real = np.asarray(real, np.float64)
    fake = np.asarray(fake, np.float64)
    precision = _covered(fake, real, _kth_neighbour_radius(real, k)).mean()
    recall = _covered(real, fake, _kth_neighbour_radius(fake, k)).mean()
    return float(precision), float(recall)
