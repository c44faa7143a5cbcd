"""The VAE's maths, checked on known inputs in both frameworks."""

from __future__ import annotations

import math

import numpy as np
import pytest

from genzoo.protocols import DataInfo
from genzoo_vae.config import VAEConfig, binarize

INFO = DataInfo("image", (8, 8, 1))
CONFIG = VAEConfig(latent_dim=3, hidden=(16,))


def _kl_monte_carlo(mu: np.ndarray, logvar: np.ndarray, n: int = 400_000) -> np.ndarray:
    rng = np.random.default_rng(0)
    sigma = np.exp(0.5 * logvar)
    z = mu + sigma * rng.standard_normal((n, *mu.shape))
    log_q = -0.5 * (((z - mu) / sigma) ** 2 + logvar + math.log(2 * math.pi))
    log_p = -0.5 * (z**2 + math.log(2 * math.pi))
    return (log_q - log_p).mean(0)


MU = np.array([0.0, 1.5, -0.7], np.float32)
LOGVAR = np.array([0.0, -1.2, 0.8], np.float32)


def test_torch_closed_form_kl_matches_monte_carlo() -> None:
    import torch

    from genzoo_vae.torch_vae import gaussian_kl

    closed = gaussian_kl(torch.tensor(MU), torch.tensor(LOGVAR)).numpy()
    np.testing.assert_allclose(closed, _kl_monte_carlo(MU, LOGVAR), atol=0.01)
    assert (closed >= 0).all() and closed[0] == 0.0


def test_keras_closed_form_kl_matches_monte_carlo() -> None:
    from keras import ops

    from genzoo_vae.keras_vae import gaussian_kl

    closed = ops.convert_to_numpy(gaussian_kl(MU, LOGVAR))
    np.testing.assert_allclose(closed, _kl_monte_carlo(MU, LOGVAR), atol=0.01)


# A hand-computed case: with every weight zero, the encoder outputs its bias
# (mu = 0.5, logvar = -1 in every dimension) and the decoder outputs logits = b whatever z.
M, L, B = 0.5, -1.0, 0.3
X = (np.arange(64).reshape(1, 8, 8, 1) % 3 == 0).astype(np.float32)  # a fixed binary image


def _expected_loss() -> tuple[float, float]:
    ones = X.sum()
    recon = ones * math.log1p(math.exp(-B)) + (64 - ones) * math.log1p(math.exp(B))
    kl = 3 * 0.5 * (M**2 + math.exp(L) - 1 - L)
    return recon, kl


def test_torch_loss_on_a_hand_computed_case() -> None:
    import torch

    from genzoo_vae.torch_vae import VAE

    model = VAE(CONFIG, INFO).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        model.encoder[-1].bias.copy_(torch.tensor([M] * 3 + [L] * 3))
        model.decoder[-1].bias.fill_(B)
        loss, parts = model.loss(torch.tensor(X))
    recon, kl = _expected_loss()
    assert parts["recon"].item() == pytest.approx(recon, rel=1e-5)
    assert parts["kl"].item() == pytest.approx(kl, rel=1e-5)
    assert loss.item() == pytest.approx(recon + kl, rel=1e-5)


def test_keras_loss_on_a_hand_computed_case() -> None:
    from keras import ops

    from genzoo_vae.keras_vae import VAE

    model = VAE(CONFIG, INFO)
    for v in model.weights:
        v.assign(np.zeros(v.shape, "float32"))
    model.encoder.get_layer("enc_stats").bias.assign(np.array([M] * 3 + [L] * 3, "float32"))
    model.decoder.get_layer("dec_logits").bias.assign(np.full(64, B, "float32"))
    loss = model.compute_loss(y_pred=model(X, training=False))
    recon, kl = _expected_loss()
    assert float(ops.convert_to_numpy(loss)) == pytest.approx(recon + kl, rel=1e-5)
    assert float(model.kl_tracker.result()) == pytest.approx(kl, rel=1e-5)


def test_eval_binarisation_is_fixed_and_unbiased() -> None:
    x = np.full((200, 8, 8, 1), 0.3, np.float32)
    a, b = binarize(x), binarize(x)
    assert np.array_equal(a, b)
    assert set(np.unique(a)) == {0.0, 1.0}
    assert a.mean() == pytest.approx(0.3, abs=0.01)
    assert not np.array_equal(a, binarize(x, seed=1))
