"""Data loading must not be the bottleneck: data time as a fraction of step time."""

from __future__ import annotations

import time

import numpy as np
import pytest

from bench_support import SMOKE, record

STEPS = 5 if SMOKE else 300


@pytest.mark.parametrize("backend", ["torch", "keras"])
def test_vae_mnist_data_time_fraction(benchmark, backend: str) -> None:
    if backend == "keras":
        pytest.importorskip("keras")
    import genzoo
    from genzoo.backends import get_backend
    from genzoo.config import TrainConfig
    from genzoo.data import load_dataset

    data = load_dataset("mnist")
    cfg = TrainConfig(steps=STEPS, batch_size=128)
    batches = data.train_batches(cfg.batch_size, cfg.seed)
    gen = genzoo.create("vae", backend, data="mnist", device="cpu")  # as the label says
    trainer = get_backend(backend).make_trainer(gen, cfg)
    trainer.train_step(batches(0))  # warm-up (Keras traces its step)

    def data_only() -> None:
        for step in range(STEPS):
            batches(step)

    t0 = time.perf_counter()
    for step in range(STEPS):
        trainer.train_step(batches(step))
    step_time = (time.perf_counter() - t0) / STEPS
    benchmark.pedantic(data_only, rounds=1 if SMOKE else 5, iterations=1)
    if benchmark.disabled:
        return
    data_time = benchmark.stats.stats.median / STEPS
    fraction = data_time / step_time
    benchmark.extra_info.update(data_ms=data_time * 1e3, step_ms=step_time * 1e3,
                                fraction=fraction)
    record(f"vae mnist {backend} cpu: data time / step time",
           f"{fraction:.3f} ({data_time * 1e3:.3f} ms of {step_time * 1e3:.2f} ms)")
    assert np.isfinite(fraction)
