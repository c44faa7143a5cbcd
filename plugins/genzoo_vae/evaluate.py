"""The VAE's own metrics for ``genzoo eval``: the test negative ELBO and the
importance-weighted negative log-likelihood, in nats per image."""

from __future__ import annotations

from typing import Any

import numpy as np

from genzoo_vae.config import EVAL_BINARIZATION_SEED, binarize

EVAL_SEED = 0  # seeds the importance samples


def _log_weights(generator: Any, x: np.ndarray, k: int, seed: int, offset: int) -> np.ndarray:
    """(k, B) log importance weights from either backend's network."""
    if generator.spec.backend == "torch":
        import torch

        rng = torch.Generator(device=generator.device).manual_seed(seed * 1_000_003 + offset)
        return generator.module.log_weights(generator.to_tensor(x), k, rng).double().cpu().numpy()
    import keras

    out = generator.model.log_weights(x, k, keras.random.SeedGenerator(seed * 1_000_003 + offset))
    return np.asarray(keras.ops.convert_to_numpy(out), np.float64)


def log_likelihoods(generator: Any, x: np.ndarray, k: int, seed: int = EVAL_SEED,
                    chunk: int = 20_000) -> np.ndarray:
    """Per-image k-sample importance-weighted estimates of log p(x) (nats)."""
    per_batch = max(1, chunk // k)
    out = []
    for start in range(0, len(x), per_batch):
        w = _log_weights(generator, x[start:start + per_batch], k, seed, start)
        m = w.max(0)
        out.append(m + np.log(np.exp(w - m).mean(0)))  # log-mean-exp over the k samples
    return np.concatenate(out)


def evaluate(generator: Any, data: Any, *, k: int = 1000, **_: Any) -> tuple[dict, dict]:
    """Test negative ELBO and IWAE negative log-likelihood on the binarised test split."""
    x = binarize(data.test)
    elbo = log_likelihoods(generator, x, 1)
    nll = log_likelihoods(generator, x, k)
    metrics = {"test_nelbo": float(-elbo.mean()), f"test_nll_iwae_k{k}": float(-nll.mean())}
    protocol = {"binarization": f"stochastic, numpy default_rng({EVAL_BINARIZATION_SEED}) "
                                "over the whole test split",
                "iwae_samples": k, "importance_seed": EVAL_SEED, "test_images": len(x)}
    return metrics, protocol
