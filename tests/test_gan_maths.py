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


def _expected(kind: str) -> tuple[float, float]:
    if kind == "hinge":  # max(0, 1 - B) + max(0, 1 + B), and -B
        return max(0.0, 1 - B) + max(0.0, 1 + B), -B
    return _softplus(-B) + _softplus(B), _softplus(-B)


@pytest.mark.parametrize("kind", ["bce", "hinge"])
def test_torch_losses_on_a_hand_computed_case(kind: str) -> None:
    import torch

    from genzoo_gan.torch_gan import GAN

    net = GAN(GANConfig(arch="mlp", latent_dim=4, g_hidden=(8,), d_hidden=(8,), loss=kind),
              DataInfo("image", (4, 4, 1))).eval()
    with torch.no_grad():
        for p in net.parameters():
            p.zero_()
        net.d_net[-1].bias.fill_(B)
        metrics = net.evaluate(torch.rand(5, 4, 4, 1))
    loss_d, loss_g = _expected(kind)
    assert metrics["loss_d"].item() == pytest.approx(loss_d, rel=1e-6)
    assert metrics["loss_g"].item() == pytest.approx(loss_g, rel=1e-6)
    assert metrics["d_fake"].item() == pytest.approx(1 / (1 + math.exp(-B)), rel=1e-6)


@pytest.mark.parametrize("kind", ["bce", "hinge"])
def test_keras_losses_on_a_hand_computed_case(kind: str) -> None:
    from genzoo_gan.keras_gan import GAN

    model = GAN(GANConfig(arch="mlp", latent_dim=4, g_hidden=(8,), d_hidden=(8,), loss=kind),
                DataInfo("image", (4, 4, 1)))
    for v in model.weights:
        v.assign(np.zeros(v.shape, "float32"))
    model.d_net.get_layer("d_logit").bias.assign(np.array([B], "float32"))
    metrics = model.test_step(np.random.default_rng(0).random((5, 4, 4, 1), dtype=np.float32))
    loss_d, loss_g = _expected(kind)
    assert float(metrics["loss_d"]) == pytest.approx(loss_d, rel=1e-6)
    assert float(metrics["loss_g"]) == pytest.approx(loss_g, rel=1e-6)


KERNEL = np.random.default_rng(3).standard_normal((12, 5)).astype(np.float32)  # (in, out)


def test_torch_spectral_norm_divides_by_the_largest_singular_value() -> None:
    import torch

    from genzoo_gan.torch_gan import _spectral

    net = _spectral(torch.nn.Sequential(torch.nn.Linear(12, 5)))
    with torch.no_grad():
        net[0].parametrizations.weight.original.copy_(torch.from_numpy(KERNEL.T))
    for _ in range(50):  # power iterations, one per training call
        net(torch.zeros(1, 12))
    normalized = net[0].weight.detach().numpy()
    assert np.linalg.svd(normalized, compute_uv=False)[0] == pytest.approx(1.0, abs=1e-4)
    np.testing.assert_allclose(normalized, KERNEL.T / np.linalg.svd(KERNEL, compute_uv=False)[0],
                               atol=1e-5)


def test_keras_spectral_norm_divides_by_the_largest_singular_value() -> None:
    from keras import ops

    from genzoo_gan.keras_gan import SpectralConv2D, SpectralDense

    dense = SpectralDense(5)
    dense.build((None, 12))
    dense.kernel.assign(KERNEL)
    for _ in range(50):
        dense(np.zeros((1, 12), "float32"), training=True)
    normalized = ops.convert_to_numpy(dense.normalized_kernel(False))
    np.testing.assert_allclose(normalized, KERNEL / np.linalg.svd(KERNEL, compute_uv=False)[0],
                               atol=1e-5)
    before = ops.convert_to_numpy(dense.sn_u).copy()
    dense(np.zeros((1, 12), "float32"), training=False)  # inference leaves the estimate
    np.testing.assert_array_equal(ops.convert_to_numpy(dense.sn_u), before)
    conv = SpectralConv2D(4, 3, padding="same")
    x = np.random.default_rng(1).random((2, 6, 6, 3), dtype=np.float32)
    for _ in range(50):
        conv(x, training=True)
    kernel = ops.convert_to_numpy(conv.normalized_kernel(False)).reshape(-1, 4)
    assert np.linalg.svd(kernel, compute_uv=False)[0] == pytest.approx(1.0, abs=1e-4)
    plain = ops.convert_to_numpy(ops.conv(x, conv.normalized_kernel(False), padding="same"))
    np.testing.assert_allclose(ops.convert_to_numpy(conv(x)), plain
                               + ops.convert_to_numpy(conv.bias), atol=1e-5)


@pytest.mark.parametrize("backend", ["torch", "keras"])
def test_d_lr_scale_gives_the_discriminator_its_own_learning_rate(backend: str) -> None:
    gen = genzoo.create("gan", backend, "tiny", data="mnist", d_lr_scale=4.0)
    trainer = get_backend(backend).make_trainer(gen, TrainConfig(steps=1, lr=1e-3))
    trainer.set_lr(5e-4)  # the schedule's rate: D's stays four times G's
    if backend == "torch":
        lrs = {k: [g["lr"] for g in o.param_groups] for k, o in trainer.optimizers.items()}
        assert lrs == {"opt_d": pytest.approx([2e-3, 2e-3]), "opt_g": pytest.approx([5e-4, 5e-4])}
    else:
        lrs = {k: float(o.learning_rate) for k, o in trainer.optimizers.items()}
        assert lrs == {"d_optimizer": pytest.approx(2e-3), "g_optimizer": pytest.approx(5e-4)}


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


@pytest.mark.parametrize("backend", ["torch", "keras"])
def test_the_modern_options_train_and_resume_bitwise(backend: str, tmp_path) -> None:
    """Spectral normalisation's estimates, the hinge loss and D's own learning rate survive
    a resume: 10 + 10 steps end where 20 straight ones do, EMA weights included."""
    import shutil

    from genzoo.checkpoint import checkpoint_name, load_tensors

    options = {"loss": "hinge", "spectral_norm": True, "d_lr_scale": 2.0, "ema_decay": 0.9,
               "info_codes": 3}
    runs = {}
    for name in ("straight", "resumed"):
        runs[name] = tmp_path / name
        genzoo.train("gan", backend, "tiny", data="digits", out=runs[name], steps=20,
                     checkpoint_every=10, keep_checkpoints=5, **options)
    cut = runs["resumed"]
    shutil.rmtree(cut / "checkpoints" / checkpoint_name(20))
    (cut / "checkpoints" / "latest").write_text(checkpoint_name(10) + "\n")
    (cut / "model.safetensors").unlink()
    genzoo.resume(cut)
    before, after = (load_tensors(p / "model.safetensors") for p in runs.values())
    assert any("sn_u" in k or "_u" in k for k in before)  # the power iteration's state
    assert before.keys() == after.keys()
    assert all(np.array_equal(before[k], after[k]) for k in before)


INFO_BIAS = np.array([0.5, -1.0, 2.0], np.float32)  # Q's logits when every weight is zero


def _info_expected(codes: np.ndarray) -> float:
    """The mean cross-entropy of logits INFO_BIAS against each image's code."""
    log_z = math.log(float(np.exp(INFO_BIAS).sum()))
    return float(np.mean([log_z - INFO_BIAS[c] for c in codes]))


def _info_config(**extra) -> GANConfig:
    return GANConfig(arch="mlp", latent_dim=4, g_hidden=(8,), d_hidden=(8,), info_codes=3,
                     info_weight=0.5, **extra)


def test_torch_info_loss_on_a_hand_computed_case() -> None:
    """Q's cross-entropy on the code of each generated image, added with info_weight to
    both players' losses (B in D's logit as in the hand-computed case above)."""
    import torch

    from genzoo_gan.torch_gan import EVAL_SEED, GAN

    net = GAN(_info_config(), DataInfo("image", (4, 4, 1))).eval()
    with torch.no_grad():
        for p in net.parameters():
            p.zero_()
        net.d_net[-1].bias.fill_(B)
        net.d_info.bias.copy_(torch.from_numpy(INFO_BIAS))
        metrics = net.evaluate(torch.rand(6, 4, 4, 1))
        z = net.noise(6, torch.Generator().manual_seed(EVAL_SEED))
    codes = z[:, 4:].argmax(1).numpy()
    info = _info_expected(codes)
    loss_d, loss_g = _expected("bce")
    assert metrics["loss_info"].item() == pytest.approx(info, rel=1e-6)
    assert metrics["loss_d"].item() == pytest.approx(loss_d + 0.5 * info, rel=1e-6)
    assert metrics["loss_g"].item() == pytest.approx(loss_g + 0.5 * info, rel=1e-6)


def test_keras_info_loss_on_a_hand_computed_case() -> None:
    from keras import ops

    from genzoo_gan.keras_gan import EVAL_SEED, GAN

    model = GAN(_info_config(), DataInfo("image", (4, 4, 1)))
    for v in model.weights:
        v.assign(np.zeros(v.shape, "float32"))
    model.d_net.get_layer("d_logit").bias.assign(np.array([B], "float32"))
    model.d_net.get_layer("d_info").bias.assign(INFO_BIAS)
    metrics = model.test_step(np.random.default_rng(0).random((6, 4, 4, 1), dtype=np.float32))
    z = np.asarray(ops.convert_to_numpy(model.noise(6, EVAL_SEED)))
    info = _info_expected(z[:, 4:].argmax(1))
    loss_d, loss_g = _expected("bce")
    assert float(metrics["loss_info"]) == pytest.approx(info, rel=1e-6)
    assert float(metrics["loss_d"]) == pytest.approx(loss_d + 0.5 * info, rel=1e-6)
    assert float(metrics["loss_g"]) == pytest.approx(loss_g + 0.5 * info, rel=1e-6)


@pytest.mark.parametrize("backend", ["torch", "keras"])
def test_the_info_code_is_one_hot_uniform_and_seeded(backend: str) -> None:
    """The latent is z beside a one-hot code; a seed draws the same codes, and every value
    of the code is drawn about equally often."""
    if backend == "torch":
        import torch

        from genzoo_gan.torch_gan import GAN

        net = GAN(_info_config(), DataInfo("image", (4, 4, 1)))
        draw = lambda seed: net.noise(3000, torch.Generator().manual_seed(seed)).numpy()  # noqa: E731
    else:
        from keras import ops

        from genzoo_gan.keras_gan import GAN as KerasGAN

        model = KerasGAN(_info_config(), DataInfo("image", (4, 4, 1)))
        draw = lambda seed: np.asarray(ops.convert_to_numpy(model.noise(3000, seed)))  # noqa: E731
    z = draw(5)
    assert z.shape == (3000, 4 + 3)
    assert np.array_equal(z, draw(5)) and not np.array_equal(z, draw(6))
    codes = z[:, 4:]
    assert set(np.unique(codes)) == {0.0, 1.0} and np.all(codes.sum(1) == 1)
    shares = codes.mean(0)
    assert np.all(np.abs(shares - 1 / 3) < 0.04), shares


@pytest.mark.parametrize("backend", ["torch", "keras"])
def test_q_learns_to_recover_the_code(backend: str, tmp_path) -> None:
    """120 steps on the bundled digits: Q's cross-entropy falls from log K (chance) to
    under half of it, so G's images carry their code."""
    import json

    genzoo.train("gan", backend, "tiny", data="digits", out=tmp_path / "run", steps=120,
                 info_codes=4)
    records = map(json.loads, (tmp_path / "run" / "metrics.jsonl").read_text().splitlines())
    final = next(r for r in records if r["event"] == "test")["test_loss_info"]
    assert final < 0.5 * math.log(4), final


@pytest.mark.parametrize("backend", ["torch", "keras"])
def test_temperature_scales_z_but_not_the_code_nor_training(backend: str) -> None:
    """Sampling at temperature T draws T·z beside the same code; training's draws and
    validation's fixed noise stay at temperature 1."""
    import dataclasses

    cold = dataclasses.replace(_info_config(), temperature=0.5)
    if backend == "torch":
        import torch

        from genzoo_gan.torch_gan import GAN

        nets = [GAN(c, DataInfo("image", (4, 4, 1))) for c in (_info_config(), cold)]
        draw = [lambda net=net: net.noise(50, torch.Generator().manual_seed(3)).numpy()
                for net in nets]
        train = []
        for net in nets:
            torch.manual_seed(0)
            train.append(net.noise(50).numpy())
    else:
        from keras import ops

        from genzoo_gan.keras_gan import GAN as KerasGAN

        nets = [KerasGAN(c, DataInfo("image", (4, 4, 1))) for c in (_info_config(), cold)]
        draw = [lambda net=net: np.asarray(ops.convert_to_numpy(net.noise(50, 3))) for net in nets]
        train = [np.asarray(ops.convert_to_numpy(net._noise(50, 0))) for net in nets]
    warm, cool = draw[0](), draw[1]()
    np.testing.assert_allclose(cool[:, :4], 0.5 * warm[:, :4], rtol=1e-6)
    assert np.array_equal(cool[:, 4:], warm[:, 4:])
    assert np.array_equal(train[0], train[1])


@pytest.mark.parametrize("backend", ["torch", "keras"])
def test_the_moving_average_leaves_the_power_iteration_alone(backend: str, tmp_path) -> None:
    """EMA averages D's weights but not spectral normalisation's vectors (their average
    is no unit vector: an averaged D divided by it scored 60,000 where the trained one
    scored 0.4), so the averaged model's test losses stay those of a GAN."""
    import json

    from genzoo.checkpoint import load_tensors

    run = tmp_path / "run"
    genzoo.train("gan", backend, "tiny", data="digits", out=run, steps=40,
                 spectral_norm=True, loss="hinge", ema_decay=0.9)
    saved = load_tensors(run / "model.safetensors")
    vectors = [k for k in saved if k.endswith(("_u", "_v")) and not k.startswith("ema.")]
    assert vectors and not any(f"ema.{k}" in saved for k in vectors)
    assert any(k.startswith("ema.") for k in saved)  # the rest is averaged
    records = map(json.loads, (run / "metrics.jsonl").read_text().splitlines())
    test = next(r for r in records if r["event"] == "test")
    assert 0 < test["test_loss_d"] < 10, test
