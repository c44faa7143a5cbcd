"""VAE training-step throughput in both backends, and the core loop's overhead.

The overhead benchmark trains the same torch network (the plugin's ``nn.Module`` and its
loss) with genzoo's loop and with a minimal hand-written PyTorch loop, alternating the
two in one process so that machine noise hits both alike. It reports genzoo's
throughput divided by the hand-written loop's.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from bench_support import SMOKE, record

STEPS = 3 if SMOKE else 200
ROUNDS = 1 if SMOKE else 7
BATCH = 128


@pytest.fixture(scope="module")
def mnist_train() -> np.ndarray:
    from genzoo.data import load_dataset

    return load_dataset("mnist").train


def _genzoo_runner(backend: str, x: np.ndarray):
    import genzoo
    from genzoo.backends import get_backend
    from genzoo.config import TrainConfig
    from genzoo.data import ImageBatches
    from genzoo.training import fit

    cfg = TrainConfig(steps=10**9, batch_size=BATCH, lr=1e-3, log_every=50)
    gen = genzoo.create("vae", backend, "mlp", data="mnist")
    trainer = get_backend(backend).make_trainer(gen, cfg)
    batches = ImageBatches(x, BATCH, seed=0)
    state = {"step": 0}

    def run(steps: int) -> None:
        start = state["step"]
        fit(trainer, batches, cfg, total_steps=start + steps,
            steps_per_epoch=batches.steps_per_epoch, start_step=start)
        state["step"] = start + steps

    return run


def _handwritten_runner(x: np.ndarray):
    """What a user would write by hand for the same network, without genzoo."""
    import torch

    from genzoo.protocols import DataInfo
    from genzoo_vae.config import VAEConfig
    from genzoo_vae.torch_vae import VAE

    torch.manual_seed(0)
    model = VAE(VAEConfig(), DataInfo("image", (28, 28, 1)))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    order = np.random.default_rng(0).permutation(len(x))
    per_epoch = len(x) // BATCH
    state = {"step": 0}

    def run(steps: int) -> None:
        for step in range(state["step"], state["step"] + steps):
            i = step % per_epoch
            batch = torch.from_numpy(x[order[i * BATCH:(i + 1) * BATCH]])
            loss, _ = model.loss(batch)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if step % 50 == 0:
                loss.item()  # a hand-written loop prints its loss now and then too
        state["step"] += steps

    return run


@pytest.mark.parametrize("backend", ["torch", "keras"])
def test_vae_train_step_throughput(benchmark, backend: str, mnist_train) -> None:
    run = _genzoo_runner(backend, mnist_train)
    run(2)  # warm-up: Keras traces its step function on the first call
    benchmark.pedantic(run, args=(STEPS,), rounds=ROUNDS, iterations=1)
    images_per_s = STEPS * BATCH / benchmark.stats.stats.median
    benchmark.extra_info["images_per_s"] = images_per_s
    record(f"vae mlp {backend} cpu: train images/s", f"{images_per_s:,.0f}")


def test_vae_loop_overhead_against_handwritten_torch(benchmark, mnist_train) -> None:
    genzoo_run = _genzoo_runner("torch", mnist_train)
    hand_run = _handwritten_runner(mnist_train)
    genzoo_run(2)
    hand_run(2)
    times: dict[str, list[float]] = {"genzoo": [], "hand": []}

    def both() -> None:
        for name, fn in (("genzoo", genzoo_run), ("hand", hand_run)):
            t0 = time.perf_counter()
            fn(STEPS)
            times[name].append(time.perf_counter() - t0)

    benchmark.pedantic(both, rounds=ROUNDS, iterations=1)
    ratio = float(np.median(times["hand"]) / np.median(times["genzoo"]))
    benchmark.extra_info.update(
        genzoo_images_per_s=STEPS * BATCH / float(np.median(times["genzoo"])),
        handwritten_images_per_s=STEPS * BATCH / float(np.median(times["hand"])),
        throughput_ratio=ratio,
    )
    record("vae mlp torch cpu: genzoo / hand-written throughput", f"{ratio:.3f}")
