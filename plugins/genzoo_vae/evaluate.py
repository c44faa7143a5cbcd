"""The VAE's own metrics for ``genzoo eval``: the test negative ELBO and the
importance-weighted negative log-likelihood, in nats per image."""

from __future__ import annotations

from typing import Any

import numpy as np

from genzoo_vae.config import EVAL_BINARIZATION_SEED, binarize

EVAL_SEED = 0  # seeds the importance samples


def _log_weights(generator: Any, x: np.ndarray, k: int, seed: int, offset: int,
                 labels: np.ndarray | None = None) -> np.ndarray:
    """(k, B) log importance weights from either backend's network (a cVAE's given the
    one-hot ``labels``)."""
    given = {} if labels is None else {"labels": labels}
    if generator.spec.backend == "torch":
        import torch

        rng = torch.Generator(device=generator.device).manual_seed(seed * 1_000_003 + offset)
        if labels is not None:
            given = {"labels": generator.to_tensor(labels)}
        return generator.module.log_weights(generator.to_tensor(x), k, rng,
                                            **given).double().cpu().numpy()
    import keras

    out = generator.model.log_weights(x, k, keras.random.SeedGenerator(seed * 1_000_003 + offset),
                                      **given)
    return np.asarray(keras.ops.convert_to_numpy(out), np.float64)


def log_likelihoods(generator: Any, x: np.ndarray, k: int, seed: int = EVAL_SEED,
                    chunk: int = 20_000, labels: np.ndarray | None = None) -> np.ndarray:
    """Per-image k-sample importance-weighted estimates of log p(x) (nats); of log p(x|y)
    given one-hot ``labels`` (a cVAE)."""
    per_batch = max(1, chunk // k)
    out = []
    for start in range(0, len(x), per_batch):
        part = None if labels is None else labels[start:start + per_batch]
        w = _log_weights(generator, x[start:start + per_batch], k, seed, start, part)
        m = w.max(0)
        out.append(m + np.log(np.exp(w - m).mean(0)))  # log-mean-exp over the k samples
    return np.concatenate(out)


def evaluate(generator: Any, data: Any, *, k: int = 1000, **_: Any) -> tuple[dict, dict]:
    """Test negative ELBO and IWAE negative log-likelihood on the binarised test split
    (a cVAE's of each image given its label: bounds on -log p(x | y))."""
    from genzoo.conditioning import one_hot

    x = binarize(data.test)
    labels = (one_hot(data.test_labels, generator.num_classes) if generator.num_classes
              else None)
    elbo = log_likelihoods(generator, x, 1, labels=labels)
    nll = log_likelihoods(generator, x, k, labels=labels)
    metrics = {"test_nelbo": float(-elbo.mean()), f"test_nll_iwae_k{k}": float(-nll.mean())}
    protocol = {"binarization": f"stochastic, numpy default_rng({EVAL_BINARIZATION_SEED}) "
                                "over the whole test split",
                "iwae_samples": k, "importance_seed": EVAL_SEED, "test_images": len(x)}
    if labels is not None:
        protocol["likelihood"] = "conditional: -log p(x | y), each test image given its label"
    return metrics, protocol
