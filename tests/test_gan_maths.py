"""The GAN's losses and two-optimizer step, checked on known inputs in both frameworks."""

from __future__ import annotations

import math

import numpy as np
import pytest

import genzoo
from genzoo.backends import get_backend
from genzoo.config import TrainConfig
from genzoo.protocols import DataInfo
from genzoo_gan.config import GANConfig

LOGITS = np.linspace(-4, 4, 9).astype(np.float32)  # D(G(z)) rises from 0.02 to 0.98


def _softplus(x: float) -> float:
    return math.log1p(math.exp(x))


def test_torch_generator_loss_falls_as_d_of_g_of_z_rises() -> None:
    import torch

    from genzoo_gan.torch_gan import generator_loss

    losses = [generator_loss(torch.tensor([v])).item() for v in LOGITS]
    assert all(a > b for a, b in zip(losses, losses[1:]))
    assert losses[0] == pytest.approx(_softplus(4.0), rel=1e-5)  # -log sigmoid(-4)


def test_keras_generator_loss_falls_as_d_of_g_of_z_rises() -> None:
    from keras import ops

    from genzoo_gan.keras_gan import generator_loss

    losses = [float(ops.convert_to_numpy(generator_loss(np.array([v])))) for v in LOGITS]
    assert all(a > b for a, b in zip(losses, losses[1:]))


def _trained_pair(backend: str):
    gen = genzoo.create("gan", backend, "tiny", data="mnist")
    trainer = get_backend(backend).make_trainer(gen, TrainConfig(steps=1, lr=1e-2))
    return gen, trainer


def _snapshot(variables) -> list[np.ndarray]:
    return [np.array(v) for v in variables]


def _same(a, b) -> bool:
    return all(np.array_equal(x, y) for x, y in zip(a, b))


REAL = np.random.default_rng(0).random((16, 28, 28, 1), dtype=np.float32) * 2 - 1


def test_torch_each_step_moves_only_its_own_network() -> None:
    import torch

    gen, trainer = _trained_pair("torch")
    net = gen.module
    g0 = _snapshot(p.detach().numpy().copy() for p in net.g_net.parameters())
    d0 = _snapshot(p.detach().numpy().copy() for p in net.d_net.parameters())
    net.d_step(torch.from_numpy(REAL), trainer)
    g1 = _snapshot(p.detach().numpy().copy() for p in net.g_net.parameters())
    d1 = _snapshot(p.detach().numpy().copy() for p in net.d_net.parameters())
    assert _same(g0, g1) and not _same(d0, d1)
    net.g_step(16, trainer)
    g2 = _snapshot(p.detach().numpy().copy() for p in net.g_net.parameters())
    d2 = _snapshot(p.detach().numpy().copy() for p in net.d_net.parameters())
    assert _same(d1, d2) and not _same(g1, g2)
    assert trainer.optimizers["opt_d"] is not trainer.optimizers["opt_g"]


def test_keras_each_step_moves_only_its_own_network() -> None:
    from keras import ops

    gen, trainer = _trained_pair("keras")
    model = gen.model

    def weights(net):
        return [ops.convert_to_numpy(v).copy() for v in net.trainable_variables]

    g0, d0 = weights(model.g_net), weights(model.d_net)
    model.d_step(REAL)
    g1, d1 = weights(model.g_net), weights(model.d_net)
    assert _same(g0, g1) and not _same(d0, d1)
    model.g_step(16)
    g2, d2 = weights(model.g_net), weights(model.d_net)
    assert _same(d1, d2) and not _same(g1, g2)


B = 0.7  # with every weight zero, D's logit is its output bias for any image


def _expected() -> tuple[float, float]:
    return _softplus(-B) + _softplus(B), _softplus(-B)


def test_torch_losses_on_a_hand_computed_case() -> None:
    import torch

    from genzoo_gan.torch_gan import GAN

    net = GAN(GANConfig(arch="mlp", latent_dim=4, g_hidden=(8,), d_hidden=(8,)),
              DataInfo("image", (4, 4, 1))).eval()
    with torch.no_grad():
        for p in net.parameters():
            p.zero_()
        net.d_net[-1].bias.fill_(B)
        metrics = net.evaluate(torch.rand(5, 4, 4, 1))
    loss_d, loss_g = _expected()
    assert metrics["loss_d"].item() == pytest.approx(loss_d, rel=1e-6)
    assert metrics["loss_g"].item() == pytest.approx(loss_g, rel=1e-6)
    assert metrics["d_fake"].item() == pytest.approx(1 / (1 + math.exp(-B)), rel=1e-6)


def test_keras_losses_on_a_hand_computed_case() -> None:
    from genzoo_gan.keras_gan import GAN

    model = GAN(GANConfig(arch="mlp", latent_dim=4, g_hidden=(8,), d_hidden=(8,)),
                DataInfo("image", (4, 4, 1)))
    for v in model.weights:
        v.assign(np.zeros(v.shape, "float32"))
    model.d_net.get_layer("d_logit").bias.assign(np.array([B], "float32"))
    metrics = model.test_step(np.random.default_rng(0).random((5, 4, 4, 1), dtype=np.float32))
    loss_d, loss_g = _expected()
    assert float(metrics["loss_d"]) == pytest.approx(loss_d, rel=1e-6)
    assert float(metrics["loss_g"]) == pytest.approx(loss_g, rel=1e-6)


def _d_only_accuracy(backend: str, steps: int) -> float:
    """Control: train D alone against a frozen G; it learns to reject every fake."""
    from genzoo.data import load_dataset

    gen_cfg_run = genzoo.create("gan", backend, "mlp", data="mnist")
    trainer = get_backend(backend).make_trainer(gen_cfg_run, TrainConfig(steps=1, lr=2e-4,
                                                                         beta1=0.5))
    batches = load_dataset("mnist").train_batches(64, seed=0)
    for step in range(steps):
        real = batches(step) * 2 - 1
        if backend == "torch":
            import torch

            stats = gen_cfg_run.module.d_step(torch.from_numpy(real), trainer)
            accuracy = float(stats["d_acc_fake"])
        else:
            from keras import ops

            fake_logits = gen_cfg_run.model.d_step(real)[2]
            accuracy = float(np.mean(ops.convert_to_numpy(fake_logits) < 0))
    return accuracy


@pytest.mark.parametrize("backend", ["torch", "keras"])
def test_a_short_mnist_run_keeps_the_discriminator_from_winning(backend, tmp_path,
                                                                shared_data) -> None:
    """Against a frozen G, D's accuracy on fakes goes to 100%; a learning G holds it lower.

    The control needs far fewer steps than the run: D alone rejects every fake within
    about 40 (so 100 are ample), while the run's G keeps it below 95% over 300.
    """
    control = _d_only_accuracy(backend, 100)
    run = genzoo.train("gan", backend, "mlp", data="mnist", steps=300, log_every=20,
                       out=tmp_path / "run")
    accuracy = [r["d_acc_fake"] for r in run.history.train]
    late = float(np.mean(accuracy[len(accuracy) // 2:]))
    assert control > 0.99, control
    assert late < 0.95, accuracy
    assert max(accuracy) > 0.5, accuracy  # D does learn to spot fakes
